"""The container: preamble, header, blocks (FORMAT.md §2-§4).

This layer knows the layout and the checks; the coding methods are declared in
:mod:`pladacodec._methods`.  Inputs reaching :func:`iter_encoded` are already validated by
:mod:`pladacodec._api`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from . import _methods
from . import _spec as S
from ._bytes import Reader, crc32c, encode_varint
from .errors import (
    PladaChecksumError,
    PladaDecodeError,
    PladaEncodeError,
    PladaFormatError,
    PladaReferenceError,
    PladaTruncatedError,
    PladaVersionError,
)
from .folders import as_layout


@dataclass(frozen=True)
class Header:
    n_reference: int
    n_selected: int
    n_classes: int
    block_entries: int  # entries per block (the last may hold fewer)
    class_names: tuple[str, ...] | None = None
    reference_fingerprint: bytes | None = None
    metadata: dict | None = None
    version: tuple[int, int] = (S.VERSION_MAJOR, S.VERSION_MINOR)
    unknown_optional_tags: tuple[int, ...] = ()
    folders: tuple[int, bytes] | None = None  # (F, digest) of the folder layout the file needs

    @property
    def n_blocks(self) -> int:
        return -(-self.n_selected // self.block_entries) if self.n_selected else 0

    def block_size(self, number: int) -> int:
        """Entries of block ``number`` (from 0)."""
        return min(self.block_entries, self.n_selected - number * self.block_entries)

    @property
    def one_block(self) -> bool:
        """A file of exactly one block: no header CRC, its block's CRC covers the whole file (FORMAT.md §1)."""
        return _one_block(self.n_selected, self.block_entries)


def _one_block(n_selected: int, block_entries: int) -> bool:
    """k >= 1 and B = 0 (stored as block_entries = k): the file is one block (FORMAT.md §1)."""
    return n_selected >= 1 and block_entries >= n_selected


@dataclass(frozen=True)
class SectionInfo:
    kind: str  # "index" or "label"
    method: int
    offset: int  # where the section starts in the file
    size: int  # the section's bytes

    @property
    def method_name(self) -> str:
        return _methods.method_name(self.kind, self.method)


@dataclass(frozen=True)
class BlockInfo:
    entries: int
    base: int
    offset: int
    header_size: int  # framing: base, method byte, the two lengths and the CRC
    index: SectionInfo
    label: SectionInfo


@dataclass
class Layout:
    file_size: int = 0
    preamble_and_header: int = 0  # preamble, header length, header and its CRC (if it has one)
    blocks: list[BlockInfo] = field(default_factory=list)


# --- encoding -------------------------------------------------------------------


def _field(tag: int, value: bytes) -> bytes:
    return encode_varint(tag) + encode_varint(len(value)) + value


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def encode_header(header: Header) -> bytes:
    """Preamble, varint(header length), header, and the header CRC unless the file is one block
    (FORMAT.md §1-§3: then :func:`seal_one_block` makes the block's CRC cover the header)."""
    one_block = header.block_entries >= header.n_selected
    body = bytearray()
    for value in (header.n_reference, header.n_selected, header.n_classes, 0 if one_block else header.block_entries):
        body += encode_varint(value)
    if header.folders is not None:
        n_folders, digest = header.folders
        body += _field(S.TAG_FOLDERS, encode_varint(n_folders) + digest)
    if header.class_names is not None:
        names = bytearray(encode_varint(len(header.class_names)))
        for name in header.class_names:
            raw = name.encode("utf-8")
            names += encode_varint(len(raw)) + raw
        body += _field(S.TAG_CLASS_NAMES, bytes(names))
    if header.reference_fingerprint is not None:
        body += _field(S.TAG_FINGERPRINT, header.reference_fingerprint)
    if header.metadata is not None:
        body += _field(S.TAG_METADATA, canonical_json(header.metadata))
    head = struct.pack(S.PREAMBLE_FORMAT, S.MAGIC, S.VERSION_MAJOR, S.VERSION_MINOR) + encode_varint(len(body)) + body
    if header.one_block:
        return head
    return head + struct.pack(S.HEADER_CRC_FORMAT, crc32c(head))


def seal_one_block(head: bytes, block: bytes) -> bytes:
    """The only block of a one-block file, its CRC recomputed to cover the header before it."""
    data = block[: -S.BLOCK_CRC_SIZE]
    return data + struct.pack(S.BLOCK_CRC_FORMAT, crc32c(data, crc32c(head)))


