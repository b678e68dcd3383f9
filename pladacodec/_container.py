"""The container: preamble, header fields, blocks of sections, trailer (FORMAT.md §2-§4, §7).

This layer knows the layout and the checks; the coding methods live in
:mod:`pladacodec._coders` (constriction) and :mod:`pladacodec._context`
(context models).  Inputs reaching :func:`encode_container` are already
validated by :mod:`pladacodec._api`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from . import _coders, _context
from . import _spec as S
from ._bytes import Reader, crc32c, encode_varint
from .folders import as_layout
from .errors import (
    PladaChecksumError,
    PladaDecodeError,
    PladaEncodeError,
    PladaFormatError,
    PladaReferenceError,
    PladaTruncatedError,
    PladaVersionError,
)

# method id -> (encode(indices, base) -> (params, body) | None, decode(params, body, count, base, N))
_INDEX_CODERS: dict[int, tuple[Callable, Callable]] = {
    S.INDEX_GOLOMB_ANS: (_coders.indices_golomb_encode, _coders.indices_golomb_decode),
    S.INDEX_BITMAP_ANS: (_coders.bitmap_encode, _coders.bitmap_decode),
    S.INDEX_CONTEXT: (_context.indices_context_encode, _context.indices_context_decode),
    S.INDEX_CONTEXT2: (_context.indices_context2_encode, _context.indices_context2_decode),
    S.INDEX_GOLOMB_RANS: (_coders.indices_golomb_rans_encode, _coders.indices_golomb_rans_decode),
    # folder methods (S.FOLDER_METHODS) take the FolderLayout as one more argument
    S.INDEX_CONTEXT2_FOLDERS: (_context.indices_context2_encode, _context.indices_context2_decode),
    S.INDEX_CONTEXT3: (_context.indices_context3_encode, _context.indices_context3_decode),
    S.INDEX_CONTEXT3_FOLDERS: (_context.indices_context3_encode, _context.indices_context3_decode),
}
# method id -> (encode(labels, C, indices, base) -> (params, body), decode(params, body, count, C, indices, base))
_LABEL_CODERS: dict[int, tuple[Callable, Callable]] = {
    S.LABEL_IID_ANS: (
        lambda labels, c, indices, base: _coders.labels_iid_encode(labels, c),
        lambda params, body, count, c, indices, base: _coders.labels_iid_decode(params, body, count, c),
    ),
    S.LABEL_CONTEXT: (_context.labels_context_encode, _context.labels_context_decode),
    S.LABEL_CONTEXT2: (_context.labels_context2_encode, _context.labels_context2_decode),
    S.LABEL_IID_RANS: (
        lambda labels, c, indices, base: _coders.labels_iid_rans_encode(labels, c),
        lambda params, body, count, c, indices, base: _coders.labels_iid_rans_decode(params, body, count, c),
    ),
    S.LABEL_CONTEXT2_FOLDERS: (_context.labels_context2_encode, _context.labels_context2_decode),
    S.LABEL_CONTEXT3: (_context.labels_context3_encode, _context.labels_context3_decode),
    S.LABEL_CONTEXT3_FOLDERS: (_context.labels_context3_encode, _context.labels_context3_decode),
    S.LABEL_FORGET: (_context.labels_forget_encode, _context.labels_forget_decode),
    S.LABEL_CONTEXT4: (_context.labels_context4_encode, _context.labels_context4_decode),
}
METHOD_NAMES = {
    ("index", S.INDEX_GOLOMB_ANS): "golomb-ans",
    ("index", S.INDEX_BITMAP_ANS): "bitmap-ans",
    ("index", S.INDEX_CONTEXT): "context-ans",
    ("index", S.INDEX_CONTEXT2): "context-ans-2",
    ("index", S.INDEX_GOLOMB_RANS): "golomb-rans",
    ("index", S.INDEX_CONTEXT2_FOLDERS): "context-ans-2-folders",
    ("index", S.INDEX_CONTEXT3): "context-ans-3",
    ("index", S.INDEX_CONTEXT3_FOLDERS): "context-ans-3-folders",
    ("label", S.LABEL_IID_ANS): "iid-ans",
    ("label", S.LABEL_CONTEXT): "context-ans",
    ("label", S.LABEL_CONTEXT2): "context-ans-2",
    ("label", S.LABEL_IID_RANS): "iid-rans",
    ("label", S.LABEL_CONTEXT2_FOLDERS): "context-ans-2-folders",
    ("label", S.LABEL_CONTEXT3): "context-ans-3",
    ("label", S.LABEL_CONTEXT3_FOLDERS): "context-ans-3-folders",
    ("label", S.LABEL_FORGET): "forget-rans",
    ("label", S.LABEL_CONTEXT4): "context-ans-4",
}


def automatic_methods(kind: str, folders: bool = False) -> tuple[int, ...]:
    """The methods the automatic choice tries: every one but the superseded (FORMAT.md §5),
    and the folder methods only when the writer has a folder layout (the newest version's
    :func:`methods_up_to`)."""
    index_methods, label_methods = methods_up_to(S.VERSION_MINOR, folders)
    return index_methods if kind == "index" else label_methods


def methods_up_to(minor: int, folders: bool = False) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(index methods, label methods) that the automatic choice of format 1.``minor`` tried: every
    method that version defines, except those superseded by a successor it also defines, and the
    folder methods only with ``folders``.  A file written with them is stamped 1.``minor`` or lower."""

    def keep(kind: str, m: int) -> bool:
        successor = S.SUPERSEDED_BY.get((kind, m))
        return (
            S.METHOD_MINOR_VERSION[(kind, m)] <= minor
            and (successor is None or S.METHOD_MINOR_VERSION[(kind, successor)] > minor)
            and (folders or (kind, m) not in S.FOLDER_METHODS)
        )

    return (
        tuple(m for m in _INDEX_CODERS if keep("index", m)),
        tuple(m for m in _LABEL_CODERS if keep("label", m)),
    )


