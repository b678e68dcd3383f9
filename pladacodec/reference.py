"""Reference-set identity: canonical order, manifest and fingerprint.

A PLADA task names reference images by their *index*, so sender and receiver
must agree on one ordered list of images.  This module defines that list for a
folder, writes it as a manifest, and condenses it into a 32-byte fingerprint
that travels in every ``.plada`` header made from it.  It imports neither
torch nor PIL.

Canonical order of a folder (:func:`list_reference`)
----------------------------------------------------
1. The folder is walked recursively.  Every entry whose name starts with
   ``.`` (hidden files and folders, ``.git``, ``.DS_Store``...) is skipped,
   together with everything below it.
2. Symbolic links are followed, to files and to folders alike.  A link to a
   folder that is already open on the current path (a cycle) is skipped;
   a broken link is skipped.  A folder reachable by two different paths is
   listed under both, as ``os.walk(followlinks=True)`` would.
3. A file is an image when its extension, lower-cased, is in
   :data:`IMAGE_EXTENSIONS`; every other file is ignored.  Images directly in
   the root folder are included too.
4. Each image is named by its path relative to the root, with ``/`` as the
   separator.  The list is sorted by the tuple of path components, each
   compared by Unicode code point (Python's ``str`` order; no locale, no
   case folding, no Unicode normalisation).  For the class-folder layout
   ``ROOT/CLASS/FILE`` this is exactly torchvision's ``ImageFolder`` order
   (class folders sorted, then file names sorted).  In deeper trees the two
   can differ: ImageFolder sorts ``os.walk`` tuples by whole path strings.
5. A name that is not valid UTF-8, or holds a newline or carriage return,
   raises :class:`~pladacodec.errors.PladaReferenceError`: it could not be
   written to a manifest unambiguously.

Manifest and fingerprint
------------------------
The manifest is the list above, one path per line, UTF-8, each line ended by
``\\n``.  The fingerprint is::

    SHA-256( b"pladacodec-reference-v1\\0" || N as u64 little-endian || manifest bytes )

so two reference sets share a fingerprint exactly when they list the same
paths in the same order.  Pixel contents are *not* hashed (hashing 10^6
files would cost more than scoring them); :func:`dataset_fingerprint` hashes
contents for in-memory datasets that have no paths.

Example:

>>> fingerprint(["cat/1.png", "dog/2.png"]).hex()[:16]
'9c99f432073bab1c'
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PladaReferenceError

__all__ = [
    "IMAGE_EXTENSIONS",
    "FINGERPRINT_SIZE",
    "list_reference",
    "manifest_bytes",
    "fingerprint",
    "Reference",
    "dataset_fingerprint",
]

#: Extensions (lower-case, with the dot) of the files a folder reference lists.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
)

#: Length in bytes of every fingerprint.
FINGERPRINT_SIZE = 32

_REFERENCE_TAG = b"pladacodec-reference-v1\0"
_DATASET_TAG = b"pladacodec-dataset-v1\0"
_COUNT = struct.Struct("<Q")


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _check_name(relpath: str) -> None:
    if "\n" in relpath or "\r" in relpath:
        raise PladaReferenceError(f"path {relpath!r} holds a line break; it cannot go in a manifest")
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:
        raise PladaReferenceError(
            f"path {relpath!r} is not valid UTF-8; rename it to use it in a reference set"
        ) from None


def list_reference(root: str | os.PathLike[str]) -> list[str]:
    """Relative POSIX paths of the images under *root*, in canonical order.

    The rule is given in the module docstring.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for p in ["b/1.png", "a/2.JPG", "a/10.png", "a/notes.txt", ".hidden/x.png"]:
    ...     (d / p).parent.mkdir(exist_ok=True); _ = (d / p).write_bytes(b"")
    >>> list_reference(d)
    ['a/10.png', 'a/2.JPG', 'b/1.png']
    """
    root_path = Path(root)
    try:
        root_stat = os.stat(root_path)
    except OSError as exc:
        raise PladaReferenceError(f"reference folder {str(root_path)!r} cannot be read: {exc}") from None
    if not stat.S_ISDIR(root_stat.st_mode):
        raise PladaReferenceError(f"reference {str(root_path)!r} is not a folder")

    found: list[tuple[str, ...]] = []
    # Iterative depth-first walk; each stack item carries the (dev, inode)
    # pairs of the folders open above it, for cycle protection.
    stack: list[tuple[Path, tuple[str, ...], frozenset[tuple[int, int]]]] = [
        (root_path, (), frozenset({(root_stat.st_dev, root_stat.st_ino)}))
    ]
    while stack:
        folder, parts, ancestors = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise PladaReferenceError(f"folder {str(folder)!r} cannot be listed: {exc}") from None
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError:  # broken symlink or vanished file
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    continue
                stack.append((Path(entry.path), parts + (name,), ancestors | {key}))
            elif stat.S_ISREG(st.st_mode) and _is_image_name(name):
                found.append(parts + (name,))
    found.sort()
    paths = ["/".join(p) for p in found]
    for p in paths:
        _check_name(p)
    return paths


def manifest_bytes(paths: Sequence[str]) -> bytes:
    """The manifest of *paths*: each path in UTF-8 followed by ``\\n``."""
    for p in paths:
        _check_name(p)
    return "".join(p + "\n" for p in paths).encode("utf-8")


def fingerprint(paths: Sequence[str]) -> bytes:
    """32-byte SHA-256 over a domain tag, N (u64 LE) and the manifest of *paths*.

    >>> len(fingerprint(["a.png"]))
    32
    >>> fingerprint(["a.png", "b.png"]) == fingerprint(["b.png", "a.png"])
    False
    """
    h = hashlib.sha256(_REFERENCE_TAG)
    h.update(_COUNT.pack(len(paths)))
    h.update(manifest_bytes(paths))
    return h.digest()


def _validate_manifest_paths(paths: Sequence[str], source: str) -> None:
    seen: set[str] = set()
    for line_no, p in enumerate(paths, 1):
        if not p:
            raise PladaReferenceError(f"{source}, line {line_no}: empty path")
        if p.startswith("/") or "\\" in p or any(part in ("", ".", "..") for part in p.split("/")):
            raise PladaReferenceError(
                f"{source}, line {line_no}: expected a relative POSIX path without '.', '..' "
                f"or empty components, found {p!r}"
            )
        if p in seen:
            raise PladaReferenceError(f"{source}, line {line_no}: path {p!r} is listed twice")
        seen.add(p)


@dataclass(frozen=True)
class Reference:
    """An ordered reference set: the paths, their root folder and the fingerprint.

    >>> ref = Reference.from_paths(["a/1.png", "b/2.png"])
    >>> ref.n, ref.fingerprint == fingerprint(ref.paths)
    (2, True)
    """

    root: Path | None
    paths: tuple[str, ...]
    fingerprint: bytes

    @property
    def n(self) -> int:
        """Number of images in the reference set."""
        return len(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, index: int) -> Path:
        """Absolute path of image *index* (needs :attr:`root`)."""
        if self.root is None:
            raise PladaReferenceError("this reference has no root folder; pass root= to locate its images")
        return self.root / self.paths[index]

    @classmethod
    def from_paths(cls, paths: Sequence[str], root: str | os.PathLike[str] | None = None) -> Reference:
        """A reference from an explicit ordered list of relative paths."""
        paths = tuple(paths)
        _validate_manifest_paths(paths, "path list")
        return cls(Path(root) if root is not None else None, paths, fingerprint(paths))

    @classmethod
    def from_dir(cls, root: str | os.PathLike[str]) -> Reference:
        """The reference set of a folder, in canonical order (see :func:`list_reference`)."""
        paths = tuple(list_reference(root))
        return cls(Path(root), paths, fingerprint(paths))

    @classmethod
    def from_manifest(
        cls, path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
    ) -> Reference:
        """Read a manifest file (UTF-8, one relative path per line) in its own order."""
        data = Path(path).read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PladaReferenceError(f"manifest {str(path)!r} is not UTF-8: {exc}") from None
        if text and not text.endswith("\n"):
            text += "\n"  # tolerate a missing final newline
        paths = tuple(text.split("\n")[:-1]) if text else ()
        paths = tuple(p[:-1] if p.endswith("\r") else p for p in paths)
        _validate_manifest_paths(paths, f"manifest {str(path)!r}")
        return cls(Path(root) if root is not None else None, paths, fingerprint(paths))

    def folder_layout(self):
        """The folders of this reference (runs of images that share a parent folder, in
        manifest order): the optional context of ``encode(..., folders=...)``.

        >>> Reference.from_paths(["a/1.png", "a/2.png", "b/1.png"]).folder_layout().starts.tolist()
        [0, 2]
        """
        layout = self.__dict__.get("_folder_layout")
        if layout is None:  # computed once per Reference (2.7 s for ImageNet-21K's 14 M paths)
            from .folders import FolderLayout

            layout = FolderLayout.from_paths(self.paths)
            self.__dict__["_folder_layout"] = layout  # a cache: the dataclass stays frozen
        return layout

    def write_manifest(self, path: str | os.PathLike[str]) -> None:
        """Write the manifest (atomically: a temporary file renamed into place)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(manifest_bytes(self.paths))
        os.replace(tmp, path)

    def check(self, n_reference: int, expected_fingerprint: bytes | None) -> None:
        """Raise :class:`PladaReferenceError` unless a task's N and fingerprint match this set."""
        if n_reference != self.n:
            raise PladaReferenceError(
                f"task expects {n_reference:,} reference images but this reference set has {self.n:,}"
            )
        if expected_fingerprint is not None and bytes(expected_fingerprint) != self.fingerprint:
            raise PladaReferenceError(
                f"task expects reference fingerprint {bytes(expected_fingerprint).hex()} "
                f"but this reference set has {self.fingerprint.hex()}"
            )


