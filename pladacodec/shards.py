"""Tar-shard references: images kept inside uncompressed tar archives, read in place.

ImageNet-21K is distributed as one tar per synset, and large image sets are commonly
kept as WebDataset shards.  A folder of ``*.tar`` files is a reference set of its own
(canonical order in :mod:`pladacodec.reference`): the members are named
``ARCHIVE/MEMBER`` (the archive's relative path without ``.tar``), so the manifest and
fingerprint equal those of the folder the archives extract to.  Nothing is extracted:

* the member index (for each image: archive, data offset, size) is built once by
  reading the tar headers (plain headers directly, 512 bytes each, about 10 us per member;
  pax and GNU extended headers through :mod:`tarfile`), and cached in :func:`default_cache_dir` under a key of the
  folder's real path, with the size and modification time of every archive; an archive
  that changes, appears or disappears makes the next open rebuild it;
* an image is read with one ``pread`` at its member's offset
  (:meth:`pladacodec.reference.ImageList.read_bytes`).

>>> import io, tarfile, tempfile, pathlib
>>> from pladacodec.reference import Reference
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> with tarfile.open(d / "cat.tar", "w") as tar:
...     for name in ["2.png", "1.png", "notes.txt"]:
...         info = tarfile.TarInfo(name); info.size = 3
...         tar.addfile(info, io.BytesIO(b"PNG"))
>>> ref = Reference.from_dir(d, cache_dir=d / ".cache")
>>> ref.kind, list(ref.paths), ref.read_bytes(0)
('tar', ['cat/1.png', 'cat/2.png'], b'PNG')
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._manifest import PathTable, _MemoryStore
from .errors import PladaReferenceError

__all__ = ["ShardIndex", "load_index", "default_cache_dir", "INDEX_VERSION"]

#: Version of the cached index layout; a cache of another version is rebuilt.
INDEX_VERSION = 1


def default_cache_dir() -> Path:
    """``$PLADACODEC_CACHE``, else ``$XDG_CACHE_HOME/pladacodec``, else ``~/.cache/pladacodec``."""
    env = os.environ.get("PLADACODEC_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pladacodec"


@dataclass(frozen=True)
class ShardIndex:
    """Where each image of a tar-shard reference lives: ``archives[archive[i]]`` (relative
    to the root) holds image ``i`` at byte ``offset[i]``, ``size[i]`` bytes long."""

    paths: PathTable
    archives: tuple[str, ...]
    archive: np.ndarray  # int32
    offset: np.ndarray  # int64
    size: np.ndarray  # int64


def _stem(rel: str) -> tuple[str, ...]:
    return tuple(rel[: -len(".tar")].split("/"))


def _member_parts(name: str, archive: str) -> tuple[str, ...] | None:
    if name.startswith("/") or "\\" in name:
        raise PladaReferenceError(
            f"archive {archive!r}: member {name!r} has an absolute name or a backslash; it cannot be "
            "named in a manifest"
        )
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise PladaReferenceError(f"archive {archive!r}: member {name!r} climbs out of the archive ('..')")
    if not parts or any(p.startswith(".") for p in parts):
        return None
    return parts


_NO_DATA_TYPES = (b"1", b"2", b"3", b"4", b"5", b"6")  # links, devices, folders, FIFOs: no data blocks
_TARFILE_TYPES = (b"x", b"g", b"L", b"K", b"S")  # pax / GNU extended headers, sparse files


def _headers_direct(path: str | os.PathLike[str]):
    """Every header of a plain tar (name, type, data offset, size, link name), read 512 bytes
    at a time with ``pread``, about 3x faster than :mod:`tarfile`; None when the archive holds
    anything only tarfile interprets (pax or GNU extended headers, base-256 numbers, a
    checksum that does not match): then tarfile reads it.  Names follow tarfile's rules."""
    out = []
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        end = os.fstat(fd).st_size
        if end < 512:
            return None
        pos = 0
        while pos + 512 <= end:
            h = os.pread(fd, 512, pos)
            if len(h) < 512:
                return None
            if not any(h):  # end-of-archive block
                break
            kind = h[156:157]
            if kind in _TARFILE_TYPES or h[124] & 0x80 or h[148] & 0x80:
                return None
            try:
                stored = int(h[148:156].split(b"\0", 1)[0].strip() or b"0", 8)
                size = int(h[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
            except ValueError:
                return None
            if stored != sum(h) - sum(h[148:156]) + 256:
                return None
            name = h[:100].split(b"\0", 1)[0]
            prefix = h[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
            link = h[157:257].split(b"\0", 1)[0]
            out.append((name.decode("utf-8", "surrogateescape"), kind, pos + 512, size,
                        link.decode("utf-8", "surrogateescape")))
            pos += 512 if kind in _NO_DATA_TYPES else 512 + (size + 511) // 512 * 512
        return out
    finally:
        os.close(fd)


def _headers_tarfile(path: str | os.PathLike[str], archive: str):
    out = []
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                if info.sparse is not None:
                    raise PladaReferenceError(f"archive {archive!r}: member {info.name!r} is a sparse "
                                              "file and cannot be read in place")
                kind = b"0" if info.isreg() else b"1" if info.islnk() else b"5"
                out.append((info.name, kind, info.offset_data, info.size, info.linkname))
    except tarfile.ReadError as exc:
        raise PladaReferenceError(f"archive {archive!r} is not a readable uncompressed tar file: {exc}") from None
    return out


def list_archive(path: str | os.PathLike[str], archive: str) -> list[tuple[tuple[str, ...], int, int]]:
    """(member path parts, data offset, size) of the image members of one tar, sorted by parts."""
    from .reference import _is_image_name

    headers = _headers_direct(path)
    if headers is None:
        headers = _headers_tarfile(path, archive)
    out: dict[tuple[str, ...], tuple[int, int]] = {}
    by_name: dict[str, tuple[int, int]] = {}
    for name, kind, offset, size, link in headers:
        if kind in (b"0", b"\0", b"7"):
            if kind == b"\0" and name.endswith("/"):
                continue  # an old-style folder entry
            where = (offset, size)
            by_name[name] = where
        elif kind == b"1":
            where = by_name.get(link)
            if where is None:
                continue  # a link to something that is not a stored regular file
        else:
            continue  # folders, symbolic links, devices
        parts = _member_parts(name, archive)
        if parts is None or not _is_image_name(parts[-1]):
            continue
        if parts in out:
            raise PladaReferenceError(f"archive {archive!r} holds member {'/'.join(parts)!r} twice")
        out[parts] = where
    return [(parts, off, size) for parts, (off, size) in sorted(out.items())]


def _fingerprint_of_archives(root: Path, archives: list[str]) -> list[list]:
    out = []
    for rel in archives:
        st = os.stat(root / rel)
        out.append([rel, st.st_size, st.st_mtime_ns])
    return out


def _cache_path(root: Path, cache_dir) -> Path:
    key = hashlib.sha256(os.fsencode(os.path.realpath(root))).hexdigest()[:24]
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "tar-index" / key


def _load_cached(cache: Path, state: dict) -> ShardIndex | None:
    try:
        meta = json.loads((cache / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if {k: meta.get(k) for k in state} != state:
        return None
    try:
        paths = PathTable.from_manifest(cache / "manifest")
        arrays = [np.load(cache / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                  for name in ("archive", "offset", "size")]
    except (OSError, ValueError, PladaReferenceError):
        return None
    n = len(paths)
    if meta.get("n") != n or any(a.shape != (n,) for a in arrays) or paths.fingerprint.hex() != meta.get("fingerprint"):
        return None
    return ShardIndex(paths, tuple(state["archives_rel"]), *arrays)


def _store(cache: Path, index: ShardIndex, state: dict) -> None:
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tag = f".{os.getpid()}.tmp"
        files = {"manifest": None, "archive.npy": index.archive, "offset.npy": index.offset, "size.npy": index.size}
        for name, arr in files.items():
            tmp = cache / (name + tag)
            with open(tmp, "wb") as f:
                if arr is None:
                    for chunk in index.paths.iter_manifest():
                        f.write(chunk)
                else:
                    np.save(f, np.ascontiguousarray(arr), allow_pickle=False)
            os.replace(tmp, cache / name)
        meta = dict(state, n=len(index.paths), fingerprint=index.paths.fingerprint.hex())
        tmp = cache / ("index.json" + tag)
        tmp.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(tmp, cache / "index.json")  # last: it commits the other files
    except OSError as exc:
        warnings.warn(f"could not cache the tar member index in {str(cache)!r} ({exc}); it will be "
                      "rebuilt on the next open", stacklevel=3)


def build_index(root: str | os.PathLike[str], archives: list[str]) -> ShardIndex:
    """Read every archive's headers (nothing is extracted) and index its image members."""
    from .reference import _check_name

    root = Path(root)
    stems = [_stem(a) for a in archives]
    order = sorted(range(len(archives)), key=lambda i: stems[i])
    for a, b in zip(order, order[1:]):
        if stems[b][: len(stems[a])] == stems[a]:
            raise PladaReferenceError(
                f"archives {archives[a]!r} and {archives[b]!r} would interleave in the canonical order "
                f"(one's name without .tar is a folder of the other); keep archives side by side"
            )
    # Per archive: its manifest lines as bytes and numpy arrays; no Python object per image
    # survives an archive (14 M members would take gigabytes as lists of str and int).
    groups: list[bytes] = []  # manifest bytes, grouped into chunks of about 1 MB for the parser
    pending: list[bytes] = []
    pending_size = 0
    arch, offs, sizes = [], [], []
    n = 0
    for rank, i in enumerate(order):
        members = list_archive(root / archives[i], archives[i])
        if not members:
            continue
        prefix = "/".join(stems[i]) + "/"
        names = [prefix + "/".join(parts) for parts, _, _ in members]
        text = "\n".join(names) + "\n"
        try:
            if "\r" in text or "\\" in text or text.count("\n") != len(names):
                raise UnicodeEncodeError("utf-8", "", 0, 1, "")
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            for p in names:
                _check_name(p)
            raise
        pending.append(data)
        pending_size += len(data)
        if pending_size >= 1 << 20:
            groups.append(b"".join(pending))
            pending, pending_size = [], 0
        arch.append(np.full(len(members), rank, dtype=np.int32))
        offs.append(np.fromiter((m[1] for m in members), dtype=np.int64, count=len(members)))
        sizes.append(np.fromiter((m[2] for m in members), dtype=np.int64, count=len(members)))
        n += len(members)
    if pending:
        groups.append(b"".join(pending))
    total = sum(len(g) for g in groups)

    def store():
        data = np.frombuffer(b"".join(groups), np.uint8)
        groups.clear()
        return _MemoryStore(data)

    paths = PathTable._parse(list(groups), n, store, f"archives under {str(root)!r}", total)
    empty32, empty64 = np.zeros(0, np.int32), np.zeros(0, np.int64)
    return ShardIndex(paths, tuple(archives[i] for i in order),
                      np.concatenate(arch) if arch else empty32, np.concatenate(offs) if offs else empty64,
                      np.concatenate(sizes) if sizes else empty64)


def load_index(root: str | os.PathLike[str], archives: list[str], *, cache_dir=None) -> ShardIndex:
    """The member index of the tar archives *archives* (relative to *root*), from the cache
    when every archive's size and modification time still match, else built and cached."""
    root = Path(root)
    state = {"version": INDEX_VERSION, "archives": _fingerprint_of_archives(root, archives)}
    cache = _cache_path(root, cache_dir)
    stems_order = sorted(archives, key=_stem)
    state["archives_rel"] = stems_order
    index = _load_cached(cache, state)
    if index is None:
        index = build_index(root, archives)
        _store(cache, index, state)
    return index