def minor_version_for(
    index_methods: Sequence[int] | None, label_methods: Sequence[int] | None, folders: bool = False
) -> int:
    """The lowest minor version that defines every method a writer allowed these choices may
    use; ``folders``: the header names a folder layout (tag 10), so the file may use them."""
    index_methods = automatic_methods("index", folders) if index_methods is None else index_methods
    label_methods = automatic_methods("label", folders) if label_methods is None else label_methods
    return max(
        [S.METHOD_MINOR_VERSION[("index", m)] for m in index_methods if folders or ("index", m) not in S.FOLDER_METHODS]
        + [S.METHOD_MINOR_VERSION[("label", m)] for m in label_methods if folders or ("label", m) not in S.FOLDER_METHODS]
        + [S.TAG_MINOR_VERSION[S.TAG_FOLDERS] if folders else 0]
    )


@dataclass(frozen=True)
class Header:
    n_reference: int
    n_selected: int
    n_classes: int
    block_entries: int
    class_names: tuple[str, ...] | None = None
    reference_fingerprint: bytes | None = None
    metadata: dict | None = None
    version: tuple[int, int] = (S.VERSION_MAJOR, S.VERSION_MINOR)
    unknown_optional_tags: tuple[int, ...] = ()
    folders: tuple[int, bytes] | None = None  # (F, digest) of the folder layout the file needs (tag 10)


@dataclass(frozen=True)
class SectionInfo:
    kind: str  # "index" or "label"
    method: int
    offset: int  # where the section starts in the file
    size: int  # bytes including method, lengths and CRC

    @property
    def method_name(self) -> str:
        return METHOD_NAMES.get((self.kind, self.method), f"method-{self.method}")


@dataclass(frozen=True)
class BlockInfo:
    entries: int
    base: int
    offset: int
    header_size: int
    index: SectionInfo
    label: SectionInfo


@dataclass
class Layout:
    file_size: int = 0
    preamble_and_header: int = 0
    trailer: int = S.TRAILER_SIZE
    blocks: list[BlockInfo] = field(default_factory=list)


# --- encoding -------------------------------------------------------------------


def _field(tag: int, value: bytes) -> bytes:
    return encode_varint(tag) + encode_varint(len(value)) + value


