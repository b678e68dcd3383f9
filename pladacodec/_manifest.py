"""Compact path lists: a manifest held as bytes plus line offsets, parsed without a str per path.

A reference of 14,197,122 images (ImageNet-21K) has a manifest of about 440 MB.  As a
tuple of Python strings it takes about 2 GB and 30 s to build, and every DataLoader
worker forked from the process touches (so copies) the pages of those objects.  A
:class:`PathTable` keeps instead:

* the manifest bytes (``path\\n`` for each path), in memory for small manifests or read
  on demand from the manifest file itself (``os.pread``; nothing is mapped, so only what
  is read counts towards a process's memory), and
* one offset per line in a numpy array (4 bytes per path for manifests under 4 GiB).

Parsing streams over the file in chunks, checks every rule of a manifest (UTF-8, no
empty path or component, no ``.`` or ``..``, no backslash, no duplicate) and computes the
SHA-256 fingerprint on the way; peak memory is the offsets and one 8-byte hash per path.
This module imports nothing beyond numpy and the standard library.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from .errors import PladaReferenceError

__all__ = ["PathTable", "require_path_list"]

REFERENCE_TAG = b"pladacodec-reference-v1\0"
_COUNT = struct.Struct("<Q")
_CHUNK = 8 << 20  # bytes parsed at a time
#: A manifest file up to this size is read into memory; a larger one is read on demand.
IN_MEMORY_LIMIT = 64 << 20
# What may not appear in a manifest line (checked exactly only in a chunk where a quick
# substring test found a candidate): an empty line or component, a leading or trailing
# '/', a backslash, a '.' or '..' component.
_BAD_LINE = re.compile(rb"^$|^/|//|/$|\\|(?:^|/)\.\.?(?:/|$)", re.M)


def require_path_list(paths, what: str) -> None:
    """Raise TypeError for a single str/bytes/path where a list of paths is expected
    (a str is a Sequence, so ``fingerprint("reference/")`` would hash one-character paths)."""
    if isinstance(paths, (str, bytes, bytearray, memoryview, os.PathLike)):
        shown = repr(os.fspath(paths) if isinstance(paths, os.PathLike) else paths)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        raise TypeError(
            f"{what} takes a list of relative image paths, not a single {type(paths).__name__} ({shown}); "
            "for a folder use Reference.from_dir(...), for a manifest file Reference.from_manifest(...)"
        )


def _line_error(source: str, line_no: int, line: bytes, problem: str | None = None) -> PladaReferenceError:
    text = line.decode("utf-8", "backslashreplace")
    if problem is None:
        if not line:
            problem = "empty path"
        elif b"\\" in line:
            problem = f"path {text!r} holds a backslash; manifests use '/' between folders (rename the file)"
        else:
            problem = (f"expected a relative POSIX path without '.', '..' or empty components, "
                       f"found {text!r}")
    return PladaReferenceError(f"{source}, line {line_no:,}: {problem}")


# --------------------------------------------------------------------------------------
# byte stores
# --------------------------------------------------------------------------------------


class _MemoryStore:
    __slots__ = ("buf",)

    def __init__(self, buf: np.ndarray) -> None:
        buf.setflags(write=False)
        self.buf = buf

    def read(self, start: int, stop: int) -> bytes:
        return self.buf[start:stop].tobytes()

    def view(self, start: int, stop: int):
        return memoryview(self.buf[start:stop])


class _FileStore:
    """Bytes of a manifest file, read with ``os.pread`` (one descriptor per process)."""

    __slots__ = ("path", "size", "identity", "_fd", "_pid")

    def __init__(self, path: str, st: os.stat_result) -> None:
        self.path = path
        self.size = st.st_size
        self.identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        self._fd = -1
        self._pid = -1

    def _open(self) -> int:
        if self._fd < 0 or self._pid != os.getpid():
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != self.identity:
                os.close(fd)
                raise PladaReferenceError(
                    f"manifest {self.path!r} changed since it was read; open the reference again"
                )
            self._fd, self._pid = fd, os.getpid()
        return self._fd

    def read(self, start: int, stop: int) -> bytes:
        stop = min(stop, self.size)  # a last line without its newline
        return os.pread(self._open(), stop - start, start) if stop > start else b""

    def view(self, start: int, stop: int):
        data = self.read(start, stop)
        return data + b"\n" * (stop - start - len(data))

    def __getstate__(self):
        return (self.path, self.size, self.identity)

    def __setstate__(self, state) -> None:
        self.path, self.size, self.identity = state
        self._fd, self._pid = -1, -1

    def __del__(self) -> None:
        if self._fd >= 0 and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass


# --------------------------------------------------------------------------------------
# PathTable
# --------------------------------------------------------------------------------------


class PathTable(Sequence):
    """An immutable sequence of relative POSIX paths stored as manifest bytes + offsets.

    ``table[i]`` is a str; ``len``, slicing, iteration and ``==`` (with any sequence of
    str) work as for a tuple.  Pickling copies the bytes of an in-memory table, and only
    the file name of a file-backed one.

    >>> t = PathTable.from_paths(["a/1.png", "b/2.png"])
    >>> len(t), t[1], list(t) == ["a/1.png", "b/2.png"], t.manifest_bytes()
    (2, 'b/2.png', True, b'a/1.png\\nb/2.png\\n')
    """

    __slots__ = ("_store", "_starts", "_fingerprint", "__weakref__")

    def __init__(self, store, starts: np.ndarray, fingerprint: bytes | None = None) -> None:
        starts.setflags(write=False)
        self._store = store
        self._starts = starts  # n + 1 line starts; starts[n] = total length
        self._fingerprint = fingerprint

    # --- constructors --------------------------------------------------------------------

    @classmethod
    def from_paths(cls, paths: Iterable[str], source: str = "path list") -> PathTable:
        """Check and pack an iterable of str paths."""
        require_path_list(paths, "a path list")
        if isinstance(paths, PathTable):
            return paths
        paths = list(paths)
        for i, p in enumerate(paths):
            if not isinstance(p, str):
                raise TypeError(f"{source}: item {i} is a {type(p).__name__}, not a str path ({p!r:.60})")
            if "\n" in p or "\r" in p:
                raise PladaReferenceError(f"path {p!r} holds a line break; it cannot go in a manifest")
        text = "".join(p + "\n" for p in paths)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            bad = next(p for p in paths if not _encodes(p))
            raise PladaReferenceError(
                f"path {bad!r} is not valid UTF-8; rename it to use it in a reference set"
            ) from None
        return cls._parse([data] if data else [], len(paths), lambda: _MemoryStore(np.frombuffer(data, np.uint8)),
                          source, len(data))

    @classmethod
    def from_manifest(cls, path: str | os.PathLike[str]) -> PathTable:
        """Parse a manifest file (UTF-8, one path per line; CRLF and a missing final newline
        are tolerated).  Streams over the file: memory is the offsets plus 8 bytes per path
        while checking for duplicates."""
        path = os.fspath(path)
        source = f"manifest {path!r}"
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            n, exact = _count_lines(f)
            f.seek(0)
            if st.st_size <= IN_MEMORY_LIMIT or not exact:
                chunks = list(_line_chunks(f, source))
                data = b"".join(chunks)
                return cls._parse(chunks, n, lambda: _MemoryStore(np.frombuffer(data, np.uint8)), source, len(data))
            return cls._parse(_line_chunks(f, source), n, lambda: _FileStore(path, st), source, st.st_size + 1)

    @classmethod
    def _parse(cls, chunks: Iterable[bytes], n: int, make_store, source: str, total: int | None = None) -> PathTable:
        h = hashlib.sha256(REFERENCE_TAG)
        h.update(_COUNT.pack(n))
        # offsets fit in 4 bytes below 4 GiB of manifest (ImageNet-21K: 0.44 GB)
        starts = np.empty(n + 1, dtype=np.uint32 if total is not None and total < 2**32 else np.int64)
        starts[0] = 0
        line = 0
        base = 0
        increasing = True  # strictly, in (zero-padded bytes, length) order: then no duplicate
        last = None
        for chunk in chunks:
            h.update(chunk)
            arr = np.frombuffer(chunk, np.uint8)
            ends = np.flatnonzero(arr == 10)
            m = ends.size
            if line + m > n:
                raise PladaReferenceError(f"{source} changed while it was read")
            _check_chunk(chunk, arr, ends, line, source)
            starts[line + 1 : line + 1 + m] = ends + (base + 1)
            if increasing and m:
                first = chunk[: int(ends[0])]
                increasing = (last is None or _key(last, first) < _key(first, last)) and _increasing(chunk, ends)
                last = chunk[int(ends[-2]) + 1 if m > 1 else 0 : int(ends[-1])]
            line += m
            base += len(chunk)
        if line != n:
            raise PladaReferenceError(f"{source} changed while it was read")
        if starts.dtype == np.int64 and base < 2**32:
            starts = starts.astype(np.uint32)
        del chunks
        table = cls(make_store(), starts, h.digest())
        if not increasing:  # not sorted: look for duplicates by hash
            hashes = np.empty(n, dtype=np.uint64)
            at = 0
            for chunk in table.iter_manifest():
                ends = np.flatnonzero(np.frombuffer(chunk, np.uint8) == 10)
                hashes[at : at + ends.size] = _line_hashes(chunk, ends)
                at += ends.size
            table._check_duplicates(hashes, source)
        return table

    def _check_duplicates(self, hashes: np.ndarray, source: str) -> None:
        """Equal paths have equal 64-bit hashes: sort the hashes; only for equal hashes
        (a duplicate, or a one-in-10^5 collision at 14 M paths) compare the paths."""
        if hashes.size < 2:
            return
        hashes.sort()
        same = hashes[1:] == hashes[:-1]
        if not same.any():
            return
        suspects = np.unique(hashes[1:][same])
        del hashes, same
        seen: dict[bytes, int] = {}
        first_line = 0
        for chunk in self.iter_manifest():
            arr = np.frombuffer(chunk, np.uint8)
            ends = np.flatnonzero(arr == 10)
            hit = np.flatnonzero(np.isin(_line_hashes(chunk, ends), suspects))
            for j in hit.tolist():
                i = first_line + j
                b = self.path_bytes(i)
                if b in seen:
                    raise PladaReferenceError(
                        f"{source}, line {i + 1:,}: path {b.decode('utf-8', 'replace')!r} is listed twice "
                        f"(first on line {seen[b] + 1:,})"
                    )
                seen[b] = i
            first_line += ends.size

    # --- sequence protocol ---------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._starts.size) - 1

    def path_bytes(self, i: int) -> bytes:
        """The UTF-8 bytes of path *i*."""
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"path index {i} out of range for {n:,} paths")
        return self._store.read(int(self._starts[i]), int(self._starts[i + 1]) - 1)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self))))
        return self.path_bytes(int(i)).decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        for chunk in self.iter_manifest():
            yield from chunk[:-1].decode("utf-8").split("\n")

    def __eq__(self, other) -> bool:
        if isinstance(other, PathTable):
            return len(self) == len(other) and self.fingerprint == other.fingerprint
        if isinstance(other, (list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        n = len(self)
        head = ", ".join(repr(self[i]) for i in range(min(n, 3)))
        return f"PathTable({n:,} paths: {head}{', ...' if n > 3 else ''})"

    def __reduce__(self):
        return (PathTable, (self._store, np.array(self._starts), self._fingerprint))

    # --- bulk access ---------------------------------------------------------------------

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 over the domain tag, N (u64 LE) and the manifest bytes."""
        if self._fingerprint is None:
            h = hashlib.sha256(REFERENCE_TAG)
            h.update(_COUNT.pack(len(self)))
            for chunk in self.iter_manifest():
                h.update(chunk)
            self._fingerprint = h.digest()
        return self._fingerprint

    @property
    def nbytes(self) -> int:
        """Bytes of the manifest (what a file-backed table reads on demand) plus the offsets."""
        return int(self._starts[-1]) + self._starts.nbytes

    @property
    def in_memory(self) -> bool:
        return isinstance(self._store, _MemoryStore)

    def iter_manifest(self, chunk_lines: int = 1 << 18) -> Iterator[bytes]:
        """The manifest bytes in chunks that end at a line end."""
        n = len(self)
        for a in range(0, n, chunk_lines):
            b = min(n, a + chunk_lines)
            yield bytes(self._store.view(int(self._starts[a]), int(self._starts[b])))

    def manifest_bytes(self) -> bytes:
        return b"".join(self.iter_manifest())

    def take(self, positions) -> PathTable:
        """A new in-memory table of the paths at *positions* (int array), in that order."""
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        n = len(self)
        if pos.size and (int(pos.min()) < 0 or int(pos.max()) >= n):
            raise IndexError(f"path positions out of range for {n:,} paths")
        a = self._starts[pos].astype(np.int64)
        lengths = self._starts[pos + 1].astype(np.int64) - a
        out_starts = np.zeros(pos.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=out_starts[1:])
        if isinstance(self._store, _MemoryStore):
            idx = np.repeat(a - out_starts[:-1], lengths) + np.arange(int(out_starts[-1]), dtype=np.int64)
            buf = self._store.buf[idx]
        else:
            buf = np.empty(int(out_starts[-1]), dtype=np.uint8)
            order = np.argsort(a, kind="stable")  # read the file front to back
            store = self._store
            for j in order.tolist():
                s, ln = int(a[j]), int(lengths[j])
                data = store.read(s, s + ln - 1)
                o = int(out_starts[j])
                buf[o : o + ln - 1] = np.frombuffer(data, np.uint8)
                buf[o + ln - 1] = 10
        return PathTable(_MemoryStore(buf), out_starts.astype(np.uint32) if out_starts[-1] < 2**32 else out_starts)

    def parent_starts(self, chunk_lines: int = 1 << 18) -> np.ndarray:
        """Indices where the parent folder differs from the previous path's (0 first): the
        runs of :class:`~pladacodec.folders.FolderLayout`.  Exact, vectorised over chunks."""
        out = [np.zeros(1, dtype=np.int64)] if len(self) else []
        prev_parent: bytes | None = None
        line = 0
        for chunk in self.iter_manifest(chunk_lines):
            arr = np.frombuffer(chunk, np.uint8)
            ends = np.flatnonzero(arr == 10)
            m = ends.size
            starts = np.empty(m, dtype=np.int64)
            starts[0] = 0
            starts[1:] = ends[:-1] + 1
            slashes = np.flatnonzero(arr == 47)
            plen = np.zeros(m, dtype=np.int64)
            if slashes.size:
                line_of = np.searchsorted(ends, slashes)
                last = np.ones(slashes.size, dtype=bool)
                last[:-1] = line_of[1:] != line_of[:-1]
                plen[line_of[last]] = slashes[last] - starts[line_of[last]]
            change = np.ones(m, dtype=bool)
            if m > 1:
                same_len = plen[1:] == plen[:-1]
                change[1:] = ~same_len
                cand = np.flatnonzero(same_len & (plen[1:] > 0)) + 1
                if cand.size:
                    lens = plen[cand]
                    first = np.cumsum(lens) - lens
                    offs = np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(first, lens)
                    a = arr[np.repeat(starts[cand], lens) + offs]
                    b = arr[np.repeat(starts[cand - 1], lens) + offs]
                    differs = np.logical_or.reduceat(a != b, first)
                    change[cand] = differs
            first_parent = chunk[: int(plen[0])]
            change[0] = line == 0 or first_parent != prev_parent
            prev_parent = chunk[int(starts[-1]) : int(starts[-1] + plen[-1])]
            idx = np.flatnonzero(change)
            if line == 0:
                idx = idx[1:]
            out.append(idx + line)
            line += m
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _encodes(p: str) -> bool:
    try:
        p.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xFF51AFD7ED558CCD)
