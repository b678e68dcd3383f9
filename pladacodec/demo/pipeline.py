"""The end-to-end demo: teacher -> scores -> selection -> .plada -> PladaDataset -> student.

Server side: a teacher (ImageNet-pretrained EfficientNet-Lite0, linear probe on the target's
labelled training images) scores every reference image (energy ``E = -logsumexp(logits)``,
argmax label, and the frozen prefix's activations as features) with
:func:`pladacodec.teacher.score`; each strategy picks a share of the pool
(:func:`pladacodec.select`, ``strategy="auto"`` with the server's labelled validation set),
packed into a ``.plada`` file.  Client side: the file is opened against the reference pool
through :class:`pladacodec.data.PladaDataset` and a student (the pretrained network,
fine-tuned; :mod:`.pretrained`) is trained on the images and labels it names, then evaluated
on the target test set, which nobody trained or selected on.  A "no pruning" student learns
from every pool image with its teacher label.
"""

from __future__ import annotations

import json
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
from . import warmup
from .data import SCENARIOS, SOURCES, DemoData, build_demo_data

__all__ = ["DemoConfig", "ArrayImages", "Strategy", "STRATEGIES", "run_demo", "run_scenarios"]


@dataclass(frozen=True)
class Strategy:
    """A named selection rule: a ranking strategy of :func:`pladacodec.selection.select`
    and, for Safety-Net, the share of slots reserved for per-class quotas and alpha."""

    name: str
    ranking: str
    safety_net: float = 0.0
    alpha: float = 0.5


def strategies(safety_net: float, alphas: tuple[float, ...]) -> tuple[Strategy, ...]:
    return (
        Strategy("lowest-energy", "lowest-energy"),
        *(Strategy(f"safety-net a={a:g}", "lowest-energy", safety_net, a) for a in alphas),
        Strategy("highest-energy", "highest-energy"),
        Strategy("random", "random"),
        Strategy("auto", "auto", safety_net),
    )


STRATEGIES = tuple(s.name for s in strategies(0.5, (-0.2, 0.5)))
NO_PRUNING = "no pruning"


@dataclass
class DemoConfig:
    """Everything the demo's numbers depend on; written into ``report.json``."""

    out_dir: str = "plada-demo"
    scenario: str = "generic"
    quick: bool = False
    device: str = "auto"
    keeps: tuple[float, ...] = (0.01, 0.10)
    safety_net: float = 0.5
    alphas: tuple[float, ...] = (-0.2, 0.5)
    image_size: int = 32
    split: int = 5
    n_train: int = 5000
    n_val: int = 1000
    n_test: int | None = 5000
    n_pool_fashion: int | None = None
    epochs: int = 1
    min_steps: int = 80
    max_steps: int = 240
    batch_size: int = 64
    teacher_steps: int = 500
    seed: int = 0
    progress: bool = True
    selections_dir: str | None = None

    @classmethod
    def quick_config(cls, **overrides: Any) -> DemoConfig:
        """A small version for tests: same pipeline, a few thousand images, a few steps."""
        base = cls(quick=True, n_train=500, n_val=200, n_test=200, n_pool_fashion=None,
                   epochs=1, min_steps=4, max_steps=8, batch_size=32, teacher_steps=100)
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


class _Activations(Dataset):
    """Frozen-prefix activations of chosen images with labels (the student's input)."""

    def __init__(self, acts: torch.Tensor, labels: np.ndarray) -> None:
        self.acts = acts
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.acts)

    def __getitem__(self, i: int):
        return self.acts[i], self.labels[i]


def to_input(x: torch.Tensor) -> torch.Tensor:
    """``uint8`` pixels -> float in [-1, 1] (the demo's model input)."""
    return x.float().div_(127.5).sub_(1.0)


def _images(x: np.ndarray) -> torch.Tensor:
    return to_input(torch.from_numpy(np.ascontiguousarray(x))[:, None])


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
        "class_counts": counts.tolist(),
        "classes_present": int((counts > 0).sum()),
        "by_source": {name: int((source == s).sum()) for s, name in enumerate(SOURCES) if (source == s).any()},
    }