def encode_header(header: Header, minor: int = S.VERSION_MINOR) -> bytes:
    """Preamble + header fields + header CRC; ``minor`` is the version stamped (FORMAT.md §2)."""
    fields = [
        _field(S.TAG_N_REFERENCE, encode_varint(header.n_reference)),
        _field(S.TAG_N_SELECTED, encode_varint(header.n_selected)),
        _field(S.TAG_N_CLASSES, encode_varint(header.n_classes)),
        _field(S.TAG_BLOCK_ENTRIES, encode_varint(header.block_entries)),
    ]
    if header.folders is not None:
        fields.append(_field(S.TAG_FOLDERS, encode_varint(header.folders[0]) + header.folders[1]))
    if header.class_names is not None:
        names = bytearray(encode_varint(len(header.class_names)))
        for name in header.class_names:
            raw = name.encode("utf-8")
            names += encode_varint(len(raw)) + raw
        fields.append(_field(S.TAG_CLASS_NAMES, bytes(names)))
    if header.reference_fingerprint is not None:
        fields.append(_field(S.TAG_FINGERPRINT, header.reference_fingerprint))
    if header.metadata is not None:
        fields.append(_field(S.TAG_METADATA, canonical_json(header.metadata)))
    body = b"".join(fields)
    preamble = struct.pack(S.PREAMBLE_FORMAT, S.MAGIC, S.VERSION_MAJOR, minor, 0, len(body))
    head = preamble + body
    return head + struct.pack(S.HEADER_CRC_FORMAT, crc32c(head))


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _section(method: int, params: bytes, body: bytes) -> bytes:
    head = bytes([method]) + encode_varint(len(params)) + params + encode_varint(len(body))
    crc = crc32c(body, crc32c(head))
    return head + body + struct.pack(S.SECTION_CRC_FORMAT, crc)


def _best(candidates, kind: str) -> tuple[int, bytes, bytes]:
    """The smallest (method, params, body); ties go to the lowest method id.  A static method
    (S.STATIC_METHODS) is preferred to a smaller adaptive one that saves at most
    S.ADAPTIVE_MIN_SAVING of it: the adaptive models decode several times slower (FORMAT.md §5)."""
    best = best_static = None
    tried = []
    for method, coded in candidates:
        tried.append(method)
        if coded is None:
            continue
        size = len(coded[0]) + len(coded[1])
        if best is None or size < best[0]:
            best = (size, method, coded)
        if (kind, method) in S.STATIC_METHODS and (best_static is None or size < best_static[0]):
            best_static = (size, method, coded)
    if best_static is not None and best_static[0] <= best[0] * (1 + S.ADAPTIVE_MIN_SAVING):
        best = best_static
    if best is None:
        raise PladaEncodeError(
            f"none of the requested coding methods {tried} can code this block (a bitmap spans at most "
            f"{S.MAX_BITMAP_SPAN:,} indices per block); allow another method"
        )
    _, method, (params, body) = best
    return method, params, body


def _encode_index(method: int, indices: np.ndarray, base: int, folders):
    coder = _INDEX_CODERS[method][0]
    return coder(indices, base, folders) if ("index", method) in S.FOLDER_METHODS else coder(indices, base)


def _encode_labels(method: int, labels: np.ndarray, n_classes: int, indices: np.ndarray, base: int, folders):
    coder = _LABEL_CODERS[method][0]
    if ("label", method) in S.FOLDER_METHODS:
        return coder(labels, n_classes, indices, base, folders)
    return coder(labels, n_classes, indices, base)


def _allowed(kind: str, methods: Sequence[int] | None, folders) -> list[int]:
    if methods is None:
        return list(automatic_methods(kind, folders is not None))
    if folders is None:
        needy = [m for m in methods if (kind, m) in S.FOLDER_METHODS]
        if needy:
            raise PladaEncodeError(f"{kind} method {needy[0]} codes against a folder layout: pass folders=")
    return list(methods)


@dataclass(frozen=True)
class EncodedBlock:
    """A block as the writer chose it, and (when that uses a folder method) the best block
    without one, so the writer can drop the layout if it does not pay for its header field."""

    data: bytes
    uses_folders: bool
    without_folders: bytes | None