def frame_block(index_method: int, index: bytes, label_method: int, label: bytes, base: int, first: bool) -> bytes:
    """One block's bytes (FORMAT.md §4)."""
    head = b"" if first else encode_varint(base)
    head += bytes([index_method | label_method << S.METHOD_BITS]) + encode_varint(len(index)) + encode_varint(len(label))
    data = head + index + label
    return data + struct.pack(S.BLOCK_CRC_FORMAT, crc32c(data))


@dataclass(frozen=True)
class EncodedBlock:
    """A block as the writer chose it, and (when that uses a folder method) the best block
    without one, so the writer can drop the layout if it does not pay for its header field."""

    data: bytes
    uses_folders: bool
    without_folders: bytes | None


def check_allowed(kind: str, allowed, folders) -> None:
    """A folder method named without a layout is an error (it would silently not be tried)."""
    if folders is None and allowed is not None:
        needy = [m for m in allowed if _methods.method(kind, m) is not None and _methods.method(kind, m).folders]
        if needy:
            raise PladaEncodeError(f"{kind} method {needy[0]} codes against a folder layout: pass folders=")


def _coded(kind: str, allowed, folders, code, n_classes: int = 1) -> list[tuple[_methods.Method, bytes]]:
    check_allowed(kind, allowed, folders)
    tried = _methods.candidates(kind, allowed, folders is not None, n_classes)
    if not tried:
        raise PladaEncodeError(
            f"no {kind} method can be used: the allowed ones all need a folder layout or serve fewer than {n_classes:,} classes"
        )
    return [(m, code(m)) for m in tried]


def encode_block_options(
    indices: np.ndarray,
    labels: np.ndarray,
    base: int,
    n_classes: int,
    first: bool,
    index_methods: Sequence[int] | None = None,
    label_methods: Sequence[int] | None = None,
    folders=None,
) -> EncodedBlock:
    """One block: every allowed method is tried and the encoder's policy picks (``_methods.choose``)."""
    index_coded = _coded("index", index_methods, folders, lambda m: m.encode(indices, base, folders if m.folders else None))
    label_coded = _coded(
        "label", label_methods, folders, lambda m: m.encode(labels, n_classes, indices, base, folders if m.folders else None),
        n_classes,
    )

    def assemble(index_candidates, label_candidates) -> bytes:
        (im, index), (lm, label) = _methods.choose(index_candidates), _methods.choose(label_candidates)
        return frame_block(im.id, index, lm.id, label, base, first)

    data = assemble(index_coded, label_coded)
    if folders is None:
        return EncodedBlock(data, False, None)
    index_plain = [c for c in index_coded if not c[0].folders]
    label_plain = [c for c in label_coded if not c[0].folders]
    plain = assemble(index_plain, label_plain) if index_plain and label_plain else None
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
    """Yield the file piece by piece (header, then blocks).

    With a folder layout every block is coded first: the header names the layout only when
    the blocks that use it save more than that field costs; otherwise the file is the one
    coded without it (and decodes without the layout)."""
    step = header.block_entries
    starts = list(range(0, header.n_selected, step))
    batch = max(1, min(_cpus(), MAX_THREADS))

    def encode_one(start: int) -> EncodedBlock:
        stop = min(start + step, header.n_selected)
        base = int(indices[start - 1]) + 1 if start else 0
        return encode_block_options(
            indices[start:stop], labels[start:stop], base, header.n_classes, start == 0, index_methods, label_methods,
            folders,
        )

    def blocks() -> Iterator[EncodedBlock]:
        for first in range(0, len(starts), batch):  # a few blocks at a time keeps memory bounded
            yield from parallel_map(encode_one, starts[first : first + batch], header.n_selected)

    if folders is None:
        chosen = (block.data for block in blocks())  # encoded lazily, after the header is out
    else:
        coded = list(blocks())
        use_folders = any(block.uses_folders for block in coded)
        if use_folders and all(block.without_folders is not None for block in coded if block.uses_folders):
            with_size = sum(len(b.data) for b in coded) + folders_field_size(folders)
            without_size = sum(len(b.without_folders if b.uses_folders else b.data) for b in coded)
            use_folders = with_size < without_size
        if use_folders:
            header = dataclasses.replace(header, folders=(folders.n_folders, folders.digest))
        chosen = (b.data if use_folders or not b.uses_folders else b.without_folders for b in coded)
    head = encode_header(header)
    yield head
    for data in chosen:
        yield seal_one_block(head, data) if header.one_block else data