def _relative_sample_paths(dataset: Any, samples: Sequence[Any]) -> list[str]:
    root = getattr(dataset, "root", None)
    out: list[str] = []
    for item in samples:
        p = item[0] if isinstance(item, (tuple, list)) else item
        p = os.fspath(p)
        if root is not None:
            try:
                p = os.path.relpath(p, os.fspath(root))
            except ValueError:  # different drive on Windows
                pass
        out.append(Path(p).as_posix())
    return out


def dataset_fingerprint(dataset: Any) -> bytes:
    """A 32-byte fingerprint for a map-style dataset (anything with ``len``).

    The first rule that applies wins:

    1. ``dataset.reference`` is a :class:`Reference`: its fingerprint.
    2. ``dataset.samples`` or ``dataset.imgs`` (torchvision ``ImageFolder``,
       ``DatasetFolder``) or ``dataset.paths``: :func:`fingerprint` of the
       paths, made relative to ``dataset.root`` when it is set.  For an
       ``ImageFolder`` over a class-folder layout this equals
       ``Reference.from_dir(root).fingerprint``.
    3. ``dataset.data`` is an array (torchvision MNIST, CIFAR...): SHA-256 over
       a dataset tag, N (u64 LE), the dtype string, the shape and the raw
       array bytes in C order, so the pixel contents are identified.
    4. Otherwise: SHA-256 over the dataset tag, N and the dataset's qualified
       class name.  This is weak (two different datasets of one class and
       size collide); wrap such a dataset and give it ``paths`` instead.
    """
    ref = getattr(dataset, "reference", None)
    if isinstance(ref, Reference):
        return ref.fingerprint
    for attr in ("samples", "imgs", "paths"):
        samples = getattr(dataset, attr, None)
        if samples is not None and not isinstance(samples, (str, bytes)):
            return fingerprint(_relative_sample_paths(dataset, list(samples)))
    n = len(dataset)
    h = hashlib.sha256(_DATASET_TAG)
    h.update(_COUNT.pack(n))
    data = getattr(dataset, "data", None)
    if data is not None and hasattr(data, "shape") and hasattr(data, "dtype"):
        arr = data.numpy() if hasattr(data, "numpy") and not isinstance(data, np.ndarray) else data
        arr = np.ascontiguousarray(np.asarray(arr))
        h.update(b"data\0" + arr.dtype.str.encode() + b"\0")
        h.update(struct.pack(f"<{arr.ndim}Q", *arr.shape))
        h.update(arr.reshape(-1).view(np.uint8))
        return h.digest()
    cls = type(dataset)
    h.update(b"class\0" + f"{cls.__module__}.{cls.__qualname__}".encode("utf-8"))
    return h.digest()


def dataset_folder_layout(dataset: Any):
    """The folder layout (see :meth:`Reference.folder_layout`) of a map-style dataset that
    names its images by path (rules 1-2 of :func:`dataset_fingerprint`), else None."""
    from .folders import FolderLayout

    ref = getattr(dataset, "reference", None)
    if isinstance(ref, Reference):
        return ref.folder_layout()
    for attr in ("samples", "imgs", "paths"):
        samples = getattr(dataset, attr, None)
        if samples is not None and not isinstance(samples, (str, bytes)) and len(samples):
            return FolderLayout.from_paths(_relative_sample_paths(dataset, list(samples)))
    return None