def encode_block_options(
    indices: np.ndarray,
    labels: np.ndarray,
    base: int,
    n_classes: int,
    index_methods: Sequence[int] | None = None,
    label_methods: Sequence[int] | None = None,
    folders=None,
) -> EncodedBlock:
    """One block: every allowed method is tried and the smallest kept (None: automatic choice);
    ``.data`` is the block's bytes."""
    index_list = [
        m for m in _allowed("index", index_methods, folders)
        if m != S.INDEX_BITMAP_ANS or index_methods is not None or _coders.bitmap_worth_trying(indices, base)
    ]
    label_list = _allowed("label", label_methods, folders)
    index_coded = [(m, _encode_index(m, indices, base, folders)) for m in index_list]
    label_coded = [(m, _encode_labels(m, labels, n_classes, indices, base, folders)) for m in label_list]
    head = encode_varint(len(indices)) + encode_varint(base)

    def assemble(index_candidates, label_candidates) -> bytes:
        index = _best(index_candidates, "index")
        label = _best(label_candidates, "label")
        return head + _section(*index) + _section(*label)

    data = assemble(index_coded, label_coded)
    if folders is None:
        return EncodedBlock(data, False, None)
    index_plain = [c for c in index_coded if ("index", c[0]) not in S.FOLDER_METHODS]
    label_plain = [c for c in label_coded if ("label", c[0]) not in S.FOLDER_METHODS]
    plain = None
    if any(c[1] is not None for c in index_plain) and label_plain:
        plain = assemble(index_plain, label_plain)
    uses = plain is None or plain != data
    return EncodedBlock(data, uses, plain if uses else None)


def folders_field_size(folders) -> int:
    return len(_field(S.TAG_FOLDERS, encode_varint(folders.n_folders) + folders.digest))


def iter_encoded(
    header: Header,
    indices: np.ndarray,
    labels: np.ndarray,
    index_methods: Sequence[int] | None = None,
    label_methods: Sequence[int] | None = None,
    folders=None,
) -> Iterator[bytes]:
    """Yield the file piece by piece (header, blocks, trailer).

    With a folder layout every block is coded first: the header names the layout (tag 10)
    only when the blocks that use it save more than that field costs; otherwise the file is
    the one coded without it (and decodes without the layout)."""
    step = header.block_entries
    starts = list(range(0, header.n_selected, step))
    batch = max(1, min(os.cpu_count() or 1, MAX_THREADS))

    def encode_one(start: int) -> EncodedBlock:
        stop = min(start + step, header.n_selected)
        base = int(indices[start - 1]) + 1 if start else 0
        return encode_block_options(
            indices[start:stop], labels[start:stop], base, header.n_classes, index_methods, label_methods, folders
        )

    def blocks() -> Iterator[EncodedBlock]:
        for first in range(0, len(starts), batch):  # a few blocks at a time keeps memory bounded
            yield from parallel_map(encode_one, starts[first : first + batch], header.n_selected)

    if folders is None:
        chosen: Iterator[bytes] = (block.data for block in blocks())
        use_folders = False
    else:
        coded = list(blocks())
        use_folders = any(block.uses_folders for block in coded)
        if use_folders and all(block.without_folders is not None for block in coded if block.uses_folders):
            with_size = sum(len(b.data) for b in coded) + folders_field_size(folders)
            without_size = sum(len(b.without_folders if b.uses_folders else b.data) for b in coded)
            use_folders = with_size < without_size
        chosen = (b.data if use_folders or not b.uses_folders else b.without_folders for b in coded)
        if use_folders:
            header = dataclasses.replace(header, folders=(folders.n_folders, folders.digest))
    head = encode_header(header, minor_version_for(index_methods, label_methods, use_folders))
    running = crc32c(head)
    yield head
    for block in chosen:
        running = crc32c(block, running)
        yield block
    yield struct.pack(S.TRAILER_FORMAT, running, S.END_MAGIC)


# --- decoding -------------------------------------------------------------------