# --- decoding -------------------------------------------------------------------


def check_preamble(reader: Reader) -> int:
    """Magic, version and header length (FORMAT.md §2); returns the header length."""
    size = reader.remaining
    head = bytes(reader._view[reader.pos : reader.pos + len(S.LEGACY_MAGIC) + 2])
    if head[: len(S.LEGACY_MAGIC)] == S.LEGACY_MAGIC and len(head) == len(S.LEGACY_MAGIC) + 2:
        major, minor = head[len(S.LEGACY_MAGIC) :]
        raise PladaVersionError(
            f"this .plada file has format version {major}.{minor}, written before the first release; this reader "
            f"reads format {S.VERSION_MAJOR}.x only: encode the selection again with this version"
        )
    if size < len(S.MAGIC) or head[: len(S.MAGIC)] != S.MAGIC:
        prefix = head[: min(size, len(S.MAGIC))]
        if prefix and S.MAGIC.startswith(prefix):
            raise PladaTruncatedError(f"file of {size} bytes ends inside the magic number")
        raise PladaFormatError(f"not a .plada file: magic {prefix!r} instead of {S.MAGIC!r}")
    _, major, minor = reader.unpack(S.PREAMBLE_FORMAT, "preamble")
    if major != S.VERSION_MAJOR:
        raise PladaVersionError(
            f"file format version {major}.{minor} is not supported: this reader implements "
            f"version {S.VERSION_MAJOR}.x (up to {S.VERSION_MAJOR}.{S.VERSION_MINOR})"
        )
    return reader.varint("header length", maximum=S.MAX_HEADER_SIZE)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


_KNOWN_TAGS = frozenset((S.TAG_CLASS_NAMES, S.TAG_FINGERPRINT, S.TAG_METADATA, S.TAG_FOLDERS))


def _decode_counts(reader: Reader) -> tuple[int, int, int, int]:
    """N, k, C and the block size (B = 0 made k, at least 1) at the header's start, checked."""
    n_reference = reader.varint("reference size N")
    if not 1 <= n_reference <= S.MAX_N_REFERENCE:
        raise PladaFormatError(f"reference size N {n_reference:,} is outside [1, {S.MAX_N_REFERENCE:,}]")
    n_selected = reader.varint("selected count k")
    if n_selected > n_reference:
        raise PladaFormatError(f"selected count k {n_selected:,} exceeds N = {n_reference:,}")
    n_classes = reader.varint("class count C")
    if not 1 <= n_classes <= S.MAX_CLASSES:
        raise PladaFormatError(f"class count C {n_classes:,} is outside [1, {S.MAX_CLASSES:,}]")
    block_entries = reader.varint("block size B")
    if block_entries == 0:  # one block holds every entry
        if n_selected > S.MAX_BLOCK_ENTRIES:
            raise PladaFormatError(f"one block of {n_selected:,} entries exceeds {S.MAX_BLOCK_ENTRIES:,}")
        block_entries = max(n_selected, 1)
    elif block_entries > S.MAX_BLOCK_ENTRIES or block_entries >= n_selected:
        raise PladaFormatError(
            f"block size B {block_entries:,} must be below k = {n_selected:,} and at most {S.MAX_BLOCK_ENTRIES:,} "
            "(B = 0: one block)"
        )
    return n_reference, n_selected, n_classes, block_entries


def _decode_fields(reader: Reader, version: tuple[int, int], counts: tuple[int, int, int, int] | None = None) -> Header:
    """The header's values and fields; ``counts``: N, k, C, B already read from ``reader``."""
    n_reference, n_selected, n_classes, block_entries = _decode_counts(reader) if counts is None else counts
    seen: dict[int, Reader | None] = {}
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
            if not names[-1]:
                raise PladaFormatError(f"class name {i} is empty")
        sub.expect_end("class names")
        if len(set(names)) != len(names):
            seen_names: set[str] = set()
            dup = next(i for i, name in enumerate(names) if name in seen_names or seen_names.add(name))
            raise PladaFormatError(f"class name {dup} ({names[dup]!r}) repeats an earlier one")
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
            metadata = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
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


