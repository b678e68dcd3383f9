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

from .client import check_task, load_task, open_task, pil_loader, resolve_reference
from .reference import Reference, dataset_fingerprint, dataset_folder_layout, list_reference

__all__ = ["PladaDataset", "LabelledFolder", "load_task", "pil_loader"]


class _DatasetFolders:
    """A dataset's folder layout, computed by the reader only for a task that names one."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def folder_layout(self):
        return dataset_folder_layout(self.dataset)


class PladaDataset(torch.utils.data.Dataset):
    """The images a ``.plada`` task selects from a reference set, with the task's labels.

    *reference* is a folder of images or of tar archives (listed in canonical order, see
    :mod:`pladacodec.reference`; tar members are read in place), a :class:`Reference` (e.g.
    ``Reference.from_manifest(MANIFEST, root=FOLDER)``, the fast way at ImageNet-21K scale)
    or any map-style dataset (an item that is a tuple counts by its first element, so
    ``ImageFolder`` works).  *task* is a ``.plada`` path, its bytes or a decoded payload.
    Item ``i`` is ``(transform(image), label)`` for the task's ``i``-th selected index.

    The reference must be the one the task was made for: same number of images and, when
    the task records one, same fingerprint; otherwise :class:`PladaReferenceError`.  A task
    without a fingerprint is accepted with a :class:`~pladacodec.reference.PladaReferenceWarning`.
    A task packed against the reference's folder layout (``encode(..., folders=...)``)
    decodes with the layout of *reference*.

    Only the task's own images are kept (paths, or archive offsets, in numpy buffers): a 1 %
    task of ImageNet-21K holds a few MB, and DataLoader workers share it without copying.
    *loader* gets the image's path for a folder reference and a binary file object for a
    tar member (the default, :func:`pil_loader`, takes both).

    Attributes: ``classes`` (class names), ``class_to_idx``, ``targets`` (labels as a list,
    torchvision style), ``labels`` (the same as a numpy array), ``indices`` (selected
    reference indices), ``payload``.
    """

    def __init__(
        self,
        reference: str | os.PathLike[str] | Reference | Sequence[Any],
        task: Any,
        transform: Callable[[Any], Any] | None = None,
        *,
        loader: Callable[[Any], Any] = pil_loader,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        ref = resolve_reference(reference, cache_dir=cache_dir)
        if ref is not None:
            opened = open_task(ref, task)
            payload, self._images, self._dataset = opened.payload, opened.images, None
            fp = ref.fingerprint
        else:
            self._images, self._dataset = None, reference
            payload = load_task(task, folders=_DatasetFolders(reference))
            fp = dataset_fingerprint(reference)
            check_task(payload, len(reference), fp, type(reference).__name__)
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
    def labels(self) -> np.ndarray:
        """The task's labels (int64), in item order."""
        return self._labels

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.indices)

    def _position(self, index: int) -> int:
        j = int(np.searchsorted(self.indices, index))
        if j >= len(self.indices) or int(self.indices[j]) != index:
            raise IndexError(f"reference image {index:,} is not one of the task's images")
        return j

    def _need_images(self):
        if self._images is None:
            raise TypeError("this PladaDataset reads from a dataset, not a folder")
        return self._images

    def image_name(self, i: int) -> str:
        """The reference path (manifest name) of item *i* (folder and tar references)."""
        return self._need_images().name(i)

    def open_image(self, i: int):
        """Item *i*'s image as a binary file object (before ``loader`` and ``transform``)."""
        return self._need_images().open(i)

    def reference_path(self, index: int) -> str:
        """The file of reference image *index*, one of the task's (folder references only;
        a tar member has no file of its own: :meth:`open_image`)."""
        images = self._need_images()
        return str(images.file(self._position(index)))

    def reference_item(self, index: int) -> Any:
        """The raw image at reference *index* (before ``transform``)."""
        if self._images is not None:
            return self._load(self._position(index))
        item = self._dataset[index]
        return item[0] if isinstance(item, tuple) else item

    def _load(self, j: int) -> Any:
        if self._images.in_archives:
            with self._images.open(j) as f:
                return self.loader(f)
        return self.loader(str(self._images.file(j)))

    def __getitem__(self, i: int) -> tuple[Any, int]:
        i = int(i)
        if self._images is not None:
            image = self._load(i if i >= 0 else i + len(self))
        else:
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