def _check_preamble(reader: Reader) -> int:
    size = reader.remaining
    if size < len(S.MAGIC) or bytes(reader._view[: len(S.MAGIC)]) != S.MAGIC:
        prefix = bytes(reader._view[: min(size, len(S.MAGIC))])
        if prefix and S.MAGIC.startswith(prefix):
            raise PladaTruncatedError(f"file of {size} bytes ends inside the magic number")
        raise PladaFormatError(f"not a .plada file: magic {prefix!r} instead of {S.MAGIC!r}")
    magic, major, minor, flags, header_len = reader.unpack(S.PREAMBLE_FORMAT, "preamble")
    if major != S.VERSION_MAJOR:
        raise PladaVersionError(
            f"file format version {major}.{minor} is not supported: this reader implements "
            f"version {S.VERSION_MAJOR}.x (up to {S.VERSION_MAJOR}.{S.VERSION_MINOR})"
        )
    unknown = flags & S.FLAGS_CRITICAL_MASK & ~S.FLAGS_KNOWN
    if unknown:
        raise PladaFormatError(f"file sets critical flags 0x{unknown:02x} unknown to this reader (version {major}.{minor})")
    if header_len > S.MAX_HEADER_SIZE:
        raise PladaFormatError(f"header length {header_len:,} exceeds the limit {S.MAX_HEADER_SIZE:,}")
    return header_len


_KNOWN_TAGS = frozenset(S.REQUIRED_TAGS + (S.TAG_CLASS_NAMES, S.TAG_FINGERPRINT, S.TAG_METADATA, S.TAG_FOLDERS))


def _decode_fields(reader: Reader, version: tuple[int, int]) -> Header:
    seen: dict[int, Reader] = {}
    unknown_optional = []
    while reader.remaining:
        tag = reader.varint("header field tag")
        length = reader.varint(f"header field {tag} length", maximum=reader.remaining)
        start = reader.pos
        reader.take(length, f"header field {tag}")
        if tag in seen:
            raise PladaFormatError(f"header field {tag} appears twice")
        if tag not in _KNOWN_TAGS:
            if tag % 2 == 0:
                raise PladaFormatError(
                    f"header has critical field {tag} unknown to this reader "
                    f"(file version {version[0]}.{version[1]}, reader {S.VERSION_MAJOR}.{S.VERSION_MINOR})"
                )
            unknown_optional.append(tag)
            seen[tag] = None
            continue
        seen[tag] = Reader(reader._view, start, start + length)
    for tag in S.REQUIRED_TAGS:
        if tag not in seen:
            raise PladaFormatError(f"header lacks required field {tag}")

    def number(tag: int, what: str, lo: int, hi: int) -> int:
        sub = seen[tag]
        value = sub.varint(what)
        sub.expect_end(what)
        if not lo <= value <= hi:
            raise PladaFormatError(f"{what} {value:,} is outside [{lo:,}, {hi:,}]")
        return value

    n_reference = number(S.TAG_N_REFERENCE, "reference size N", 1, S.MAX_N_REFERENCE)
    n_selected = number(S.TAG_N_SELECTED, "selected count k", 0, n_reference)
    n_classes = number(S.TAG_N_CLASSES, "class count C", 1, S.MAX_CLASSES)
    block_entries = number(S.TAG_BLOCK_ENTRIES, "block size", 1, S.MAX_BLOCK_ENTRIES)

    class_names = None
    if seen.get(S.TAG_CLASS_NAMES) is not None:
        sub = seen[S.TAG_CLASS_NAMES]
        count = sub.varint("class name count")
        if count != n_classes:
            raise PladaFormatError(f"header has {count:,} class names for {n_classes:,} classes")
        names = []
        for i in range(count):
            size = sub.varint(f"class name {i} length", maximum=S.MAX_CLASS_NAME_BYTES)
            raw = bytes(sub.take(size, f"class name {i}"))
            try:
                names.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise PladaFormatError(f"class name {i} is not valid UTF-8") from None
        sub.expect_end("class names")
        class_names = tuple(names)

    fingerprint = None
    if seen.get(S.TAG_FINGERPRINT) is not None:
        sub = seen[S.TAG_FINGERPRINT]
        if sub.remaining != S.FINGERPRINT_SIZE:
            raise PladaFormatError(f"reference fingerprint has {sub.remaining} bytes instead of {S.FINGERPRINT_SIZE}")
        fingerprint = bytes(sub.take(S.FINGERPRINT_SIZE, "fingerprint"))

    metadata = None
    if seen.get(S.TAG_METADATA) is not None:
        sub = seen[S.TAG_METADATA]
        if sub.remaining > S.MAX_METADATA_BYTES:
            raise PladaFormatError(f"metadata of {sub.remaining:,} bytes exceeds {S.MAX_METADATA_BYTES:,}")
        raw = bytes(sub.take(sub.remaining, "metadata"))
        try:
            metadata = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise PladaFormatError(f"metadata is not valid UTF-8 JSON ({type(exc).__name__})") from None
        if not isinstance(metadata, dict):
            raise PladaFormatError(f"metadata must be a JSON object, not {type(metadata).__name__}")
    folders = None
    if seen.get(S.TAG_FOLDERS) is not None:
        sub = seen[S.TAG_FOLDERS]
        n_folders = sub.varint("folder count")
        if not 1 <= n_folders <= n_reference:
            raise PladaFormatError(f"folder count {n_folders:,} is outside [1, N = {n_reference:,}]")
        if sub.remaining != S.FOLDERS_DIGEST_SIZE:
            raise PladaFormatError(f"folder layout digest has {sub.remaining} bytes instead of {S.FOLDERS_DIGEST_SIZE}")
        folders = (n_folders, bytes(sub.take(S.FOLDERS_DIGEST_SIZE, "folder layout digest")))
    return Header(
        n_reference, n_selected, n_classes, block_entries, class_names, fingerprint, metadata,
        version, tuple(unknown_optional), folders,
    )


