"""Reference-set identity: canonical order, manifest and fingerprint.

A PLADA task names reference images by their *index*, so sender and receiver
must agree on one ordered list of images.  This module defines that list for a
folder of images or a folder of tar archives, writes it as a manifest, and
condenses it into a 32-byte fingerprint that travels in every ``.plada`` header
made from it.  It imports neither torch nor PIL.

Canonical order of a folder (:func:`list_reference`)
----------------------------------------------------
1. The folder is walked recursively.  Every entry whose name starts with
   ``.`` (hidden files and folders, ``.git``, ``.DS_Store``...) is skipped,
   together with everything below it.
2. Symbolic links are followed, to files and to folders alike.  A link to a
   folder that is already open on the current path (a cycle) is skipped.
   A folder reachable by two different paths is listed under both, as
   ``os.walk(followlinks=True)`` would.
3. An entry that cannot be examined (``stat`` fails: a broken link, a path
   too long, no permission) is an error, :class:`PladaReferenceError`, because
   leaving it out would make the fingerprint depend on the machine.  With
   ``skip_unreadable=True`` (``pladacodec manifest --skip-unreadable``) such
   entries are left out instead, and a :class:`PladaReferenceWarning` names them.
4. A file is an image when its extension, lower-cased, is in
   :data:`IMAGE_EXTENSIONS`; every other file is ignored.  Images directly in
   the root folder are included too.
5. Each image is named by its path relative to the root, with ``/`` as the
   separator.  The list is sorted by the tuple of path components, each
   compared by Unicode code point (Python's ``str`` order; no locale, no
   case folding, no Unicode normalisation).  For the class-folder layout
   ``ROOT/CLASS/FILE`` this is exactly torchvision's ``ImageFolder`` order
   (class folders sorted, then file names sorted).  In deeper trees the two
   can differ: ImageFolder sorts ``os.walk`` tuples by whole path strings.
6. A name that is not valid UTF-8, or holds a newline, a carriage return or
   a backslash, raises :class:`~pladacodec.errors.PladaReferenceError`: it
   could not be written to a manifest unambiguously (a manifest separates
   folders with ``/`` only, and a backslash is a separator on Windows).
7. A folder without a single image is an error for :meth:`Reference.from_dir`
   (``list_reference`` returns an empty list).

Canonical order of tar archives (:mod:`pladacodec.shards`)
----------------------------------------------------------
A folder that holds uncompressed tar files (``*.tar``, found by the walk above) and
no loose image (or any folder, with ``kind='tar'``) is a *tar-shard reference*: ImageNet-21K's one tar per synset, or
WebDataset shards.  Its images are the archive members that are regular files
(a hard link counts as the member it links to; symbolic links inside an archive
are not followed) with an image extension and no hidden path component, named
``ARCHIVE/MEMBER``: the archive's relative path without ``.tar``, then the
member's name (a leading ``./`` dropped).  The list is sorted as in rule 5.
So a tar-shard reference has **the same manifest and fingerprint as the folder
you get by extracting each archive into a folder named after it** (``n01440764.tar``
into ``n01440764/``): the server may hold the folder and the client the tars.
Images are read in place (``pread`` at the member's offset); the member index is
built once and cached (:func:`pladacodec.shards.default_cache_dir`).

Manifest and fingerprint
------------------------
The manifest is the list above, one path per line, UTF-8, each line ended by
``\\n``.  The fingerprint is::

    SHA-256( b"pladacodec-reference-v1\\0" || N as u64 little-endian || manifest bytes )

so two reference sets share a fingerprint exactly when they list the same
paths in the same order.  Pixel contents are *not* hashed (hashing 10^6
files would cost more than scoring them); :func:`dataset_fingerprint` hashes
contents for in-memory datasets that have no paths.

A :class:`Reference` holds its paths compactly (:class:`PathTable`: the manifest
bytes and one offset per image, about 4 bytes per image beyond the bytes, which a
large manifest file keeps on disk), so ImageNet-21K's 14,197,122 paths open in a few
seconds and a few hundred MB, and forked DataLoader workers share them.

Example:

>>> fingerprint(["cat/1.png", "dog/2.png"]).hex()[:16]
'9c99f432073bab1c'
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ._manifest import REFERENCE_TAG, PathTable, require_path_list
from .errors import PladaReferenceError

__all__ = [
    "IMAGE_EXTENSIONS",
    "FINGERPRINT_SIZE",
    "PathTable",
    "PladaReferenceWarning",
    "ImageList",
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

_DATASET_TAG = b"pladacodec-dataset-v1\0"
_COUNT = struct.Struct("<Q")
_COMPRESSED_TAR = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst", ".tar.lz4")


class PladaReferenceWarning(UserWarning):
    """Something about a reference or a task that may make the task unusable elsewhere:
    entries left out of a listing, or a task that carries no fingerprint."""


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _check_name(relpath: str) -> None:
    if "\n" in relpath or "\r" in relpath:
        raise PladaReferenceError(f"path {relpath!r} holds a line break; it cannot go in a manifest")
    if "\\" in relpath:
        raise PladaReferenceError(
            f"path {relpath!r} holds a backslash; manifests separate folders with '/' only "
            "(and Windows reads a backslash as a separator): rename it to use it in a reference set"
        )
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:
        raise PladaReferenceError(
            f"path {relpath!r} is not valid UTF-8; rename it to use it in a reference set"
        ) from None


@dataclass
class _Scan:
    images: list[tuple[str, ...]]
    archives: list[tuple[str, ...]]
    compressed: list[str]
    skipped: list[tuple[str, str]]


def _scan(root: str | os.PathLike[str], skip_unreadable: bool) -> _Scan:
    """Walk *root* (rules 1-3): image files, uncompressed tar files, compressed tars seen."""
    root_path = Path(root)
    try:
        root_stat = os.stat(root_path)
    except OSError as exc:
        raise PladaReferenceError(f"reference folder {str(root_path)!r} cannot be read: {exc}") from None
    if not stat.S_ISDIR(root_stat.st_mode):
        raise PladaReferenceError(f"reference {str(root_path)!r} is not a folder")
    scan = _Scan([], [], [], [])
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
            if not skip_unreadable or not parts:
                raise PladaReferenceError(
                    f"folder {str(folder)!r} cannot be listed: {exc}"
                    + ("" if not parts else "; pass skip_unreadable=True (--skip-unreadable) to leave it out")
                ) from None
            scan.skipped.append(("/".join(parts), exc.strerror or str(exc)))
            continue
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                rel = "/".join(parts + (name,))
                reason = exc.strerror or str(exc)
                if entry.is_symlink():
                    reason = f"broken symbolic link ({reason})"
                if not skip_unreadable:
                    raise PladaReferenceError(
                        f"{rel!r} under {str(root_path)!r} cannot be examined: {reason}. Leaving it out would "
                        "make the manifest depend on this machine; fix it, or pass skip_unreadable=True "
                        "(pladacodec manifest --skip-unreadable) to leave it out"
                    ) from None
                scan.skipped.append((rel, reason))
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    continue
                stack.append((Path(entry.path), parts + (name,), ancestors | {key}))
            elif stat.S_ISREG(st.st_mode):
                lower = name.lower()
                if _is_image_name(name):
                    scan.images.append(parts + (name,))
                elif lower.endswith(".tar"):
                    scan.archives.append(parts + (name,))
                elif lower.endswith(_COMPRESSED_TAR):
                    scan.compressed.append("/".join(parts + (name,)))
    if scan.skipped:
        shown = "; ".join(f"{p} ({why})" for p, why in scan.skipped[:5])
        more = f" and {len(scan.skipped) - 5:,} more" if len(scan.skipped) > 5 else ""
        warnings.warn(
            PladaReferenceWarning(
                f"left out {len(scan.skipped):,} entr{'y' if len(scan.skipped) == 1 else 'ies'} of "
                f"{str(root_path)!r} that cannot be examined: {shown}{more}"
            ),
            stacklevel=3,
        )
    return scan


def _sorted_paths(found: list[tuple[str, ...]]) -> list[str]:
    found.sort()
    paths = ["/".join(p) for p in found]
    for p in paths:
        _check_name(p)
    return paths


def _resolve_kind(root, scan: _Scan, kind: str) -> str:
    if kind not in ("auto", "folder", "tar"):
        raise ValueError(f"kind must be 'auto', 'folder' or 'tar', not {kind!r}")
    if kind == "auto":
        if scan.archives and scan.images:  # a folder reference as before, whose tars were always ignored
            warnings.warn(PladaReferenceWarning(
                f"{str(root)!r} holds both image files ({len(scan.images):,}) and tar archives "
                f"({len(scan.archives):,}): listing the image files and ignoring the archives; "
                "kind='tar' (--kind tar) lists the archives' members instead"
            ), stacklevel=3)
        kind = "folder" if scan.images else "tar" if scan.archives else "folder"
    return kind


def _no_images(root, scan: _Scan, kind: str) -> PladaReferenceError:
    hint = ""
    if scan.compressed:
        hint = (f"; it holds {len(scan.compressed):,} compressed tar archive(s) such as "
                f"{scan.compressed[0]!r}, which cannot be read in place: decompress them to .tar")
    what = "no tar archive holding images" if kind == "tar" else "no image"
    return PladaReferenceError(
        f"reference {str(root)!r} holds {what} (image extensions: {', '.join(sorted(IMAGE_EXTENSIONS))}; "
        f"uncompressed .tar archives are read as shards){hint}"
    )


def list_reference(
    root: str | os.PathLike[str], *, skip_unreadable: bool = False, kind: str = "auto",
    cache_dir: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Relative POSIX paths of the images under *root*, in canonical order.

    The rules are given in the module docstring.  For a folder of tar archives these
    are the archives' members (see :mod:`pladacodec.shards`; the member index is cached).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for p in ["b/1.png", "a/2.JPG", "a/10.png", "a/notes.txt", ".hidden/x.png"]:
    ...     (d / p).parent.mkdir(exist_ok=True); _ = (d / p).write_bytes(b"")
    >>> list_reference(d)
    ['a/10.png', 'a/2.JPG', 'b/1.png']
    """
    scan = _scan(root, skip_unreadable)
    if _resolve_kind(root, scan, kind) == "tar" and scan.archives:
        from .shards import load_index

        return list(load_index(root, _sorted_paths(list(scan.archives)), cache_dir=cache_dir).paths)
    return _sorted_paths(scan.images)


