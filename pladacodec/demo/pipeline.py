"""The end-to-end demo: teacher -> scores -> selection -> .plada -> PladaDataset -> student.

Server side: a teacher is trained on the target task's labelled training set, scores every
reference image (energy ``E = -logsumexp(logits)``, argmax label) and each strategy picks
a share of the pool, packed into a ``.plada`` file.  Client side: the file is opened
against the reference pool through :class:`pladacodec.data.PladaDataset` and a student is
trained on it, then evaluated on the target test set, which nobody trained on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

import pladacodec

from ..data import PladaDataset
from ..reference import dataset_fingerprint
from ..selection import select
from ..teacher import score
from ..train import train
from .data import SOURCES, DemoData, build_demo_data

__all__ = ["DemoConfig", "ArrayImages", "Strategy", "STRATEGIES", "run_demo"]


@dataclass(frozen=True)
class Strategy:
    """A named selection rule: a ranking strategy of :func:`pladacodec.selection.select`
    and, for Safety-Net, the fraction of slots reserved for per-class quotas."""

    name: str
    ranking: str
    safety_net: float = 0.0


def strategies(safety_net: float) -> tuple[Strategy, ...]:
    return (
        Strategy("lowest-energy", "lowest-energy"),
        Strategy("safety-net", "lowest-energy", safety_net),
        Strategy("highest-energy", "highest-energy"),
        Strategy("random", "random"),
    )


STRATEGIES = tuple(s.name for s in strategies(0.5))


@dataclass
class DemoConfig:
    """Everything the demo's numbers depend on; written into ``report.json``."""

    out_dir: str = "plada-demo"
    quick: bool = False
    device: str = "auto"
    student: str = "resnet18"
    teacher: str = "resnet18"
    keeps: tuple[float, ...] = (0.01, 0.10)
    safety_net: float = 0.5
    alpha: float = 0.5
    n_train: int = 6000
    n_test: int | None = None
    n_pool_fashion: int | None = None
    epochs: int = 1
    min_steps: int = 200
    batch_size: int = 128
    seed: int = 0
    progress: bool = True

    @classmethod
    def quick_config(cls, **overrides: Any) -> DemoConfig:
        """A small version for tests: same pipeline, a few thousand images, a few steps."""
        base = cls(quick=True, n_train=800, n_test=500, n_pool_fashion=3000,
                   epochs=2, min_steps=12, batch_size=64)
        return replace(base, **overrides)