def counts_one_block(fields: Reader) -> bool:
    """Whether the header's N, k, C, B say the file is one block (k >= 1, B = 0).  The four
    values decide the framing, so they are checked (and a bad one refused) before the CRC."""
    _, n_selected, _, block_entries = _decode_counts(Reader(fields._view, fields.pos, fields.pos + fields.remaining))
    return _one_block(n_selected, block_entries)


def decode_header(data) -> tuple[Header, int]:
    """Parse and check preamble and header; returns the header and where blocks start.

    The checksum is verified before any field is interpreted: the header CRC, or, in a
    one-block file, which has none, the block's CRC over the whole file (so ``data`` must then
    hold the whole block too)."""
    header, pos, _ = decode_header_and_block(data)
    return header, pos


def decode_header_and_block(data) -> tuple[Header, int, tuple[ScannedBlock, int] | None]:
    """:func:`decode_header`, and the block of a one-block file, already scanned, with where it
    ends (else None)."""
    reader = Reader(data)
    header_len = check_preamble(reader)
    version = tuple(bytes(reader._view[len(S.MAGIC) : S.PREAMBLE_SIZE]))
    fields = Reader(reader._view, reader.pos, reader.pos + header_len)
    reader.take(header_len, "header")
    end = reader.pos
    counts = _decode_counts(fields)  # they decide the framing: checked before the CRC
    scanned = None
    if _one_block(counts[1], counts[3]):  # its CRC covers the header (FORMAT.md §1)
        first = Reader(reader._view, end, len(reader._view))
        scanned = scan_block(first, counts[1], True, 0)
        scanned_end = first.pos
    else:
        (stored,) = reader.unpack(S.HEADER_CRC_FORMAT, "header checksum")
        actual = crc32c(reader._view[:end])
        if stored != actual:
            raise PladaChecksumError(f"header checksum mismatch: stored 0x{stored:08x}, computed 0x{actual:08x}")
    header = _decode_fields(fields, version, counts)
    return header, reader.pos, None if scanned is None else (scanned, scanned_end)


@dataclass(frozen=True)
class ScannedBlock:
    """A block whose framing and CRC are checked, not yet decoded."""

    entries: int
    base: int
    offset: int
    header_size: int
    index: tuple  # (method id, section Reader, SectionInfo)
    label: tuple


def scan_block(reader: Reader, entries: int, first: bool, crc_from: int | None = None) -> ScannedBlock:
    """Read one block's framing and verify its CRC (no entropy decoding).  ``crc_from``: where
    the CRC's coverage starts, if before the block (0 for the block of a one-block file)."""
    start = reader.pos
    base = 0 if first else reader.varint("block base", maximum=S.MAX_N_REFERENCE)
    (methods,) = reader.unpack("<B", "block method byte")
    index_len = reader.varint("index section length")  # a length past the end: a truncated file (take)
    label_len = reader.varint("label section length")
    framing = reader.pos - start
    index_start = reader.pos
    reader.take(index_len, "index section")
    label_start = reader.pos
    reader.take(label_len, "label section")
    end = reader.pos
    (stored,) = reader.unpack(S.BLOCK_CRC_FORMAT, "block checksum")
    actual = crc32c(reader._view[start if crc_from is None else crc_from : end])
    if stored != actual:
        raise PladaChecksumError(f"block at offset {start:,}: checksum mismatch: stored 0x{stored:08x}, computed 0x{actual:08x}")
    sections = []
    for kind, method, offset, size in (
        ("index", methods & ((1 << S.METHOD_BITS) - 1), index_start, index_len),
        ("label", methods >> S.METHOD_BITS, label_start, label_len),
    ):
        if _methods.method(kind, method) is None:
            raise PladaFormatError(f"block at offset {start:,}: unknown {kind} coding method {method}")
        sections.append((method, Reader(reader._view, offset, offset + size), SectionInfo(kind, method, offset, size)))
    return ScannedBlock(entries, base, start, framing + S.BLOCK_CRC_SIZE, sections[0], sections[1])


def _layout_for(kind: str, method: int, offset: int, folders):
    if not _methods.method(kind, method).folders:
        return None
    if folders is None:
        raise PladaFormatError(
            f"{kind} section at offset {offset:,} uses method {method}, which codes against a folder layout, "
            "but the header names none"
        )
    return folders