def _lenient_chunks(paths: Sequence[str], batch: int = 1 << 16):
    require_path_list(paths, "this function")
    if isinstance(paths, PathTable):
        yield from paths.iter_manifest()
        return
    items = list(paths) if not isinstance(paths, (list, tuple)) else paths
    for a in range(0, len(items), batch):
        part = items[a : a + batch]
        for i, p in enumerate(part):
            if not isinstance(p, str):
                raise TypeError(f"path {a + i} is a {type(p).__name__}, not a str ({p!r:.60})")
        text = "".join(p + "\n" for p in part)
        if text.count("\n") != len(part) or "\r" in text:
            for p in part:
                _check_name(p)
        try:
            yield text.encode("utf-8")
        except UnicodeEncodeError:
            for p in part:
                _check_name(p)
            raise


def manifest_bytes(paths: Sequence[str]) -> bytes:
    """The manifest of *paths* (a list of str, not one str): each path in UTF-8 followed by ``\\n``."""
    return b"".join(_lenient_chunks(paths))


def fingerprint(paths: Sequence[str]) -> bytes:
    """32-byte SHA-256 over a domain tag, N (u64 LE) and the manifest of *paths*.

    *paths* is a list (or tuple, :class:`PathTable`) of relative paths; a single str
    raises TypeError (it would otherwise count as a list of one-character paths).

    >>> len(fingerprint(["a.png"]))
    32
    >>> fingerprint(["a.png", "b.png"]) == fingerprint(["b.png", "a.png"])
    False
    """
    require_path_list(paths, "fingerprint()")
    if isinstance(paths, PathTable):
        return paths.fingerprint
    if not isinstance(paths, (list, tuple)):
        paths = list(paths)
    h = hashlib.sha256(REFERENCE_TAG)
    h.update(_COUNT.pack(len(paths)))
    for chunk in _lenient_chunks(paths):
        h.update(chunk)
    return h.digest()


