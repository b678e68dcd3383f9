"""Folder layouts: the optional side information of index method 3 and label method 4.

Reference sets are stored folder by folder (ImageNet-21K: 21,841 synset folders), and a
teacher's selection comes in runs inside relevant folders with a nearly constant label
per folder.  Without side information the context coders (index method 2, label method
3) *guess* where a folder starts, from a jump in the gaps.  When sender and receiver
both hold the reference's layout — they share its manifest anyway, since indices name
images in manifest order — the coders can use the true folder changes instead
(FORMAT.md §5.3, §6.4): 0.7-3 % smaller files on clustered selections, measured by
``pladacodec bench``.

A :class:`FolderLayout` cuts the reference's index range ``[0, N)`` into ``F`` runs of
consecutive indices.  A file coded with it names it in its header by ``F`` and an 8-byte
digest (FORMAT.md §3, tag 2), so decoding with another layout, or with none, fails
with :class:`~pladacodec.errors.PladaReferenceError` instead of producing wrong labels.

>>> layout = FolderLayout.from_paths(["cat/1.png", "cat/2.png", "dog/1.png"])
>>> layout.starts.tolist(), layout.n_reference, layout.n_folders
([0, 2], 3, 2)
>>> FolderLayout.from_sizes([2, 1]) == layout
True
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import numpy as np

from . import _spec as S
from .errors import PladaEncodeError

__all__ = ["FolderLayout", "as_layout"]


class FolderLayout:
    """``F`` folders over a reference of ``N`` images: folder ``j`` holds the indices
    ``starts[j] <= i < starts[j + 1]`` (``starts[F] = N``).  Immutable."""

    __slots__ = ("_starts", "_ends", "n_reference", "_digest")

    def __init__(self, starts, n_reference: int) -> None:
        if isinstance(n_reference, bool) or not isinstance(n_reference, (int, np.integer)):
            raise PladaEncodeError(f"n_reference must be an integer, got {n_reference!r}")
        n_reference = int(n_reference)
        if not 1 <= n_reference <= S.MAX_N_REFERENCE:
            raise PladaEncodeError(f"n_reference = {n_reference:,} is outside [1, {S.MAX_N_REFERENCE:,}]")
        arr = np.asarray(starts)
        if arr.ndim != 1 or arr.size == 0:
            raise PladaEncodeError("folder starts must be a non-empty 1-D sequence (the first is 0)")
        if arr.dtype.kind not in "iu":
            raise PladaEncodeError(f"folder starts must be integers, got {arr.dtype}")
        if arr.dtype.kind == "u" and arr.size and int(arr.max()) >= n_reference:
            raise PladaEncodeError(f"folder start {int(arr.max()):,} is not below n_reference = {n_reference:,}")
        arr = arr.astype(np.int64)
        if int(arr[0]) != 0:
            raise PladaEncodeError(f"the first folder must start at index 0, not {int(arr[0]):,}")
        if arr.size > 1 and not bool(np.all(arr[1:] > arr[:-1])):
            at = int(np.argmax(arr[1:] <= arr[:-1])) + 1
            raise PladaEncodeError(f"folder starts must increase strictly: starts[{at}] = {int(arr[at]):,} after {int(arr[at - 1]):,}")
        if int(arr[-1]) >= n_reference:
            raise PladaEncodeError(f"folder start {int(arr[-1]):,} is not below n_reference = {n_reference:,}")
        arr.setflags(write=False)
        self._starts = arr
        self._ends = np.append(arr[1:], np.int64(n_reference))  # private: the kernels take writable arrays
        self.n_reference = n_reference
        self._digest = None

    # --- constructors ---------------------------------------------------------------------

    @classmethod
    def from_sizes(cls, sizes) -> "FolderLayout":
        """Folders of the given sizes (each >= 1), in order; N is their sum."""
        arr = np.asarray(sizes)
        if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
            raise PladaEncodeError("folder sizes must be a non-empty 1-D sequence of integers")
        if int(arr.min()) < 1:
            raise PladaEncodeError("every folder holds at least one image")
        total = np.cumsum(arr.astype(np.int64))
        return cls(np.concatenate(([0], total[:-1])), int(total[-1]))

    @classmethod
    def from_paths(cls, paths: Sequence[str]) -> "FolderLayout":
        """The runs of a reference's images (manifest order, ``/``-separated relative paths)
        that share a parent folder: ``a/1.png a/2.png b/1.png`` -> two folders.  In a tree
        whose folders hold both images and sub-folders, a folder's images can form several
        runs; each run counts as a folder (both sides derive the same runs)."""
        from ._manifest import PathTable, require_path_list

        require_path_list(paths, "FolderLayout.from_paths()")  # a str would be one-character paths
        if isinstance(paths, PathTable) and len(paths):
            return cls(paths.parent_starts(), len(paths))
        if len(paths) == 0:
            raise PladaEncodeError("a reference without images has no folder layout")
        parents = [p.rpartition("/")[0] for p in paths]
        starts = [0] + [i for i in range(1, len(parents)) if parents[i] != parents[i - 1]]
        return cls(np.asarray(starts, dtype=np.int64), len(paths))

    # --- properties -----------------------------------------------------------------------

    @property
    def starts(self) -> np.ndarray:
        """First index of each folder (int64, read-only)."""
        return self._starts

    @property
    def n_folders(self) -> int:
        return int(self._starts.size)

    @property
    def digest(self) -> bytes:
        """The 8 bytes a file coded with this layout carries (FORMAT.md §3, tag 2):
        the first 8 bytes of SHA-256(domain || u64 N || u64 F || u64 start, for each folder)."""
        if self._digest is None:
            h = hashlib.sha256(S.FOLDERS_DIGEST_DOMAIN)
            h.update(struct.pack("<QQ", self.n_reference, self.n_folders))
            h.update(self._starts.astype("<u8").tobytes())
            self._digest = h.digest()[: S.FOLDERS_DIGEST_SIZE]
        return self._digest

    def ends_from(self, base: int) -> np.ndarray:
        """The kernels' view (FORMAT.md §5.3): the end of the folder holding ``base`` and of
        every later folder (for a base at or past N: just N)."""
        first = int(np.searchsorted(self._ends, base, side="right"))
        return self._ends[min(first, self._ends.size - 1) :]

    def folder_of(self, indices) -> np.ndarray:
        """The folder of each index (int64)."""
        return np.searchsorted(self._starts, np.asarray(indices, dtype=np.int64), side="right") - 1

    def __eq__(self, other) -> bool:
        if not isinstance(other, FolderLayout):
            return NotImplemented
        return self.n_reference == other.n_reference and np.array_equal(self._starts, other._starts)

    def __hash__(self) -> int:
        return hash((self.n_reference, self.digest))

    def __repr__(self) -> str:
        return f"FolderLayout(n_folders={self.n_folders:,}, n_reference={self.n_reference:,}, digest={self.digest.hex()})"


def as_layout(folders, n_reference: int | None = None, error=PladaEncodeError, resolve: bool = True):
    """``folders`` as a FolderLayout: a FolderLayout, or anything with ``folder_layout()`` (a
    :class:`~pladacodec.reference.Reference`; None when it has no layout), or None; checked against ``n_reference`` when
    given.  With ``resolve=False`` only the type is checked and ``folders`` comes back as it
    is (a Reference's layout costs seconds for millions of paths; readers resolve it only
    for a file that names a layout)."""
    if folders is None:
        return None
    if not isinstance(folders, FolderLayout):
        if not hasattr(folders, "folder_layout"):
            raise error(f"folders must be a FolderLayout or a Reference, got {type(folders).__name__}")
        if not resolve:
            return folders
        folders = folders.folder_layout()
        if folders is None:  # e.g. a dataset that does not name its images by path
            return None
    if n_reference is not None and folders.n_reference != n_reference:
        raise error(f"the folder layout covers {folders.n_reference:,} images, the task n_reference = {n_reference:,}")
    return folders