_K3 = np.uint64(0xC4CEB9FE1A85EC53)
_S = np.uint64(31)
_BYTE_MASKS = np.array([0] + [(1 << (8 * r)) - 1 for r in range(1, 8)] + [2**64 - 1], dtype=np.uint64)


def _line_hashes(chunk: bytes, ends: np.ndarray) -> np.ndarray:
    """A 64-bit hash of every line of *chunk* (lines end at *ends*), vectorised over lines:
    each line is read 8 bytes at a time (unaligned words of the chunk), mixed, finalised."""
    m = ends.size
    if m == 0:
        return np.zeros(0, dtype=np.uint64)
    starts = np.empty(m, dtype=np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lens = ends - starts
    padded = np.frombuffer(chunk + bytes(8), np.uint8)
    # words[p] = the 8 bytes from p (overlapping, little-endian): a strided view, no copy
    words = np.lib.stride_tricks.as_strided(padded, shape=(padded.size - 7, 8), strides=(1, 1)).view("<u8")[:, 0]
    h = lens.astype(np.uint64) * _K1
    t = 0
    shortest = int(lens.min())
    with np.errstate(over="ignore"):
        while t < shortest:  # every line still has bytes: no index lists
            w = words[starts + t]
            if t + 8 > shortest:
                w &= _BYTE_MASKS[np.minimum(lens - t, 8)]
            x = (h ^ w) * _K1
            h = x ^ (x >> _S)
            t += 8
        active = np.flatnonzero(lens > t)
        while active.size:
            rem = np.minimum(lens[active] - t, 8)
            w = words[starts[active] + t] & _BYTE_MASKS[rem]
            x = (h[active] ^ w) * _K1
            h[active] = x ^ (x >> _S)
            t += 8
            active = active[lens[active] > t]
        h ^= h >> np.uint64(33)
        h *= _K2
        h ^= h >> np.uint64(33)
        h *= _K3
        h ^= h >> np.uint64(33)
    return h


def _key(line: bytes, other: bytes) -> tuple[bytes, int]:
    return line.ljust(max(len(line), len(other)), b"\0"), len(line)


def _increasing(chunk: bytes, ends: np.ndarray) -> bool:
    """Whether the lines of *chunk* increase strictly in (zero-padded bytes, length) order,
    compared 8 bytes at a time.  True proves there is no duplicate; a manifest in canonical
    order is increasing unless names hold characters below '/' where another has a '/'."""
    m = ends.size
    if m < 2:
        return True
    starts = np.empty(m, dtype=np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lens = ends - starts
    padded = np.frombuffer(chunk + bytes(8), np.uint8)
    words = np.lib.stride_tricks.as_strided(padded, shape=(padded.size - 7, 8), strides=(1, 1)).view("<u8")[:, 0]
    a_start, b_start, a_len, b_len = starts[:-1], starts[1:], lens[:-1], lens[1:]
    t = 0
    while a_start.size:
        wa = words[a_start + t]
        wb = words[b_start + t]
        full = t + 8 <= min(int(a_len.min()), int(b_len.min()))
        if not full:  # some line ends in this word: zero its bytes past the end
            ra, rb = a_len - t, b_len - t
            wa &= _BYTE_MASKS[np.clip(ra, 0, 8)]
            wb &= _BYTE_MASKS[np.clip(rb, 0, 8)]
        differ = wa != wb
        if differ.any():
            d = np.flatnonzero(differ)
            # the first differing byte decides: compare the words as big-endian numbers
            if bool(np.any(wa[d].byteswap() > wb[d].byteswap())):
                return False
            keep = ~differ
        else:
            keep = None
        if not full:
            ended = (ra <= 8) | (rb <= 8)
            if keep is not None:
                ended &= keep
            if bool(np.any(ended & (a_len >= b_len))):  # equal words, the first line not shorter
                return False
            keep = ~ended if keep is None else keep & ~ended
        if keep is not None:
            a_start, b_start, a_len, b_len = a_start[keep], b_start[keep], a_len[keep], b_len[keep]
        t += 8
    return True


def _check_chunk(chunk: bytes, arr: np.ndarray, ends: np.ndarray, first_line: int, source: str) -> None:
    """Every manifest rule over one chunk of whole lines, vectorised; the exact (regular
    expression) check runs only on a chunk where a candidate was found."""
    if not chunk.isascii():
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            at = chunk.count(b"\n", 0, exc.start)
            raise PladaReferenceError(
                f"{source}, line {first_line + at + 1:,}: not valid UTF-8 ({exc.reason})"
            ) from None
    sep = arr == 47
    sep[ends] = True  # '/' or end of line
    suspicious = bool(sep[0]) or arr[0] == 46  # empty first line, leading '/' or '.'
    if not suspicious:
        # '//', '/\n', '\n\n', '\n/': an empty component, path or a leading/trailing '/'
        suspicious = bool(np.any(sep[:-1] & sep[1:]))
    if not suspicious:
        suspicious = bool(np.any(sep[:-1] & (arr[1:] == 46))) or bool(np.any(arr == 92))
    if suspicious:
        m = _BAD_LINE.search(chunk, 0, len(chunk) - 1)
        if m is not None:
            at = chunk.count(b"\n", 0, m.start())
            a = int(ends[at - 1]) + 1 if at else 0
            raise _line_error(source, first_line + at + 1, chunk[a : int(ends[at])])


def _count_lines(f) -> tuple[int, bool]:
    """(lines, exact): lines counts a final line without newline; exact is False when the
    file needs normalising (CR characters)."""
    n = 0
    last = b"\n"
    exact = True
    while True:
        block = f.read(_CHUNK)
        if not block:
            break
        n += block.count(b"\n")
        if exact and b"\r" in block:
            exact = False
        last = block[-1:]
    if last != b"\n":
        n += 1
    return n, exact


def _line_chunks(f, source: str) -> Iterator[bytes]:
    """The file's bytes in chunks of whole lines, CRLF turned into LF and a final newline
    added when missing; a lone CR is an error (a line break inside a path)."""
    carry = b""
    while True:
        block = f.read(_CHUNK)
        if not block:
            break
        data = carry + block if carry else block
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry = data
            continue
        carry = data[cut:]
        yield _normalise(data[:cut], source)
    if carry:
        yield _normalise(carry + b"\n", source)


def _normalise(chunk: bytes, source: str) -> bytes:
    if b"\r" in chunk:
        chunk = chunk.replace(b"\r\n", b"\n")
        if b"\r" in chunk:
            raise PladaReferenceError(f"{source}: a path holds a carriage return (a line break); "
                                      "it cannot go in a manifest")
    return chunk


def write_manifest(table: PathTable, path: str | os.PathLike[str]) -> None:
    """Write *table*'s manifest to *path* atomically (a temporary file renamed into place)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            for chunk in table.iter_manifest():
                f.write(chunk)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
