"""Test helpers for the server side: a tiny real teacher and a small real image folder.

Used by tests/test_teacher.py and by the torchrun worker, which names the
factory as the teacher SPEC ``tests/_tiny_teacher.py:make``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMG_SIZE = 16
TRANSFORM = {"img_size": IMG_SIZE, "crop_pct": 1.0, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
             "interpolation": "bilinear"}


def make(num_classes: int = 10):
    """A small CNN with fixed random weights (seed 0): the same model in every process."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, num_classes),
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        model[4].running_mean.copy_(torch.randn(16, generator=gen) * 0.1)
        model[4].running_var.copy_(torch.rand(16, generator=gen) + 0.5)
    model.class_names = [f"digit-{i}" for i in range(num_classes)]
    return model.eval()


def write_digit_folder(root: Path, n: int = 120) -> list[str]:
    """Write *n* sklearn digits (real 8x8 scans, upscaled to 16x16) as PNG class folders.

    Also drops a few files that a reference set must ignore.  Returns the
    written image paths relative to *root*.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    written = []
    for i in range(n):
        label = int(digits.target[i])
        pixels = (digits.images[i] * (255.0 / 16.0)).astype(np.uint8)
        img = Image.fromarray(pixels, mode="L").resize((16, 16), Image.NEAREST)
        if i % 3 == 0:
            img = img.convert("RGB")
        rel = f"{label}/img{i:04d}.png"
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        img.save(root / rel)
        written.append(rel)
    (root / "README.txt").write_text("not an image\n")
    (root / "0" / ".hidden.png").write_bytes(b"not listed")
    return sorted(written, key=lambda p: tuple(p.split("/")))