def decode_scanned(block: ScannedBlock, header: Header, folders=None):
    """Entropy-decode a scanned block; returns (indices, labels, BlockInfo).  ``folders``: the
    layout the header names, already checked against it (:func:`check_folders`), or None."""
    method, section, index_info = block.index
    layout = _layout_for("index", method, index_info.offset, folders)
    indices = _methods.method("index", method).decode(section, block.entries, block.base, header.n_reference, layout)
    section.expect_end("index section")
    method, section, label_info = block.label
    layout = _layout_for("label", method, label_info.offset, folders)
    labels = _methods.method("label", method).decode(section, block.entries, header.n_classes, indices, block.base, layout)
    section.expect_end("label section")
    if len(indices) != block.entries or len(labels) != block.entries:
        raise PladaFormatError(f"block at offset {block.offset:,} decoded to the wrong number of entries")
    info = BlockInfo(block.entries, block.base, block.offset, block.header_size, index_info, label_info)
    return indices, labels, info


def decode_block(block: ScannedBlock, header: Header, expected_base: int, folders=None):
    """Decode a scanned block that must start at ``expected_base``; returns (indices, labels, BlockInfo)."""
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
    workers = min(len(items), _cpus(), MAX_THREADS)
    if workers <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


MAX_THREADS = 8
PARALLEL_MIN_ENTRIES = 1 << 17


@functools.lru_cache(maxsize=1)
def _cpus() -> int:
    """os.cpu_count(), asked once (it reads /proc: ~6 us, 4 % of decoding a 1,281-entry file)."""
    return os.cpu_count() or 1


def decode_container(data, max_entries: int, folders=None) -> tuple[Header, np.ndarray, np.ndarray, Layout]:
    """Decode a whole file held in memory.  Every block's framing and CRC is checked before any
    entropy decoding; the first blocks (as many as decode in parallel) are decoded into arrays of
    their own, and only once they decode is the output allocated at its final size (so a few
    bytes claiming 2^28 entries fail before 4 GiB are allocated) and the other blocks decoded
    into place."""
    header, pos, one = decode_header_and_block(data)
    folders = check_folders(header, folders)
    if header.n_selected > max_entries:
        raise PladaFormatError(
            f"file holds {header.n_selected:,} entries, more than max_entries={max_entries:,}; "
            "pass a larger max_entries to decode it"
        )
    view = memoryview(data).cast("B")
    reader = Reader(view, pos, len(view))
    layout = Layout(file_size=len(view), preamble_and_header=pos)
    if one is not None:  # scanned (and its CRC checked) with the header
        scanned = [one[0]]
        reader.take(one[1] - pos, "block")
    else:
        scanned = [scan_block(reader, header.block_size(i), i == 0) for i in range(header.n_blocks)]
    reader.expect_end("blocks")
    if not scanned:
        return header, np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64), layout
    workers = max(1, min(len(scanned), _cpus(), MAX_THREADS))
    first = parallel_map(lambda block: decode_scanned(block, header, folders), scanned[:workers], header.n_selected)
    if len(scanned) == 1:
        indices, labels, info = first[0]
        layout.blocks.append(info)
        return header, indices, labels, layout
    indices = np.empty(header.n_selected, dtype=np.uint64)
    labels = np.empty(header.n_selected, dtype=np.int64)
    infos = []
    for number, (block_indices, block_labels, info) in enumerate(first):
        at = number * header.block_entries
        indices[at : at + info.entries] = block_indices
        labels[at : at + info.entries] = block_labels
        infos.append(info)
    del first

    def decode_into(number: int) -> BlockInfo:
        block_indices, block_labels, info = decode_scanned(scanned[number], header, folders)
        at = number * header.block_entries
        indices[at : at + info.entries] = block_indices
        labels[at : at + info.entries] = block_labels
        return info

    infos += parallel_map(decode_into, list(range(workers, len(scanned))), header.n_selected)
    for number, info in enumerate(infos):
        if number and info.base != int(indices[number * header.block_entries - 1]) + 1:
            raise PladaFormatError(
                f"block at offset {info.offset:,} starts at index {info.base:,}; "
                f"expected {int(indices[number * header.block_entries - 1]) + 1:,}"
            )
        layout.blocks.append(info)
    return header, indices, labels, layout
