"""The client side without torch: open a task over a reference, read its images, export them.

Any framework can train on a task: :func:`export` writes the task's images as an
ImageFolder tree (one folder per class) with a ``labels.csv``, and
:class:`ReferenceImages` / :func:`open_task` give the images and labels directly.
:class:`pladacodec.PladaDataset` is the torch ``Dataset`` built on the same pieces.

>>> import pladacodec                                                        # doctest: +SKIP
>>> result = pladacodec.export("task.plada", "reference/", "task-images/")  # doctest: +SKIP
>>> result.labels_csv                                                        # doctest: +SKIP
PosixPath('task-images/labels.csv')

This module imports neither torch nor PIL (PIL is imported by :func:`pil_loader` when called).
"""

from __future__ import annotations

import csv
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .errors import PladaReferenceError
from .reference import ImageList, PladaReferenceWarning, Reference

__all__ = ["load_task", "resolve_reference", "check_task", "open_task", "OpenTask", "ReferenceImages",
           "pil_loader", "export", "ExportResult"]


def pil_loader(source: str | os.PathLike[str] | BinaryIO):
    """Open an image file (a path or a binary file object) as an RGB PIL image
    (torchvision's ``default_loader`` convention)."""
    from PIL import Image

    if hasattr(source, "read"):
        with Image.open(source) as img:
            return img.convert("RGB")
    with open(source, "rb") as f:
        img = Image.open(f)
        return img.convert("RGB")


def load_task(task: Any, folders: Any = None):
    """A decoded payload from a ``.plada`` path, its bytes, or an already decoded payload.
    ``folders``: the reference's folder layout, for tasks packed against one."""
    import pladacodec

    if isinstance(task, (str, os.PathLike)):
        return pladacodec.read(task, folders=folders)
    if isinstance(task, (bytes, bytearray, memoryview)):
        return pladacodec.decode(task, folders=folders)
    if all(hasattr(task, a) for a in ("indices", "labels", "n_reference")):
        return task
    raise TypeError(
        f"task must be a .plada path, its bytes or a decoded Payload, found {type(task).__name__}"
    )


def resolve_reference(reference: Any, *, cache_dir: str | os.PathLike[str] | None = None) -> Reference | None:
    """*reference* as a :class:`Reference`: a Reference, or a folder of images or of tar
    archives (listed in canonical order; a tar index is cached).  None for anything else
    (a map-style dataset)."""
    if isinstance(reference, Reference):
        return reference
    if isinstance(reference, (str, os.PathLike)):
        if os.path.isfile(reference):
            raise PladaReferenceError(
                f"{os.fspath(reference)!r} is a file; the reference is the folder that holds the images "
                "(or Reference.from_manifest(MANIFEST, root=FOLDER))"
            )
        return Reference.from_dir(reference, cache_dir=cache_dir)
    return None


def _short(fp: bytes | None) -> str:
    return "none" if fp is None else bytes(fp).hex()[:16] + "…"


def check_task(payload: Any, n: int, fingerprint: bytes, where: str) -> None:
    """Refuse a task made for another reference (:class:`PladaReferenceError`); warn
    (:class:`PladaReferenceWarning`) when the task carries no fingerprint to check."""
    expected_n = int(payload.n_reference)
    if n != expected_n:
        raise PladaReferenceError(
            f"the task was made for a reference set of {expected_n:,} images but {where} "
            f"holds {n:,}; the client needs the same reference images as the server"
        )
    expected_fp = getattr(payload, "reference_fingerprint", None)
    if expected_fp is None:
        warnings.warn(PladaReferenceWarning(
            f"the task carries no reference fingerprint, so {where} is checked only by its size "
            f"({n:,} images): another reference of that size, or the same images in another order, "
            "would give wrong images without an error. Pack tasks with a fingerprint "
            "(reference_fingerprint=..., pack --reference-manifest)"
        ), stacklevel=3)
    elif bytes(expected_fp) != fingerprint:
        raise PladaReferenceError(
            f"the task was made for reference fingerprint {_short(expected_fp)} but {where} "
            f"has {_short(fingerprint)}: same size, different images or order"
        )


def _where(ref: Reference) -> str:
    kind = "tar archives in" if ref.kind == "tar" else "folder"
    return f"{kind} {str(ref.root)!r}" if ref.root is not None else "the reference"


@dataclass(frozen=True)
class OpenTask:
    """A task checked against its reference: the payload, the reference's fingerprint, and
    the task's images (an :class:`ImageList` of only those, in task order)."""

    payload: Any
    images: ImageList
    reference_fingerprint: bytes

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.payload.labels, dtype=np.int64)

    @property
    def class_names(self) -> list[str]:
        names = getattr(self.payload, "class_names", None)
        if names:
            return list(names)
        n_classes = getattr(self.payload, "n_classes", None)
        if n_classes is None:
            labels = self.labels
            n_classes = int(labels.max()) + 1 if labels.size else 0
        return [str(c) for c in range(n_classes)]