# --------------------------------------------------------------------------------------
# where images live
# --------------------------------------------------------------------------------------

_MAX_OPEN_ARCHIVES = 64


class ImageList:
    """A list of reference images and where each lives, held compactly (numpy buffers only,
    so forked workers share it): a folder root and relative paths, or tar archives and
    each member's offset and size.  :meth:`Reference.take` makes one for a task's images.

    ``len``, :meth:`name` (relative path), :meth:`location` (for messages),
    :meth:`file` (a path on disk, folder references only), :meth:`read_bytes` and
    :meth:`open` (a binary file object) take a position in this list.
    """

    __slots__ = ("root", "paths", "archives", "archive", "offset", "size", "_fds")

    def __init__(self, root: Path | None, paths: PathTable, archives: tuple[str, ...] | None = None,
                 archive: np.ndarray | None = None, offset: np.ndarray | None = None,
                 size: np.ndarray | None = None) -> None:
        self.root = root
        self.paths = paths
        self.archives = archives
        self.archive = archive
        self.offset = offset
        self.size = size
        self._fds: OrderedDict | None = None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def in_archives(self) -> bool:
        """True when the images are tar members."""
        return self.archives is not None

    def name(self, j: int) -> str:
        return self.paths[j]

    def _need_root(self) -> Path:
        if self.root is None:
            raise PladaReferenceError("this reference has no root folder; pass root= to locate its images")
        return self.root

    def file(self, j: int) -> Path:
        """The image file of position *j* (folder references; tar members have none)."""
        root = self._need_root()
        if self.archives is not None:
            raise PladaReferenceError(
                f"image {self.paths[j]!r} is member of archive {self.archives[int(self.archive[j])]!r}, "
                "not a file of its own: read it with read_bytes() or open()"
            )
        return root / self.paths[j]

    def location(self, j: int) -> str:
        root = self._need_root()
        if self.archives is not None:
            return f"{root / self.archives[int(self.archive[j])]}[offset {int(self.offset[j]):,}]"
        return str(root / self.paths[j])

    def _archive_fd(self, a: int) -> int:
        pid = os.getpid()
        if self._fds is None or self._fds.get("pid") != pid:
            self._fds = OrderedDict(pid=pid)
        fd = self._fds.get(a)
        if fd is None:
            fd = os.open(self._need_root() / self.archives[a], os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            self._fds[a] = fd
            if len(self._fds) > _MAX_OPEN_ARCHIVES + 1:
                key = next(k for k in self._fds if k != "pid")
                os.close(self._fds.pop(key))
        else:
            self._fds.move_to_end(a)
        return fd

    def read_bytes(self, j: int) -> bytes:
        """The bytes of image *j* (a tar member is read in place)."""
        if self.archives is None:
            return self.file(j).read_bytes()
        size, offset = int(self.size[j]), int(self.offset[j])
        data = os.pread(self._archive_fd(int(self.archive[j])), size, offset)
        if len(data) != size:
            raise PladaReferenceError(
                f"{self.location(j)}: the archive ends {size - len(data):,} bytes early; it changed "
                "after its index was built (open the reference again to rebuild the index)"
            )
        return data

    def open(self, j: int) -> BinaryIO:
        """A binary file object with image *j* (the file itself, or the member's bytes)."""
        if self.archives is None:
            return open(self.file(j), "rb")
        return io.BytesIO(self.read_bytes(j))

    def take(self, positions) -> ImageList:
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        if self.archives is None:
            return ImageList(self.root, self.paths.take(pos))
        return ImageList(self.root, self.paths.take(pos), self.archives, np.ascontiguousarray(self.archive[pos]),
                         np.ascontiguousarray(self.offset[pos]), np.ascontiguousarray(self.size[pos]))

    def __getstate__(self):
        return (self.root, self.paths, self.archives, self.archive, self.offset, self.size)

    def __setstate__(self, state) -> None:
        self.root, self.paths, self.archives, self.archive, self.offset, self.size = state
        self._fds = None

    def __del__(self) -> None:
        fds = self._fds
        if fds and fds.get("pid") == os.getpid():
            for k, fd in fds.items():
                if k != "pid":
                    try:
                        os.close(fd)
                    except OSError:
                        pass


@dataclass(frozen=True)
class Reference:
    """An ordered reference set: the paths, their root folder and the fingerprint.

    ``paths`` is a :class:`PathTable` (a sequence of str held as bytes + offsets).
    For a tar-shard reference, ``shards`` says where each image lives in the archives.

    >>> ref = Reference.from_paths(["a/1.png", "b/2.png"])
    >>> ref.n, ref.fingerprint == fingerprint(ref.paths), ref.kind
    (2, True, 'folder')
    """

    root: Path | None
    paths: PathTable
    fingerprint: bytes
    shards: Any = field(default=None, compare=False, repr=False)

    @property
    def n(self) -> int:
        """Number of images in the reference set."""
        return len(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def kind(self) -> str:
        """``'folder'`` (image files) or ``'tar'`` (members of tar archives)."""
        return "tar" if self.shards is not None else "folder"

    @property
    def images(self) -> ImageList:
        """Where each image lives (see :class:`ImageList`)."""
        images = self.__dict__.get("_images")
        if images is None:
            if self.shards is not None:
                s = self.shards
                images = ImageList(self.root, self.paths, s.archives, s.archive, s.offset, s.size)
            else:
                images = ImageList(self.root, self.paths)
            self.__dict__["_images"] = images  # a cache: the dataclass stays frozen
        return images

    def take(self, indices) -> ImageList:
        """The images at *indices* (e.g. a task's), as a compact :class:`ImageList` of their own."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= self.n):
            raise PladaReferenceError(f"image indices out of range for a reference of {self.n:,} images")
        return self.images.take(idx)

    def path(self, index: int) -> Path:
        """Absolute path of image *index* (needs :attr:`root`; folder references only: a tar
        member has no file of its own, use :meth:`open` or :meth:`read_bytes`)."""
        return self.images.file(index)

    def open(self, index: int) -> BinaryIO:
        """Image *index* as a binary file object (PIL's ``Image.open`` takes it)."""
        return self.images.open(index)

    def read_bytes(self, index: int) -> bytes:
        """The bytes of image *index*, read in place for a tar member."""
        return self.images.read_bytes(index)

    @classmethod
    def from_paths(cls, paths: Sequence[str], root: str | os.PathLike[str] | None = None) -> Reference:
        """A reference from an explicit ordered list of relative paths (a list, not one str)."""
        table = PathTable.from_paths(paths)
        return cls._checked(root, table)

    @classmethod
    def _checked(cls, root, table: PathTable, shards=None, source: str = "the path list") -> Reference:
        if len(table) == 0:
            raise PladaReferenceError(f"{source} holds no image; a reference set needs at least one")
        return cls(Path(root) if root is not None else None, table, table.fingerprint, shards)

    @classmethod
    def from_dir(
        cls, root: str | os.PathLike[str], *, skip_unreadable: bool = False, kind: str = "auto",
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> Reference:
        """The reference set of a folder of images or of tar archives, in canonical order.

        *kind* is ``'auto'`` (tar archives when the folder holds some and no loose image; with
        both, the image files, and a :class:`PladaReferenceWarning`), ``'folder'`` or ``'tar'``.  A folder without images is an error.  For tar archives
        the member index is cached under *cache_dir* (default
        :func:`pladacodec.shards.default_cache_dir`) and rebuilt when an archive changes.
        """
        scan = _scan(root, skip_unreadable)
        kind = _resolve_kind(root, scan, kind)
        if kind == "tar":
            if not scan.archives:
                raise _no_images(root, scan, kind)
            from .shards import load_index

            index = load_index(root, _sorted_paths(list(scan.archives)), cache_dir=cache_dir)
            if len(index.paths) == 0:
                raise _no_images(root, scan, kind)
            return cls(Path(root), index.paths, index.paths.fingerprint, index)
        if not scan.images:
            raise _no_images(root, scan, kind)
        table = PathTable.from_paths(_sorted_paths(scan.images), f"folder {str(root)!r}")
        return cls(Path(root), table, table.fingerprint)

    @classmethod
    def from_shards(cls, root: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None,
                    skip_unreadable: bool = False) -> Reference:
        """The reference set of a folder of tar archives (``from_dir(root, kind='tar')``)."""
        return cls.from_dir(root, kind="tar", cache_dir=cache_dir, skip_unreadable=skip_unreadable)

    @classmethod
    def from_manifest(
        cls, path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None, *,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> Reference:
        """Read a manifest file (UTF-8, one relative path per line) in its own order.

        Streams over the file (14.2 M paths in a few seconds and a few hundred MB); a large
        manifest stays on disk and paths are read from it on demand, so it must not be
        modified in place while the reference is used (replacing it is fine).  When *root*
        holds tar archives at its top level and not the manifest's first image as a file, the
        manifest must be the archives' canonical listing and images are read from them.
        """
        table = PathTable.from_manifest(path)
        ref = cls._checked(root, table, source=f"manifest {os.fspath(path)!r}")
        if root is not None and _has_top_level_tar(root) and not os.path.exists(os.path.join(root, table[0])):
            shards = cls.from_dir(root, kind="tar", cache_dir=cache_dir)
            if shards.fingerprint != ref.fingerprint:
                raise PladaReferenceError(
                    f"manifest {os.fspath(path)!r} (fingerprint {ref.fingerprint.hex()[:16]}...) is not the "
                    f"canonical listing of the tar archives in {os.fspath(root)!r} "
                    f"({shards.fingerprint.hex()[:16]}...)"
                )
            return shards
        return ref

    def folder_layout(self):
        """The folders of this reference (runs of images that share a parent folder, in
        manifest order): the optional context of ``encode(..., folders=...)``.

        >>> Reference.from_paths(["a/1.png", "a/2.png", "b/1.png"]).folder_layout().starts.tolist()
        [0, 2]
        """
        layout = self.__dict__.get("_folder_layout")
        if layout is None:
            from .folders import FolderLayout

            layout = FolderLayout(self.paths.parent_starts(), self.n)
            self.__dict__["_folder_layout"] = layout  # a cache: the dataclass stays frozen
        return layout

    def write_manifest(self, path: str | os.PathLike[str]) -> None:
        """Write the manifest (atomically: a temporary file renamed into place)."""
        from ._manifest import write_manifest

        write_manifest(self.paths, path)

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


def _has_top_level_tar(root) -> bool:
    try:
        with os.scandir(root) as it:
            return any(e.name.lower().endswith(".tar") and not e.name.startswith(".") for e in it)
    except OSError:
        return False


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
