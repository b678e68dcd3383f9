"""The client side in torch: a ``.plada`` task over a local reference set as a ``Dataset``.

>>> from torch.utils.data import DataLoader                          # doctest: +SKIP
>>> ds = PladaDataset("/data/reference", "task.plada", transform=T)  # doctest: +SKIP
>>> ds.classes[:2], len(ds)                                          # doctest: +SKIP
(['cat', 'dog'], 10000)
>>> loader = DataLoader(ds, batch_size=256, shuffle=True, num_workers=4)  # doctest: +SKIP

This module imports torch; ``import pladacodec`` does not import it (``pladacodec.PladaDataset``
is resolved lazily).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch.utils.data

from .errors import PladaReferenceError
from .reference import Reference, dataset_fingerprint, dataset_folder_layout, list_reference

__all__ = ["PladaDataset", "LabelledFolder", "load_task", "pil_loader"]


def pil_loader(path: str | os.PathLike[str]):
    """Open an image file as an RGB PIL image (torchvision's ``default_loader`` convention)."""
    from PIL import Image

    with open(path, "rb") as f:
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


class _DatasetFolders:
    """A dataset's folder layout, computed by the reader only for a task that names one."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def folder_layout(self):
        return dataset_folder_layout(self.dataset)


def _short(fp: bytes | None) -> str:
    return "none" if fp is None else bytes(fp).hex()[:16] + "…"


class PladaDataset(torch.utils.data.Dataset):
    """The images a ``.plada`` task selects from a reference set, with the task's labels.

    *reference* is a folder (listed in canonical order, see :mod:`pladacodec.reference`) or
    any map-style dataset (an item that is a tuple counts by its first element, so
    ``ImageFolder`` works).  *task* is a ``.plada`` path, its bytes or a decoded payload.
    Item ``i`` is ``(transform(image), label)`` for the task's ``i``-th selected index.

    The reference must be the one the task was made for: same number of images and, when
    the task records one, same fingerprint; otherwise :class:`PladaReferenceError`.  A task
    packed against the reference's folder layout (``encode(..., folders=...)``) decodes with
    the layout of *reference* (a folder, a :class:`Reference`, or a dataset that names its
    images by path, like ``ImageFolder``).

    Attributes: ``classes`` (class names), ``class_to_idx``, ``targets`` (labels as a list,
    torchvision style), ``indices`` (selected reference indices), ``payload``.
    """

    def __init__(
        self,
        reference: str | os.PathLike[str] | Reference | Sequence[Any],
        task: Any,
        transform: Callable[[Any], Any] | None = None,
        *,
        loader: Callable[[str], Any] = pil_loader,
    ) -> None:
        if isinstance(reference, (str, os.PathLike)):
            reference = Reference.from_dir(reference)
        payload = load_task(task, folders=reference if isinstance(reference, Reference) else _DatasetFolders(reference))
        if isinstance(reference, Reference):
            if reference.root is None:
                raise PladaReferenceError("the reference has no root folder to read images from")
            self._reference: Reference | None = reference
            self._dataset = None
            n, fp, where = reference.n, reference.fingerprint, f"folder {str(reference.root)!r}"
        else:
            self._reference, self._dataset = None, reference
            n, fp, where = len(reference), dataset_fingerprint(reference), type(reference).__name__
        expected_n = int(payload.n_reference)
        if n != expected_n:
            raise PladaReferenceError(
                f"the task was made for a reference set of {expected_n:,} images but {where} "
                f"holds {n:,}; the client needs the same reference images as the server"
            )
        expected_fp = getattr(payload, "reference_fingerprint", None)
        if expected_fp is not None and bytes(expected_fp) != fp:
            raise PladaReferenceError(
                f"the task was made for reference fingerprint {_short(expected_fp)} but {where} "
                f"has {_short(fp)}: same size, different images or order"
            )
        self.payload = payload
        self.indices = np.asarray(payload.indices, dtype=np.int64)
        self._labels = np.asarray(payload.labels, dtype=np.int64)
        n_classes = getattr(payload, "n_classes", None)
        if n_classes is None:
            n_classes = int(self._labels.max()) + 1 if len(self._labels) else 0
        names = getattr(payload, "class_names", None)
        self.classes: list[str] = list(names) if names else [str(c) for c in range(n_classes)]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.transform = transform
        self.loader = loader
        self.reference_fingerprint = fp

    @property
    def targets(self) -> list[int]:
        return self._labels.tolist()

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.indices)

    def reference_path(self, index: int) -> str:
        """The file of reference image *index* (folder references only)."""
        if self._reference is None:
            raise TypeError("this PladaDataset reads from a dataset, not a folder")
        return str(self._reference.path(index))

    def reference_item(self, index: int) -> Any:
        """The raw image at reference *index* (before ``transform``)."""
        if self._reference is not None:
            return self.loader(self.reference_path(index))
        item = self._dataset[index]
        return item[0] if isinstance(item, tuple) else item

    def __getitem__(self, i: int) -> tuple[Any, int]:
        image = self.reference_item(int(self.indices[i]))
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self._labels[i])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self):,} of {int(self.payload.n_reference):,} reference "
                f"images, {self.n_classes} classes)")


class LabelledFolder(torch.utils.data.Dataset):
    """A labelled test folder ``ROOT/CLASS/IMAGE`` whose labels follow a task's class order.

    A class folder is matched to a class name exactly, with ``/`` in the name written as
    ``_``, or by its index (``ROOT/3/...``).  Without *class_names* the folders, sorted, are
    the classes.  An unmatched folder raises ``ValueError`` naming it.
    """

    def __init__(self, root: str | os.PathLike[str], class_names: Sequence[str] | None = None,
                 transform: Callable[[Any], Any] | None = None, *,
                 loader: Callable[[str], Any] = pil_loader) -> None:
        self.root = Path(root)
        paths = [p for p in list_reference(self.root) if "/" in p]
        folders = sorted({p.split("/", 1)[0] for p in paths})
        if class_names is None:
            class_names = folders
        lookup: dict[str, int] = {}
        for i, name in enumerate(class_names):
            lookup.setdefault(name, i)
            lookup.setdefault(name.replace("/", "_"), i)
            lookup.setdefault(str(i), i)
        unknown = [f for f in folders if f not in lookup]
        if unknown:
            raise ValueError(
                f"test folder {str(self.root)!r} has class folders {unknown[:5]} that match none of "
                f"the task's classes {list(class_names)[:10]}"
            )
        self.classes = list(class_names)
        self.samples = [(str(self.root / p), lookup[p.split("/", 1)[0]]) for p in paths]
        self.targets = [t for _, t in self.samples]
        self.transform = transform
        self.loader = loader

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        path, target = self.samples[i]
        image = self.loader(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, target