def _device(device: str) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _pct(keep: float) -> str:
    return f"{100 * keep:g}pct"


def _file_name(strategy: str, keep: float) -> str:
    return strategy.replace(" ", "-").replace("=", "") + ("" if keep >= 1 else f"-{_pct(keep)}")


def _save_selection(directory: Path, name: str, indices, labels, n_reference: int,
                    class_names, meta: dict[str, Any]) -> None:
    """The selection in a format-independent form (for the compression benchmarks)."""
    directory.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(directory / f"{name}.npz", indices=np.asarray(indices, dtype=np.uint64),
                        labels=np.asarray(labels, dtype=np.int64), n_reference=np.int64(n_reference),
                        n_classes=np.int64(len(class_names)), class_names=np.array(class_names),
                        metadata=np.array(json.dumps(meta, sort_keys=True)))


def run_demo(config: DemoConfig | None = None, *, data: DemoData | None = None) -> dict[str, Any]:
    """Run one scenario of the demo; write ``report.md``, ``report.png``, ``report.json``
    and the ``.plada`` tasks under ``config.out_dir``; return the report as a dict."""
    from .pretrained import WEIGHTS, Lite0Parts, activations, fit_linear_probe
    from .report import write_report

    cfg = config or DemoConfig()
    warmup.start()  # the codec's kernels compile in another process meanwhile (.warmup)
    out = Path(cfg.out_dir)
    (out / "tasks").mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_start = t0 = time.perf_counter()
    load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    torch.manual_seed(cfg.seed)
    dev = _device(cfg.device)

    _log(f"[1/5] building the target task and the {cfg.scenario} reference pool from packaged images",
         cfg.progress)
    if data is None:
        data = build_demo_data(scenario=cfg.scenario, n_train=cfg.n_train, n_val=cfg.n_val,
                               n_test=cfg.n_test, n_pool_fashion=cfg.n_pool_fashion,
                               quick=cfg.quick, seed=cfg.seed)
    n_classes = len(data.class_names)
    pool = ArrayImages(data.pool_x)
    pool_fp = dataset_fingerprint(pool)
    timings["data"] = time.perf_counter() - t0
    in_domain_share = float((data.pool_true_label >= 0).mean())
    _log(f"      target: {len(data.train_x):,} labelled training images, {len(data.val_x):,} validation, "
         f"{len(data.test_x):,} test, {n_classes} classes; pool: {data.n_pool:,} unlabelled images "
         f"({100 * in_domain_share:.1f}% in-domain): "
         + ", ".join(f"{k} {v:,}" for k, v in data.source_counts().items()), cfg.progress)

    _log(f"[2/5] server: teacher = {WEIGHTS} (frozen) + a linear probe on the target training set",
         cfg.progress)
    t0 = time.perf_counter()
    parts = Lite0Parts(cfg.image_size, cfg.split).to(dev)
    with torch.no_grad():
        train_act = activations(parts.prefix, _images(data.train_x).to(dev))
        test_act = activations(parts.prefix, _images(data.test_x).to(dev))
        val_act = activations(parts.prefix, _images(data.val_x).to(dev))
        train_feat = activations(parts.suffix, train_act)
        test_feat = activations(parts.suffix, test_act)
    head = fit_linear_probe(train_feat.cpu(), torch.as_tensor(data.train_y), n_classes,
                            steps=cfg.teacher_steps, seed=cfg.seed).to(dev)
    with torch.no_grad():
        teacher_acc = float((head(test_feat).argmax(1).cpu().numpy() == data.test_y).mean())
    teacher = torch.nn.Sequential(parts, head).eval()
    timings["teacher"] = time.perf_counter() - t0
    _log(f"      teacher accuracy on the target test set: {100 * teacher_acc:.2f}%", cfg.progress)

    _log(f"[3/5] server: scoring {data.n_pool:,} reference images (energy, label, prefix features)",
         cfg.progress)
    t0 = time.perf_counter()
    scored = score(teacher, ArrayImages(data.pool_x, transform=to_input), batch_size=512,
                   device=str(dev), progress=cfg.progress, feature_module=parts.prefix)
    energy, pseudo, features = scored.energy, scored.label, scored.features
    timings["score"] = time.perf_counter() - t0
    source_energy = {name: float(np.median(energy[data.pool_source == s]))
                     for s, name in enumerate(SOURCES) if (data.pool_source == s).any()}
    act_shape = tuple(train_act.shape[1:])
    val_features = val_act.flatten(1).cpu().numpy().astype(features.dtype)
    # the students see float16-stored activations (as scored); the test set likewise
    test_set = _Activations(test_act.cpu().half().float(), data.test_y)
    # the true-label reference student's input (step 5), stored the same way
    train_set = _Activations(train_act.cpu().half().float(), data.train_y)
    del train_act, train_feat, test_feat

    _log("[4/5] server: selecting and packing; client: unpacking through PladaDataset and "
         "fine-tuning a pretrained student on each task", cfg.progress)
    rows: list[dict[str, Any]] = []
    # the same selections in a randomly ordered pool: what the bytes would be without
    # the clustering a sorted folder gives (report only; its own random stream)
    shuffle = np.random.default_rng([cfg.seed, 0x5EED]).permutation(data.n_pool)
    trained: dict[bytes, Any] = {}
    sel_dir = Path(cfg.selections_dir) / cfg.scenario if cfg.selections_dir else None
    t0 = time.perf_counter()
    detail = {"waiting for the codec's kernels": warmup.wait(), "select": 0.0, "pack": 0.0, "train": 0.0}
    plan: list[tuple[Strategy | None, float]] = [(s, k) for k in cfg.keeps
                                                 for s in strategies(cfg.safety_net, cfg.alphas)]
    plan.append((None, 1.0))
    for strat, keep in plan:
        t1 = time.perf_counter()
        if strat is None:
            indices, labels = np.arange(data.n_pool, dtype=np.int64), pseudo.astype(np.int64)
            meta = {"strategy": "none (no pruning)", "count": data.n_pool}
            name = NO_PRUNING
        else:
            kwargs = {}
            if strat.ranking == "auto":
                kwargs = dict(features=features, validation=(val_features, data.val_y))
            sel = select(energy, pseudo, keep=keep, strategy=strat.ranking, safety_net=strat.safety_net,
                         alpha=strat.alpha, n_classes=n_classes, seed=cfg.seed, **kwargs)
            indices, labels, meta = sel.indices, sel.labels, sel.metadata()
            name = strat.name
        t2 = time.perf_counter()
        detail["select"] += t2 - t1
        meta = {**meta, "name": name, "keep": keep, "scenario": cfg.scenario,
                "teacher": f"{WEIGHTS} + linear probe"}
        fname = _file_name(name, keep)
        path = out / "tasks" / f"{fname}.plada"
        size = pladacodec.write(path, indices, labels, data.n_pool, n_classes=n_classes,
                                class_names=data.class_names, reference_fingerprint=pool_fp,
                                metadata=meta)
        if sel_dir is not None:
            _save_selection(sel_dir, fname, indices, labels, data.n_pool, data.class_names, meta)
        task = PladaDataset(pool, path)  # the client's view of the file
        assert np.array_equal(task.indices, indices)
        task_labels = np.asarray(task.targets, dtype=np.int64)
        key = task.indices.tobytes() + task_labels.tobytes()
        t3 = time.perf_counter()
        detail["pack"] += t3 - t2
        if key in trained:  # auto picked a selection that is already trained: the same student
            result = trained[key]
        else:
            acts = torch.from_numpy(np.asarray(features[task.indices], dtype=np.float32)).view(-1, *act_shape)
            result = _train_student(cfg, parts, _Activations(acts, task_labels), test_set, n_classes, fname)
            result.model = None
            trained[key] = result
        t4 = time.perf_counter()
        detail["train"] += t4 - t3
        shuffled = len(pladacodec.encode(
            shuffle[indices], labels, data.n_pool, n_classes=n_classes,
            class_names=data.class_names, reference_fingerprint=pool_fp, metadata=meta))
        row = {"strategy": name, "keep": keep, "images": len(task), "bytes": size,
               "bytes_per_10k": 10_000 * size / max(len(task), 1),
               "bytes_shuffled_pool": shuffled,
               "student_accuracy": result.test_accuracy,
               "student_teacher_ratio": result.test_accuracy / teacher_acc if teacher_acc else float("nan"),
               "student_per_class": result.test_per_class,
               "steps": result.steps, "train_seconds": result.seconds,
               **_selection_stats(data, indices, labels, n_classes)}
        if strat is not None and strat.ranking == "auto":
            row["auto"] = meta["auto"]
        rows.append(row)
        detail["pack"] += time.perf_counter() - t4
        chosen = f" (chose {meta['auto']['chosen']})" if "auto" in meta else ""
        _log(f"      {fname:<28} {len(task):>6,} images {size:>8,} B  in-domain "
             f"{100 * row['in_domain']:5.1f}%  student {100 * result.test_accuracy:.2f}%{chosen}", cfg.progress)
    timings["students"] = time.perf_counter() - t0
    timings.update({f"students/{k}": v for k, v in detail.items()})

    _log("[5/5] reference point: the same student on the target training set's true labels", cfg.progress)
    t0 = time.perf_counter()
    baseline = _train_student(cfg, parts, train_set, test_set, n_classes, "true-labels")
    timings["baseline"] = time.perf_counter() - t0
    _log(f"      student on true labels: {100 * baseline.test_accuracy:.2f}%", cfg.progress)
    timings["total"] = time.perf_counter() - t_start

    report = {
        "config": {**asdict(cfg), "keeps": list(cfg.keeps), "alphas": list(cfg.alphas)},
        "scenario": cfg.scenario,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "pool": {"n": data.n_pool, "sources": data.source_counts(), "in_domain_share": in_domain_share,
                 "median_energy_by_source": source_energy, "fingerprint": pool_fp.hex()},
        "target": {"classes": list(data.class_names), "n_train": len(data.train_x),
                   "n_val": len(data.val_x), "n_test": len(data.test_x)},
        "teacher": {"model": f"{WEIGHTS}, frozen, + linear probe ({cfg.image_size} px)",
                    "accuracy": teacher_acc},
        "student": {"model": f"{WEIGHTS}: stem + first {cfg.split} blocks frozen, the rest fine-tuned, "
                             "fresh linear head", "init": "ImageNet-pretrained"},
        "true_label_student": {"accuracy": baseline.test_accuracy, "images": len(data.train_x),
                               "steps": baseline.steps},
        "rows": rows,
        "timings": timings,
    }
    write_report(report, out)
    return report


