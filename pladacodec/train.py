"""Train a student on a task: the paper's recipe, from Python or ``pladacodec train``.

Recipe: a timm model (ResNet-18 by default) trained from scratch, or from a *local*
checkpoint when one is given (nothing is downloaded); AdamW, learning rate 1e-3, weight
decay 0.05, cosine decay to zero over all steps; random shifts and horizontal flips;
BatchNorm statistics recomputed over the training set at the end ("precise BN"), which
matters for the few hundred steps a small task trains.

>>> from pladacodec.data import PladaDataset                                 # doctest: +SKIP
>>> from pladacodec.train import train, image_transform                     # doctest: +SKIP
>>> ds = PladaDataset("reference/", "task.plada", image_transform(32))      # doctest: +SKIP
>>> result = train(ds, num_classes=ds.n_classes, epochs=10, out_dir="run")  # doctest: +SKIP
>>> result.test_accuracy                                                    # doctest: +SKIP

Datasets small enough for memory (``preload="auto"``: under 1 GiB as float32) are decoded
once and then batched as tensors, which is much faster for small images; larger ones
stream through a ``DataLoader`` with ``num_workers`` workers.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "TrainResult",
    "build_model",
    "load_checkpoint",
    "image_transform",
    "train",
    "evaluate",
    "predict",
    "save_checkpoint",
    "DEFAULT_MODEL",
]

DEFAULT_MODEL = "resnet18"
_PRELOAD_LIMIT_BYTES = 1 << 30


# ---------------------------------------------------------------------------- models

def _unwrap_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def load_checkpoint(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Load a local weights file into *model*; return the names of tensors left as initialised.

    Tensors are matched by name; a file whose names all differ but whose tensors have the
    model's shapes in the model's order (the same network under another library's names,
    e.g. EfficientNet-Lite0 weights for timm's ``tf_efficientnet_lite0``) is matched by
    position.  Tensors whose shape differs (a classifier for another number of classes)
    are skipped.
    """
    source = _unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    target = model.state_dict()
    if not set(source) & set(target) and len(source) == len(target) and all(
        a.shape == b.shape for a, b in zip(source.values(), target.values())
    ):
        source = dict(zip(target, source.values()))
    usable = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
    if not usable:
        raise ValueError(f"{path}: no tensor matches the model by name or by position")
    model.load_state_dict(usable, strict=False)
    return [k for k in target if k not in usable]


def build_model(name: str = DEFAULT_MODEL, num_classes: int = 10, *, in_chans: int = 3,
                checkpoint: str | Path | None = None) -> torch.nn.Module:
    """A timm model with a fresh classifier, from local *checkpoint* weights if given."""
    import timm

    model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model


def image_transform(image_size: int, *, grayscale: bool = False) -> Callable[[Any], torch.Tensor]:
    """PIL image -> float tensor in [-1, 1], resized to ``image_size`` squared."""
    from torchvision import transforms as T

    return T.Compose([
        T.Grayscale(1) if grayscale else T.Lambda(lambda im: im.convert("RGB")),
        T.Resize((image_size, image_size), antialias=True),
        T.ToTensor(),
        T.Normalize([0.5], [0.5]) if grayscale else T.Normalize([0.5] * 3, [0.5] * 3),
    ])


# ---------------------------------------------------------------------------- data plumbing