def open_task(reference: Any, task: Any, *, cache_dir: str | os.PathLike[str] | None = None) -> OpenTask:
    """Decode *task* (path, bytes or payload) against *reference* (folder, tar folder or
    :class:`Reference`), check that it was made for it, and locate its images.  Only the
    task's images are kept (a 1 % task of ImageNet-21K: 142 k paths, a few MB)."""
    ref = resolve_reference(reference, cache_dir=cache_dir)
    if ref is None:
        raise TypeError(f"reference must be a folder or a Reference, found {type(reference).__name__}")
    if ref.root is None:
        raise PladaReferenceError("the reference has no root folder to read images from")
    payload = load_task(task, folders=ref)
    check_task(payload, ref.n, ref.fingerprint, _where(ref))
    return OpenTask(payload, ref.take(np.asarray(payload.indices, dtype=np.int64)), ref.fingerprint)


class ReferenceImages:
    """Every image of a :class:`Reference`, in reference order, as a map-style dataset
    (``len`` and ``[i]``: ``transform(loader(file object))``) that any loader (torch's
    DataLoader included) can batch.  Tar members are read in place."""

    def __init__(self, reference: Reference, transform: Callable[[Any], Any] | None = None, *,
                 loader: Callable[[Any], Any] = pil_loader) -> None:
        if reference.root is None:
            raise PladaReferenceError("the reference has no root folder to read images from")
        self.reference = reference
        self.images = reference.images
        self.transform = transform
        self.loader = loader

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Any:
        with self.images.open(int(index)) as f:
            image = self.loader(f)
        return self.transform(image) if self.transform is not None else image


# --------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote."""

    root: Path
    labels_csv: Path
    n_images: int
    class_dirs: dict[str, str]  # class name -> its folder name under root
    mode: str  # "symlink", "copy" (files of a folder reference) or "extract" (tar members)


_UNSAFE = {chr(c) for c in range(32)} | {"/", "\\", "\x7f"}


def class_dir_name(name: str) -> str:
    """A safe folder name for a class name: ``/``, ``\\`` and control characters become
    ``_``; an empty name, ``.``, ``..`` or a name starting with ``.`` gets a ``_`` in front
    (a hidden folder would be skipped by readers)."""
    safe = "".join("_" if ch in _UNSAFE else ch for ch in name)
    if not safe or safe.startswith("."):
        safe = "_" + safe
    raw = safe.encode("utf-8", "surrogateescape")
    if len(raw) > 200:
        safe = raw[:200].decode("utf-8", "ignore")
    return safe


def export(task: Any, reference: Any, to: str | os.PathLike[str], *, copy: bool = False,
           cache_dir: str | os.PathLike[str] | None = None) -> ExportResult:
    """Write a task's images as an ImageFolder tree: ``TO/CLASS/NNNN-NAME`` plus ``TO/labels.csv``.

    * one folder per class that has images, named after the class (:func:`class_dir_name`);
    * each image named by its reference index (zero-padded) and its own file name, so names
      never collide and each file says where it came from;
    * images of a folder reference are symbolic links to the reference's files (absolute),
      or copies with ``copy=True``; members of tar archives are always extracted (written);
    * ``labels.csv``: ``path,label,class`` for every image, in task order; ``path`` is
      relative to *to*, ``label`` the task's label (torchvision's ``ImageFolder`` numbers
      classes by sorted folder name instead, which can differ: use ``labels.csv`` for the
      task's numbering).

    *to* must not exist or be empty; the tree is written beside it and renamed into place,
    so a failed export leaves nothing half-written.  Nothing here needs torch.
    """
    opened = open_task(reference, task, cache_dir=cache_dir)
    images, labels, names = opened.images, opened.labels, opened.class_names
    indices = np.asarray(opened.payload.indices, dtype=np.int64)
    dest = Path(to)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(17, "the export folder exists and is not empty", str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    dirs: dict[int, str] = {}
    used: set[str] = set()
    for label in sorted(set(labels.tolist())):
        name = names[label] if 0 <= label < len(names) else str(label)
        d = class_dir_name(name)
        if d in used:
            d = f"{d}~{label}"
        used.add(d)
        dirs[label] = d
        (tmp / d).mkdir()
    width = len(str(max(int(opened.payload.n_reference) - 1, 0)))
    mode = "extract" if images.in_archives else ("copy" if copy else "symlink")
    root_abs = Path(os.path.abspath(images.root)) if images.root is not None else None
    rows = []
    try:
        for j in range(len(images)):
            label = int(labels[j])
            base = images.name(j).rpartition("/")[2]
            rel = f"{dirs[label]}/{int(indices[j]):0{width}d}-{base}"
            target = tmp / rel
            if mode == "extract":
                target.write_bytes(images.read_bytes(j))
            elif mode == "copy":
                shutil.copyfile(images.file(j), target)
            else:
                os.symlink(root_abs / images.name(j), target)
            rows.append((rel, label, names[label] if 0 <= label < len(names) else str(label)))
        with open(tmp / "labels.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(("path", "label", "class"))
            w.writerows(rows)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(dest, dest / "labels.csv", len(rows),
                        {names[lab] if 0 <= lab < len(names) else str(lab): d for lab, d in dirs.items()}, mode)