class ArrayImages(Dataset):
    """``uint8`` images ``(n, H, W)`` as ``(1, H, W)`` tensors, with labels when given.

    The array is the ``data`` attribute, so :func:`pladacodec.reference.dataset_fingerprint`
    identifies the pool by its pixels.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None,
                 transform: Callable[[torch.Tensor], Any] | None = None) -> None:
        self.data = images
        self.targets = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        x = torch.from_numpy(np.array(self.data[i]))[None]  # a copy: the array may be read-only
        if self.transform is not None:
            x = self.transform(x)
        return x if self.targets is None else (x, int(self.targets[i]))


def to_input(x: torch.Tensor) -> torch.Tensor:
    """``uint8`` pixels -> float in [-1, 1] (the demo's model input)."""
    return x.float().div_(127.5).sub_(1.0)


# ---------------------------------------------------------------------------- the run

def _log(msg: str, progress: bool) -> None:
    if progress:
        print(msg, flush=True)


def _selection_stats(data: DemoData, indices: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, Any]:
    source = data.pool_source[indices]
    truth = data.pool_true_label[indices]
    in_domain = truth >= 0
    counts = np.bincount(labels, minlength=n_classes)
    return {
        "in_domain": float(in_domain.mean()) if len(indices) else float("nan"),
        "label_accuracy_in_domain": float((labels[in_domain] == truth[in_domain]).mean())
        if in_domain.any() else float("nan"),
        "correct_share": float(((labels == truth) & in_domain).mean()) if len(indices) else float("nan"),
        "class_counts": counts.tolist(),
        "classes_present": int((counts > 0).sum()),
        "by_source": {name: int((source == s).sum()) for s, name in enumerate(SOURCES)},
    }


def run_demo(config: DemoConfig | None = None, *, data: DemoData | None = None) -> dict[str, Any]:
    """Run the whole demo; write ``report.md``, ``report.png``, ``report.json`` and the
    ``.plada`` tasks under ``config.out_dir``; return the report as a dict."""
    from .report import write_report

    cfg = config or DemoConfig()
    out = Path(cfg.out_dir)
    (out / "tasks").mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_start = t0 = time.perf_counter()
    load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    torch.manual_seed(cfg.seed)

    _log("[1/5] building the target task and the reference pool from packaged images", cfg.progress)
    if data is None:
        data = build_demo_data(n_train=cfg.n_train, n_test=cfg.n_test,
                               n_pool_fashion=cfg.n_pool_fashion, quick=cfg.quick, seed=cfg.seed)
    n_classes = len(data.class_names)
    pool = ArrayImages(data.pool_x)
    pool_fp = dataset_fingerprint(pool)
    train_set = ArrayImages(data.train_x, data.train_y, to_input)
    test_set = ArrayImages(data.test_x, data.test_y, to_input)
    timings["data"] = time.perf_counter() - t0
    _log(f"      target: {len(train_set):,} labelled training images, {len(test_set):,} test images, "
         f"{n_classes} classes; pool: {data.n_pool:,} unlabelled images "
         + ", ".join(f"{k} {v:,}" for k, v in data.source_counts().items()), cfg.progress)

    common = dict(num_classes=n_classes, test=test_set, batch_size=cfg.batch_size,
                  device=cfg.device, seed=cfg.seed, progress=cfg.progress,
                  class_names=data.class_names)

    _log(f"[2/5] server: training the teacher ({cfg.teacher}) on the target training set", cfg.progress)
    t0 = time.perf_counter()
    teacher_model, teacher_acc, teacher_desc, baseline = _train_teacher(cfg, train_set, common)
    timings["teacher"] = time.perf_counter() - t0
    _log(f"      teacher accuracy on the target test set: {100 * teacher_acc:.2f}%", cfg.progress)

    _log(f"[3/5] server: scoring {data.n_pool:,} reference images", cfg.progress)
    t0 = time.perf_counter()
    scored = score(teacher_model, ArrayImages(data.pool_x, transform=to_input),
                   batch_size=512, device=str(_device(cfg.device)), progress=cfg.progress)
    energy, pseudo = scored.energy, scored.label
    timings["score"] = time.perf_counter() - t0
    source_energy = {name: float(np.median(energy[data.pool_source == s]))
                     for s, name in enumerate(SOURCES) if (data.pool_source == s).any()}
    del teacher_model

    _log("[4/5] server: selecting and packing; client: unpacking through PladaDataset and "
         "training a student on each task", cfg.progress)
    rows: list[dict[str, Any]] = []
    # the same selections in a randomly ordered pool: what the bytes would be without
    # the clustering a folder layout gives (report only)
    # (its own random stream: the random strategy's permutation must not be reused here)
    shuffle = np.random.default_rng([cfg.seed, 0x5EED]).permutation(data.n_pool)
    t0 = time.perf_counter()
    for keep in cfg.keeps:
        for strat in strategies(cfg.safety_net):
            sel = select(energy, pseudo, keep=keep, strategy=strat.ranking, safety_net=strat.safety_net,
                         alpha=cfg.alpha, n_classes=n_classes, seed=cfg.seed)
            name = f"{strat.name}-{_pct(keep)}"
            path = out / "tasks" / f"{name}.plada"
            meta = {**sel.metadata(), "name": strat.name, "keep": keep}
            size = pladacodec.write(path, sel.indices, sel.labels, data.n_pool, n_classes=n_classes,
                                    class_names=data.class_names, reference_fingerprint=pool_fp,
                                    metadata=meta)
            task = PladaDataset(pool, path, transform=to_input)  # the client's view of the file
            assert np.array_equal(task.indices, sel.indices)
            result = train(task, model=cfg.student, epochs=cfg.epochs, min_steps=cfg.min_steps,
                           desc=name, **common)
            shuffled = len(pladacodec.encode(
                shuffle[sel.indices], sel.labels, data.n_pool, n_classes=n_classes,
                class_names=data.class_names, reference_fingerprint=pool_fp, metadata=meta))
            row = {"strategy": strat.name, "keep": keep, "images": len(task), "bytes": size,
                   "bytes_per_10k": 10_000 * size / max(len(task), 1),
                   "bytes_shuffled_pool": shuffled,
                   "bytes_per_10k_shuffled_pool": 10_000 * shuffled / max(len(task), 1),
                   "student_accuracy": result.test_accuracy, "student_per_class": result.test_per_class,
                   "steps": result.steps, "train_seconds": result.seconds,
                   **_selection_stats(data, sel.indices, sel.labels, n_classes)}
            rows.append(row)
            _log(f"      {name:<24} {len(task):>6,} images {size:>7,} B  in-domain "
                 f"{100 * row['in_domain']:5.1f}%  student {100 * result.test_accuracy:.2f}%", cfg.progress)
    timings["students"] = time.perf_counter() - t0

    _log("[5/5] reference point: the same student on the target training set's true labels"
         + (" (the teacher itself: same model, same recipe)" if baseline is not None else ""), cfg.progress)
    if baseline is None:
        t0 = time.perf_counter()
        baseline = train(train_set, model=cfg.student, epochs=cfg.epochs, min_steps=cfg.min_steps,
                         desc="true-labels", **common)
        timings["baseline"] = time.perf_counter() - t0
    _log(f"      student on true labels: {100 * baseline.test_accuracy:.2f}%", cfg.progress)
    timings["total"] = time.perf_counter() - t_start

    report = {
        "config": {**asdict(cfg), "keeps": list(cfg.keeps)},
        "device": str(_device(cfg.device)),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "pool": {"n": data.n_pool, "sources": data.source_counts(),
                 "median_energy_by_source": source_energy,
                 "fingerprint": pool_fp.hex()},
        "target": {"classes": list(data.class_names), "n_train": len(train_set), "n_test": len(test_set)},
        "teacher": {"model": teacher_desc, "accuracy": teacher_acc},
        "true_label_student": {"model": cfg.student, "accuracy": baseline.test_accuracy,
                               "images": len(train_set), "steps": baseline.steps},
        "rows": rows,
        "timings": timings,
    }
    write_report(report, out)
    return report


def _device(device: str) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _pct(keep: float) -> str:
    return f"{100 * keep:g}pct"


def _train_teacher(cfg: DemoConfig, train_set: Dataset, common: dict[str, Any]):
    """(model, test accuracy, description, the true-label student if the teacher is one)."""
    if cfg.teacher == "efficientnet-lite0":
        from .pretrained import train_lite0_teacher

        model, acc = train_lite0_teacher(train_set, common["test"], device=_device(cfg.device),
                                         progress=cfg.progress, seed=cfg.seed)
        return model, acc, "EfficientNet-Lite0 ImageNet features (frozen) + linear head", None
    # A teacher trained from scratch gets the students' recipe on the true labels, so when
    # it has the students' architecture it *is* the true-label reference point.
    result = train(train_set, model=cfg.teacher, epochs=cfg.epochs, min_steps=cfg.min_steps,
                   desc="teacher", **common)
    desc = f"{cfg.teacher} from scratch on the labelled training set"
    return result.model, float(result.test_accuracy), desc, result if cfg.teacher == cfg.student else None