def _train_student(cfg: DemoConfig, parts, dataset: Dataset, test_set: Dataset, n_classes: int, desc: str):
    """The student recipe: ``epochs`` passes, but at least ``min_steps`` and at most
    ``max_steps`` steps (so the smallest selections still train, and no pruning, which
    trains longest, stays affordable on a CPU)."""
    from .pretrained import Student

    per_epoch = -(-len(dataset) // cfg.batch_size)
    steps = min(max(cfg.epochs * per_epoch, cfg.min_steps), cfg.max_steps)
    subset = dataset
    if steps < cfg.epochs * per_epoch:  # fewer steps than whole epochs: a seeded random part
        pick = np.random.default_rng(cfg.seed).permutation(len(dataset))[: steps * cfg.batch_size]
        subset = torch.utils.data.Subset(dataset, np.sort(pick).tolist())
    return train(subset, num_classes=n_classes, test=test_set, model=Student(parts, n_classes, cfg.seed),
                 epochs=1, min_steps=steps, batch_size=cfg.batch_size, augment=False,
                 device=cfg.device, seed=cfg.seed, progress=cfg.progress, desc=desc)


def run_scenarios(config: DemoConfig, scenarios: tuple[str, ...] = SCENARIOS) -> list[dict[str, Any]]:
    """Run several scenarios, each into ``config.out_dir/<scenario>``."""
    reports = []
    for name in scenarios:
        reports.append(run_demo(replace(config, scenario=name, out_dir=str(Path(config.out_dir) / name))))
    return reports