def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 1/8 of the side (zero padding) and horizontal flips, per image."""
    n, _, h, w = x.shape
    pad = max(1, min(h, w) // 8)
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).tolist()
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def _preload(dataset: Dataset, batch_size: int, num_workers: int) -> tuple[torch.Tensor, torch.Tensor]:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    xs, ys = zip(*((x, y) for x, y in loader))
    return torch.cat(xs), torch.cat(ys)


def _should_preload(dataset: Dataset, preload: bool | str) -> bool:
    if preload != "auto":
        return bool(preload)
    if len(dataset) == 0:
        return True
    x, _ = dataset[0]
    return isinstance(x, torch.Tensor) and x.numel() * 4 * len(dataset) <= _PRELOAD_LIMIT_BYTES


class _Batches:
    """Shuffled batches, from preloaded tensors or a DataLoader."""

    def __init__(self, dataset: Dataset, batch_size: int, *, num_workers: int, preload: bool | str,
                 seed: int) -> None:
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.tensors = _preload(dataset, batch_size, num_workers) if _should_preload(dataset, preload) else None
        self.loader = None
        if self.tensors is None:
            self.loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=False,
                                     num_workers=num_workers, generator=self.generator,
                                     persistent_workers=num_workers > 0)
        self.n = len(dataset)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self):
        if self.loader is not None:
            yield from self.loader
            return
        x, y = self.tensors
        order = torch.randperm(self.n, generator=self.generator)
        for start in range(0, self.n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield x[idx], y[idx]


# ---------------------------------------------------------------------------- training

@dataclass
class TrainResult:
    """What :func:`train` returns (``model`` is left on the training device, in eval mode)."""

    model: torch.nn.Module = field(repr=False)
    model_name: str
    n_train: int
    n_classes: int
    epochs: int
    steps: int
    seconds: float
    final_loss: float
    test_accuracy: float | None = None
    test_per_class: list[float] | None = None
    history: list[dict[str, float]] = field(default_factory=list, repr=False)
    config: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """JSON-ready metrics (everything but the model)."""
        return {k: v for k, v in self.__dict__.items() if k != "model"}


@torch.no_grad()
def _recalibrate_batchnorm(net: torch.nn.Module, batches: _Batches, device: torch.device,
                           max_images: int = 20_000) -> None:
    """Recompute BatchNorm running statistics with the final weights ("precise BN").

    The running averages trail the weights during training; after a few hundred steps, as
    for small PLADA tasks, they can be far off and evaluation suffers.  One pass over (up
    to *max_images* of) the un-augmented training data in train mode fixes that.
    """
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    net.train()
    seen = 0
    for x, _ in batches:
        net(x.to(device, non_blocking=True))
        seen += len(x)
        if seen >= max_images:
            break
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def train(
    dataset: Dataset,
    *,
    num_classes: int,
    test: Dataset | None = None,
    model: str | torch.nn.Module = DEFAULT_MODEL,
    in_chans: int | None = None,
    checkpoint: str | Path | None = None,
    epochs: int = 10,
    min_steps: int = 0,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    augment: bool = True,
    device: str | torch.device | None = "auto",
    num_workers: int = 0,
    preload: bool | str = "auto",
    seed: int = 0,
    progress: bool = True,
    desc: str = "train",
    class_names: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
) -> TrainResult:
    """Train a classifier on *dataset* (items ``(image_tensor, label)``) and evaluate on *test*.

    ``epochs`` passes over the data, raised if needed so that at least ``min_steps``
    optimizer steps are taken (tiny selections otherwise barely train).  With *out_dir*,
    ``checkpoint.pt`` and ``metrics.json`` are written there.
    """
    torch.manual_seed(seed)
    dev = _resolve_device(device)
    batches = _Batches(dataset, batch_size, num_workers=num_workers, preload=preload, seed=seed)
    if len(batches) == 0:
        raise ValueError("the training set is empty")
    if in_chans is None:
        first = batches.tensors[0][0] if batches.tensors is not None else dataset[0][0]
        in_chans = int(first.shape[0])
    model_name = model if isinstance(model, str) else type(model).__name__
    net = build_model(model, num_classes, in_chans=in_chans, checkpoint=checkpoint) if isinstance(model, str) else model
    net.to(dev)
    epochs = max(int(epochs), math.ceil(min_steps / len(batches)))
    total = epochs * len(batches)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)))
    aug_gen = torch.Generator().manual_seed(seed + 1)

    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, disable=not progress, leave=False, unit="step")
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    loss_value = float("nan")
    net.train()
    for epoch in range(epochs):
        running, seen = 0.0, 0
        for x, y in batches:
            if augment:
                x = _augment(x, aug_gen)
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_value = float(loss.detach())
            running += loss_value * len(y)
            seen += len(y)
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_value:.3f}")
        history.append({"epoch": epoch + 1, "loss": running / max(seen, 1)})
    bar.close()
    _recalibrate_batchnorm(net, batches, dev)
    seconds = time.perf_counter() - start
    net.eval()
    result = TrainResult(
        model=net, model_name=model_name, n_train=len(dataset), n_classes=num_classes,
        epochs=epochs, steps=total, seconds=seconds, final_loss=history[-1]["loss"], history=history,
        config={"batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "augment": augment,
                "schedule": "cosine", "optimizer": "AdamW", "seed": seed, "in_chans": in_chans,
                "checkpoint": str(checkpoint) if checkpoint else None, "device": str(dev)},
    )
    if test is not None:
        scores = evaluate(net, test, num_classes=num_classes, device=dev, batch_size=2 * batch_size,
                          num_workers=num_workers)
        result.test_accuracy = scores["accuracy"]
        result.test_per_class = scores["per_class"]
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(out / "checkpoint.pt", result, class_names=class_names)
        metrics = result.metrics()
        metrics["class_names"] = list(class_names) if class_names is not None else None
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return result


@torch.inference_mode()
def predict(model: torch.nn.Module, dataset: Dataset, *, device: str | torch.device | None = "auto",
            batch_size: int = 512, num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, labels)`` of *model* over a labelled *dataset*, on the CPU."""
    dev = _resolve_device(device)
    model.eval().to(dev)
    logits, labels = [], []
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers):
        logits.append(model(x.to(dev)).float().cpu())
        labels.append(torch.as_tensor(y))
    return torch.cat(logits), torch.cat(labels)


def evaluate(model: torch.nn.Module, dataset: Dataset, *, num_classes: int,
             device: str | torch.device | None = "auto", batch_size: int = 512,
             num_workers: int = 0) -> dict[str, Any]:
    """Top-1 accuracy, overall and per class, of *model* on a labelled *dataset*."""
    logits, labels = predict(model, dataset, device=device, batch_size=batch_size, num_workers=num_workers)
    pred = logits.argmax(1)
    correct = (pred == labels).numpy()
    labels_np = labels.numpy()
    per_class = [float(correct[labels_np == c].mean()) if (labels_np == c).any() else float("nan")
                 for c in range(num_classes)]
    return {"accuracy": float(correct.mean()) if len(correct) else float("nan"),
            "per_class": per_class, "n": int(len(correct))}


def save_checkpoint(path: str | Path, result: TrainResult, *,
                    class_names: Sequence[str] | None = None) -> None:
    """Write the student's weights with what is needed to rebuild it (``build_model``)."""
    torch.save({
        "model": result.model_name,
        "num_classes": result.n_classes,
        "in_chans": result.config.get("in_chans", 3),
        "class_names": list(class_names) if class_names is not None else None,
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
    }, path)