def decode_header(data) -> tuple[Header, int]:
    """Parse and check preamble and header; returns the header and where blocks start."""
    reader = Reader(data)
    header_len = _check_preamble(reader)
    version = tuple(bytes(reader._view[8:10]))
    fields = Reader(reader._view, reader.pos, reader.pos + header_len)
    reader.take(header_len, "header")
    (stored,) = reader.unpack(S.HEADER_CRC_FORMAT, "header checksum")
    actual = crc32c(reader._view[: S.PREAMBLE_SIZE + header_len])
    if stored != actual:
        raise PladaChecksumError(f"header checksum mismatch: stored 0x{stored:08x}, computed 0x{actual:08x}")
    return _decode_fields(fields, version), reader.pos


def _read_section(reader: Reader, kind: str, methods: dict) -> tuple[int, Reader, Reader, SectionInfo]:
    start = reader.pos
    (method,) = reader.unpack("<B", f"{kind} section method")
    if method not in methods:
        raise PladaFormatError(f"{kind} section at offset {start:,} uses unknown coding method {method}")
    params_len = reader.varint(f"{kind} section parameter length", maximum=min(S.MAX_PARAMS_SIZE, reader.remaining))
    params_start = reader.pos
    reader.take(params_len, f"{kind} section parameters")
    body_len = reader.varint(f"{kind} section length", maximum=reader.remaining)
    body_start = reader.pos
    reader.take(body_len, f"{kind} section")
    end = reader.pos
    (stored,) = reader.unpack(S.SECTION_CRC_FORMAT, f"{kind} section checksum")
    actual = crc32c(reader._view[start:end])
    if stored != actual:
        raise PladaChecksumError(
            f"{kind} section at offset {start:,} checksum mismatch: stored 0x{stored:08x}, computed 0x{actual:08x}"
        )
    info = SectionInfo(kind, method, start, reader.pos - start)
    return (
        method,
        Reader(reader._view, params_start, params_start + params_len),
        Reader(reader._view, body_start, body_start + body_len),
        info,
    )


@dataclass(frozen=True)
class ScannedBlock:
    """A block whose structure and CRCs are checked, not yet decoded."""

    entries: int
    base: int
    offset: int
    header_size: int
    index: tuple  # (method, params Reader, body Reader, SectionInfo)
    label: tuple


