"""The public codec API: encode/decode bytes, read/write files, inspect.

>>> import pladacodec
>>> data = pladacodec.encode([7, 3, 12], [1, 0, 1], n_reference=100)
>>> task = pladacodec.decode(data)
>>> task.indices.tolist(), task.labels.tolist(), task.n_classes
([3, 7, 12], [0, 1, 1], 2)
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

import numpy as np

from . import _container, _io, _methods
from . import _spec as S
from ._bytes import Reader
from ._io import atomic_write_bytes
from ._container import Header, Layout
from .errors import PladaDecodeError, PladaEncodeError, PladaFormatError, PladaMemoryError
from .folders import as_layout

__all__ = ["Payload", "TaskInfo", "encode", "decode", "write", "read", "inspect", "read_header", "methods_for_version"]

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True, eq=False)
class Payload:
    """A decoded PLADA task: which reference images, and the label of each."""

    indices: np.ndarray  # sorted, unique, uint64
    labels: np.ndarray  # int64 in [0, n_classes)
    n_reference: int
    n_classes: int
    class_names: tuple[str, ...] | None = None
    reference_fingerprint: bytes | None = None
    metadata: dict | None = None
    version: tuple[int, int] = (S.VERSION_MAJOR, S.VERSION_MINOR)

    @property
    def k(self) -> int:
        return len(self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Payload):
            return NotImplemented
        return (
            np.array_equal(self.indices, other.indices)
            and np.array_equal(self.labels, other.labels)
            and (self.n_reference, self.n_classes, self.class_names, self.reference_fingerprint, self.metadata)
            == (other.n_reference, other.n_classes, other.class_names, other.reference_fingerprint, other.metadata)
        )

    def class_histogram(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.n_classes)


@dataclass(frozen=True)
class TaskInfo:
    """What :func:`inspect` reports about a file (it decodes and verifies all of it)."""

    payload: Payload
    layout: Layout
    header: Header

    @property
    def file_size(self) -> int:
        return self.layout.file_size

    def section_bytes(self) -> dict[str, int]:
        index = sum(b.index.size for b in self.layout.blocks)
        label = sum(b.label.size for b in self.layout.blocks)
        block_headers = sum(b.header_size for b in self.layout.blocks)
        return {
            "header": self.layout.preamble_and_header,
            "block_headers": block_headers,
            "indices": index,
            "labels": label,
        }

    def methods(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {"indices": {}, "labels": {}}
        for block in self.layout.blocks:
            for key, section in (("indices", block.index), ("labels", block.label)):
                out[key][section.method_name] = out[key].get(section.method_name, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return describe_task(
            self.header, self.file_size, len(self.layout.blocks), self.section_bytes(), self.methods(),
            self.payload.class_histogram(),
        )


def describe_task(header: Header, file_size: int, n_blocks: int, section_bytes, methods, histogram) -> dict[str, Any]:
    """The JSON-ready report of :meth:`TaskInfo.as_dict` (and of the CLI's block-by-block inspect)."""
    k = header.n_selected
    return {
        "version": f"{header.version[0]}.{header.version[1]}",
        "n_reference": header.n_reference,
        "k": k,
        "n_classes": header.n_classes,
        "file_bytes": file_size,
        "bits_per_selected": (8 * file_size / k) if k else None,
        "section_bytes": section_bytes,
        "methods": methods,
        "blocks": n_blocks,
        "class_names": list(header.class_names) if header.class_names is not None else None,
        "class_histogram": np.asarray(histogram).tolist(),
        "reference_fingerprint": header.reference_fingerprint.hex() if header.reference_fingerprint else None,
        "folder_layout": (
            None if header.folders is None else {"folders": header.folders[0], "digest": header.folders[1].hex()}
        ),
        "metadata": header.metadata,
    }


# --- input validation ------------------------------------------------------------------


def _as_integer_array(values, what: str) -> np.ndarray:
    """Coerce to a 1-D int64/uint64 array, refusing fractions, NaN, bools and non-numbers."""
    if isinstance(values, (bytes, bytearray, memoryview)):
        values = np.frombuffer(values, dtype=np.uint8)
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise PladaEncodeError(f"{what}: cannot be read as an array ({exc})") from None
    if arr.ndim == 0:
        raise PladaEncodeError(f"{what}: expected a 1-D sequence, got a scalar")
    if arr.ndim != 1:
        if arr.size == 0:
            arr = arr.reshape(0)
        else:
            raise PladaEncodeError(f"{what}: expected a 1-D sequence, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    kind = arr.dtype.kind
    if kind == "b":
        raise PladaEncodeError(f"{what}: booleans are not indices or labels (convert a mask with np.flatnonzero)")
    if kind in "iu":
        return arr  # no copy: a 20 M-entry selection stays the caller's arrays (range-checked next)
    if kind == "f":
        arr = arr.astype(np.float64)  # float16 would overflow in the range check below
        finite = np.isfinite(arr)
        if not finite.all():
            pos = int(np.argmin(finite))
            raise PladaEncodeError(f"{what}[{pos}] is {arr[pos].item()!r}, not an integer")
        frac = arr != np.floor(arr)
        if frac.any():
            pos = int(np.argmax(frac))
            raise PladaEncodeError(f"{what}[{pos}] = {arr[pos].item()!r} has a fractional part")
        if np.abs(arr).max() >= 2.0**53:
            raise PladaEncodeError(f"{what}: float values beyond 2**53 cannot be exact integers")
        return arr.astype(np.int64)
    if kind == "O":
        for i, v in enumerate(arr):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise PladaEncodeError(f"{what}[{i}] = {v!r} is not an integer")
        ints = [int(v) for v in arr]
        lo, hi = min(ints), max(ints)
        if lo < -(2**63) or hi >= 2**64:
            raise PladaEncodeError(f"{what}: values beyond 64 bits")
        return np.array(ints, dtype=np.int64 if hi < 2**63 else np.uint64) if lo >= 0 or hi < 2**63 else np.array(ints, dtype=np.int64)
    raise PladaEncodeError(f"{what}: dtype {arr.dtype} is not an integer type")


def _check_range(arr: np.ndarray, lo: int, hi: int, what: str, limit_name: str) -> None:
    if arr.size == 0:
        return
    if arr.dtype != np.uint64:
        bad = arr < lo
        if bad.any():
            pos = int(np.argmax(bad))
            raise PladaEncodeError(f"{what}[{pos}] = {int(arr[pos])} is negative")
    bad = arr >= np.uint64(hi) if arr.dtype == np.uint64 else arr >= hi
    if bad.any():
        pos = int(np.argmax(bad))
        raise PladaEncodeError(f"{what}[{pos}] = {int(arr[pos]):,} is not below {limit_name} = {hi:,}")


def _as_count(value, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise PladaEncodeError(f"{what} must be an integer, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise PladaEncodeError(f"{what} = {value:,} is outside [{lo:,}, {hi:,}]")
    return value


def _prepare(indices, labels, n_reference, n_classes, class_names, reference_fingerprint, metadata, block_entries):
    n_reference = _as_count(n_reference, "n_reference", 1, S.MAX_N_REFERENCE)
    idx = _as_integer_array(indices, "indices")
    lab = _as_integer_array(labels, "labels")
    if len(idx) != len(lab):
        raise PladaEncodeError(f"{len(idx):,} indices but {len(lab):,} labels")
    _check_range(idx, 0, n_reference, "indices", "n_reference")
    if class_names is not None:
        if isinstance(class_names, (str, bytes)):
            raise PladaEncodeError("class_names must be a sequence of strings, not one string")
        class_names = tuple(class_names)
        for i, name in enumerate(class_names):
            if not isinstance(name, str):
                raise PladaEncodeError(f"class_names[{i}] = {name!r} is not a string")
            if len(name.encode("utf-8", "surrogatepass")) > S.MAX_CLASS_NAME_BYTES:
                raise PladaEncodeError(f"class_names[{i}] is longer than {S.MAX_CLASS_NAME_BYTES} UTF-8 bytes")
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise PladaEncodeError(f"class_names[{i}] cannot be encoded as UTF-8") from None
            if not name:
                raise PladaEncodeError(f"class_names[{i}] is empty")
        first_at: dict[str, int] = {}
        for i, name in enumerate(class_names):  # a dataset maps names to classes: each must be unique
            if name in first_at:
                raise PladaEncodeError(f"duplicate class name {name!r} at class_names[{first_at[name]}] and [{i}]")
            first_at[name] = i
    if n_classes is None:
        if class_names is not None:
            n_classes = len(class_names)
        else:
            n_classes = int(lab.max()) + 1 if len(lab) and int(lab.max()) >= 0 else 1
    n_classes = _as_count(n_classes, "n_classes", 1, S.MAX_CLASSES)
    if class_names is not None and len(class_names) != n_classes:
        raise PladaEncodeError(f"{len(class_names):,} class names for n_classes = {n_classes:,}")
    _check_range(lab, 0, n_classes, "labels", "n_classes")
    if reference_fingerprint is not None:
        if isinstance(reference_fingerprint, str):
            try:
                reference_fingerprint = bytes.fromhex(reference_fingerprint)
            except ValueError:
                raise PladaEncodeError("reference_fingerprint: not a hex string") from None
        reference_fingerprint = bytes(reference_fingerprint)
        if len(reference_fingerprint) != S.FINGERPRINT_SIZE:
            raise PladaEncodeError(
                f"reference_fingerprint has {len(reference_fingerprint)} bytes; expected {S.FINGERPRINT_SIZE} (SHA-256)"
            )
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise PladaEncodeError(f"metadata must be a mapping (a JSON object), got {type(metadata).__name__}")
        try:
            raw = _container.canonical_json(dict(metadata))
        except RecursionError:
            raise PladaEncodeError("metadata is nested too deeply to be stored as JSON") from None
        except (TypeError, ValueError) as exc:
            raise PladaEncodeError(f"metadata is not JSON-serialisable: {exc}") from None
        if len(raw) > S.MAX_METADATA_BYTES:
            raise PladaEncodeError(f"metadata serialises to {len(raw):,} bytes; the limit is {S.MAX_METADATA_BYTES:,}")
        try:
            metadata = json.loads(raw)
        except RecursionError:
            raise PladaEncodeError("metadata is nested too deeply to be read back as JSON") from None
    block_entries = balanced_block_entries(len(idx)) if block_entries is None else block_entries
    block_entries = _as_count(block_entries, "block_entries", 1, S.MAX_BLOCK_ENTRIES)

    # indices as uint64 (an int64 array, checked non-negative, is viewed, not copied); labels keep
    # their integer dtype: each block's coders convert their own slice
    idx = idx.view(np.uint64) if idx.dtype == np.int64 else idx.astype(np.uint64, copy=False)
    if len(idx) > 1 and not bool(np.all(idx[1:] > idx[:-1])):
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        dup = sorted_idx[1:] == sorted_idx[:-1]
        if dup.any():
            at = int(np.argmax(dup))
            first, second = sorted((int(order[at]), int(order[at + 1])))
            raise PladaEncodeError(f"duplicate index {int(sorted_idx[at]):,} at positions {first:,} and {second:,}")
        idx, lab = sorted_idx, lab[order]
    header = Header(n_reference, len(idx), n_classes, block_entries, class_names, reference_fingerprint, metadata)
    return header, np.ascontiguousarray(idx), np.ascontiguousarray(lab)


def balanced_block_entries(k: int) -> int:
    """The default block size for ``k`` entries: 2^20 when one block holds them all, else the
    fewest blocks of at most 2^20 entries, of equal size (the last may be one shorter), so that
    the blocks, which decode in parallel, take about the same time each.  Sizes are unchanged
    up to a few hundred bytes; the decode time of a 1.42 M-entry file drops by 25-30 % on two cores.

    >>> balanced_block_entries(5), balanced_block_entries(1_419_712)
    (1048576, 709856)
    """
    n_blocks = -(-k // S.MAX_BLOCK_ENTRIES)
    return S.DEFAULT_BLOCK_ENTRIES if n_blocks <= 1 else -(-k // n_blocks)


# --- public API --------------------------------------------------------------------------


def encode(
    indices,
    labels,
    n_reference: int,
    *,
    n_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    reference_fingerprint: bytes | str | None = None,
    metadata: Mapping[str, Any] | None = None,
    block_entries: int | None = None,
    index_methods: Sequence[int] | None = None,
    label_methods: Sequence[int] | None = None,
    folders=None,
) -> bytes:
    """Encode a selection (indices into a reference of ``n_reference`` images + one label each).

    Indices may come in any order; they are sorted together with their labels.
    ``n_classes`` defaults to ``len(class_names)`` or ``max(labels) + 1``.
    ``index_methods`` / ``label_methods`` restrict the coding methods tried (ids from
    FORMAT.md §5 / §6, see ``pladacodec._methods``); by default every method is tried per
    block and the smallest kept, except that a static method is preferred to an adaptive one
    less than 1 % smaller (it decodes several times faster).
    ``block_entries`` (at most 2^20) defaults to :func:`balanced_block_entries`.

    ``folders`` (a :class:`~pladacodec.folders.FolderLayout`, or a
    :class:`~pladacodec.reference.Reference` whose folders are used): the reference's folder
    layout, known to the receiver too.  The coders then also try the folder methods, which
    take the true folder changes as run boundaries (FORMAT.md §5.3, §6.4); the file names the
    layout in its header only if that makes it smaller, and then decodes only with the same
    layout (``decode(..., folders=...)``).
    """
    header, idx, lab = _prepare(
        indices, labels, n_reference, n_classes, class_names, reference_fingerprint, metadata, block_entries
    )
    folders = as_layout(folders, header.n_reference, PladaEncodeError)
    _check_methods(index_methods, _methods.BY_KIND["index"], "index_methods")
    _check_methods(label_methods, _methods.BY_KIND["label"], "label_methods")
    return b"".join(_container.iter_encoded(header, idx, lab, index_methods, label_methods, folders))


def methods_for_version(version, folders: bool = False) -> dict[str, list[int]]:
    """``index_methods`` / ``label_methods`` for :func:`encode`, :func:`write` or a
    :class:`~pladacodec.StreamWriter` so that readers of format ``version`` (``"2.0"`` or
    ``(2, 0)``) decode the file: every method that version defines (the folder methods only
    with ``folders``).

    >>> methods_for_version("2.0")
    {'index_methods': [1, 2], 'label_methods': [1, 2, 3, 5]}
    """
    if isinstance(version, str):
        major, dot, minor = version.partition(".")
        if not (dot and major.isdigit() and minor.isdigit()):
            raise PladaEncodeError(f"format version must look like '2.0', found {version!r}")
        version = (int(major), int(minor))
    major, minor = version
    if major != S.VERSION_MAJOR or not 0 <= minor <= S.VERSION_MINOR:
        raise PladaEncodeError(
            f"this writer writes format versions {S.VERSION_MAJOR}.0 to {S.VERSION_MAJOR}.{S.VERSION_MINOR},"
            f" not {major}.{minor}"
        )
    return {
        f"{kind}_methods": [m.id for m in _methods.candidates(kind, None, folders)] for kind in _methods.KINDS
    }


def _check_methods(methods, known, what) -> None:
    if methods is None:
        return
    if not methods:
        raise PladaEncodeError(f"{what} must name at least one method")
    for m in methods:
        if m not in known:
            raise PladaEncodeError(f"{what}: unknown method id {m!r}; known: {sorted(known)}")


def _as_buffer(data) -> memoryview:
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise PladaDecodeError(f"expected bytes or a uint8 array, got an array of {data.dtype}")
        data = np.ascontiguousarray(data)
    elif isinstance(data, (str, os.PathLike)):
        raise PladaDecodeError("decode() takes bytes; use pladacodec.read(path) for files")
    try:
        view = memoryview(data)
    except TypeError:
        raise PladaDecodeError(f"expected a bytes-like object, got {type(data).__name__}") from None
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    return view.cast("B")


def _decode_full(data, max_entries: int, folders=None) -> TaskInfo:
    view = _as_buffer(data)
    if len(view) > S.MAX_FILE_SIZE:
        raise PladaFormatError(f"{len(view):,} bytes exceeds the largest .plada file ({S.MAX_FILE_SIZE:,} bytes)")
    folders = as_layout(folders, None, PladaDecodeError, resolve=False)  # resolved if the file needs it
    try:
        header, indices, labels, layout = _container.decode_container(view, max_entries, folders)
    except MemoryError:
        raise PladaMemoryError(
            f"not enough memory to decode this file into memory ({DECODE_BYTES_PER_ENTRY} bytes per entry); "
            "pass a smaller max_entries to refuse such files early, or read it block by block (iter_read)"
        ) from None
    payload = Payload(
        indices, labels, header.n_reference, header.n_classes, header.class_names,
        header.reference_fingerprint, header.metadata, header.version,
    )
    return TaskInfo(payload, layout, header)


DECODE_BYTES_PER_ENTRY = 16  # the result: a uint64 index and an int64 label per entry


def decode(data, *, max_entries: int = S.DEFAULT_MAX_ENTRIES, folders=None) -> Payload:
    """Decode ``.plada`` bytes (bytes, bytearray, memoryview or uint8 array) into a :class:`Payload`.

    Raises only :class:`~pladacodec.PladaError` subclasses on bad input.
    ``max_entries`` bounds the output a small file may expand to (a few hundred bytes can
    declare 2^24 entries): a file of more entries is refused before anything is allocated.
    The result takes 16 bytes per entry (``DECODE_BYTES_PER_ENTRY``) and a decode holds little
    more, so the default, 2^28, bounds a decode at 4 GiB plus a few blocks' work space; pass
    ``max_entries=1 << 24`` for 256 MiB, or read a file of any size block by block with
    :func:`pladacodec.iter_read`.  Out of memory, it raises :class:`~pladacodec.errors.PladaMemoryError`
    (a ``PladaError`` and a ``MemoryError``).  ``folders``: the
    reference's folder layout (FolderLayout or Reference), needed by files that name one
    (:attr:`Header.folders`); files that do not ignore it.
    """
    return _decode_full(data, max_entries, folders).payload


def read_header(data) -> Header:
    """Parse only the preamble and header (cheap; does not check the blocks)."""
    header, _ = _container.decode_header(_as_buffer(data))
    return header


def inspect(source, *, max_entries: int = S.DEFAULT_MAX_ENTRIES, folders=None) -> TaskInfo:
    """Decode and verify a file (path, file object or bytes) and report its layout."""
    if isinstance(source, (str, os.PathLike)) or hasattr(source, "read"):
        source = _read_bytes(source)
    return _decode_full(source, max_entries, folders)


def _check_start(prefix: bytes) -> None:
    """Refuse what is not a ``.plada`` file from its first bytes (magic, version)."""
    _container.check_preamble(Reader(prefix))


def _read_bytes(source) -> bytes:
    """A file's bytes from a path or binary file object: the magic first, then bounded chunks."""
    return _io.read_file_bytes(source, _check_start)


def read(source, *, max_entries: int = S.DEFAULT_MAX_ENTRIES, folders=None) -> Payload:
    """Read and decode a ``.plada`` file from a path or a binary file object."""
    return decode(_read_bytes(source), max_entries=max_entries, folders=folders)


def write(path_or_file, indices, labels, n_reference: int, **kwargs) -> int:
    """Encode and write a ``.plada`` file; returns the number of bytes written.

    A path is written atomically: to a temporary file in the same folder, flushed and
    fsynced, then renamed over the target, so a crash never leaves half a file.  A new file
    gets the mode the umask gives (0644 under umask 022), a replaced one keeps its mode; a
    symlink's target is replaced; a device or FIFO is written in place (see ``pladacodec._io``).
    The temporary file is named ``.NAME.HOST.PID.RANDOM.plada-tmp``: one left by a writer that
    was killed (``kill -9``) is removed by the next write of the same target on that host.
    """
    data = encode(indices, labels, n_reference, **kwargs)
    if hasattr(path_or_file, "write"):
        if isinstance(path_or_file, io.TextIOBase):
            raise PladaEncodeError("write() needs a binary file object (open it with 'wb', or use io.BytesIO)")
        try:
            path_or_file.write(data)
        except TypeError as exc:
            raise PladaEncodeError(f"write() needs a binary file object: {exc}") from None
        return len(data)
    atomic_write_bytes(path_or_file, data)
    return len(data)