def scan_block(reader: Reader, expected_entries: int) -> ScannedBlock:
    """Read one block's framing and verify both section CRCs (no entropy decoding)."""
    start = reader.pos
    entries = reader.varint("block entry count")
    if entries != expected_entries:
        raise PladaFormatError(f"block at offset {start:,} holds {entries:,} entries; expected {expected_entries:,}")
    base = reader.varint("block base", maximum=S.MAX_N_REFERENCE)
    header_size = reader.pos - start
    index = _read_section(reader, "index", _INDEX_CODERS)
    label = _read_section(reader, "label", _LABEL_CODERS)
    return ScannedBlock(entries, base, start, header_size, index, label)


def _needs_folders(kind: str, method: int, offset: int, folders) -> None:
    if folders is None:
        raise PladaFormatError(
            f"{kind} section at offset {offset:,} uses method {method}, which codes against a folder layout, "
            "but the header names none"
        )


def decode_scanned(block: ScannedBlock, header: Header, folders=None):
    """Entropy-decode a scanned block; returns (indices, labels, BlockInfo).  ``folders``: the
    layout the header names, already checked against it (:func:`check_folders`), or None."""
    method, params, body, index_info = block.index
    if ("index", method) in S.FOLDER_METHODS:
        _needs_folders("index", method, index_info.offset, folders)
        indices = _INDEX_CODERS[method][1](params, body, block.entries, block.base, header.n_reference, folders)
    else:
        indices = _INDEX_CODERS[method][1](params, body, block.entries, block.base, header.n_reference)
    params.expect_end("index section parameters")
    body.expect_end("index section")
    method, params, body, label_info = block.label
    if ("label", method) in S.FOLDER_METHODS:
        _needs_folders("label", method, label_info.offset, folders)
        labels = _LABEL_CODERS[method][1](params, body, block.entries, header.n_classes, indices, block.base, folders)
    else:
        labels = _LABEL_CODERS[method][1](params, body, block.entries, header.n_classes, indices, block.base)
    params.expect_end("label section parameters")
    body.expect_end("label section")
    if len(indices) != block.entries or len(labels) != block.entries:
        raise PladaFormatError(f"block at offset {block.offset:,} decoded to the wrong number of entries")
    info = BlockInfo(block.entries, block.base, block.offset, block.header_size, index_info, label_info)
    return indices, labels, info


def decode_block(reader: Reader, header: Header, expected_entries: int, expected_base: int, folders=None):
    """Scan and decode one block that must start at ``expected_base``; returns (indices, labels, BlockInfo)."""
    block = scan_block(reader, expected_entries)
    if block.base != expected_base:
        raise PladaFormatError(f"block at offset {block.offset:,} starts at index {block.base:,}; expected {expected_base:,}")
    return decode_scanned(block, header, folders)


def check_folders(header: Header, folders):
    """The layout to decode ``header``'s blocks with: None when the header names none (a
    layout given anyway is not needed), else ``folders`` (a FolderLayout or a Reference),
    which must be the one it names."""
    if header.folders is None:
        return None
    n_folders, digest = header.folders
    folders = as_layout(folders, None, PladaDecodeError)  # a Reference's layout, computed now
    if folders is None:
        raise PladaReferenceError(
            f"this file is coded against a folder layout of {n_folders:,} folders (digest {digest.hex()}); "
            "pass the reference's layout: folders=FolderLayout... (pladacodec.folders), or a Reference"
        )
    if folders.n_reference != header.n_reference or folders.n_folders != n_folders or folders.digest != digest:
        raise PladaReferenceError(
            f"folder layout mismatch: the file needs {n_folders:,} folders over {header.n_reference:,} images "
            f"(digest {digest.hex()}), got {folders.n_folders:,} over {folders.n_reference:,} (digest {folders.digest.hex()})"
        )
    return folders


def parallel_map(fn, items: list, weight: int) -> list:
    """``[fn(x) for x in items]``, on threads when there is enough work (the kernels release the GIL)."""
    if len(items) <= 1 or weight < PARALLEL_MIN_ENTRIES:
        return [fn(item) for item in items]
    workers = min(len(items), os.cpu_count() or 1, MAX_THREADS)
    if workers <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


MAX_THREADS = 8
PARALLEL_MIN_ENTRIES = 1 << 17


def check_trailer(data, end: int, verify_crc: bool = True) -> None:
    """Verify the end magic that closes the file at ``end`` and (unless the caller already did,
    as :func:`quick_check` does) the whole-file CRC-32C."""
    view = memoryview(data).cast("B")
    if len(view) - end < S.TRAILER_SIZE:
        raise PladaTruncatedError(
            f"file ends {len(view) - end} bytes after its last block; the {S.TRAILER_SIZE}-byte trailer is missing"
        )
    stored, magic = struct.unpack_from(S.TRAILER_FORMAT, view, end)
    if magic != S.END_MAGIC:
        raise PladaFormatError(f"trailer magic {magic!r} instead of {S.END_MAGIC!r}")
    if len(view) != end + S.TRAILER_SIZE:
        raise PladaFormatError(f"{len(view) - end - S.TRAILER_SIZE:,} unexpected bytes after the trailer")
    if not verify_crc:
        return
    actual = crc32c(view[:end])
    if stored != actual:
        raise PladaChecksumError(f"file checksum mismatch: stored 0x{stored:08x}, computed 0x{actual:08x}")


def quick_check(data) -> None:
    """Whole-file checks done before parsing: end magic and file CRC (FORMAT.md §7)."""
    view = memoryview(data).cast("B")
    size = len(view)
    if size < S.PREAMBLE_SIZE + S.HEADER_CRC_SIZE + S.TRAILER_SIZE:
        Reader(view)  # fall through to precise messages below
        _check_preamble(Reader(view))
        raise PladaTruncatedError(f"file of {size} bytes is shorter than the smallest .plada file")
    if bytes(view[-4:]) != S.END_MAGIC:
        _check_preamble(Reader(view))
        raise PladaTruncatedError(f"file of {size:,} bytes does not end with the trailer magic {S.END_MAGIC!r}: truncated?")
    (stored,) = struct.unpack_from("<I", view, size - S.TRAILER_SIZE)
    actual = crc32c(view[: size - S.TRAILER_SIZE])
    if stored != actual:
        _check_preamble(Reader(view))
        raise PladaChecksumError(f"file checksum mismatch: stored 0x{stored:08x}, computed 0x{actual:08x}")


def decode_container(data, max_entries: int, folders=None) -> tuple[Header, np.ndarray, np.ndarray, Layout]:
    quick_check(data)
    header, pos = decode_header(data)
    folders = check_folders(header, folders)
    if header.n_selected > max_entries:
        raise PladaFormatError(
            f"file holds {header.n_selected:,} entries, more than max_entries={max_entries:,}; "
            "pass a larger max_entries to decode it"
        )
    view = memoryview(data).cast("B")
    body_end = len(view) - S.TRAILER_SIZE
    reader = Reader(view, pos, body_end)
    layout = Layout(file_size=len(view), preamble_and_header=pos)
    scanned = []
    remaining = header.n_selected
    while remaining:
        entries = min(remaining, header.block_entries)
        scanned.append(scan_block(reader, entries))
        remaining -= entries
    reader.expect_end("blocks")
    check_trailer(view, reader.pos, verify_crc=False)  # quick_check verified the file CRC
    decoded = parallel_map(lambda block: decode_scanned(block, header, folders), scanned, header.n_selected)
    index_parts, label_parts = [], []
    base = 0
    for indices, labels, info in decoded:
        if info.base != base:
            raise PladaFormatError(f"block at offset {info.offset:,} starts at index {info.base:,}; expected {base:,}")
        index_parts.append(indices)
        label_parts.append(labels)
        layout.blocks.append(info)
        base = int(indices[-1]) + 1
    if len(index_parts) == 1:  # one block: no copy
        indices, labels = index_parts[0], label_parts[0]
    else:
        indices = np.concatenate(index_parts) if index_parts else np.zeros(0, dtype=np.uint64)
        labels = np.concatenate(label_parts) if label_parts else np.zeros(0, dtype=np.int64)
    return header, indices, labels.astype(np.int64, copy=False), layout
