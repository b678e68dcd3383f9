"""FORMAT.md §2-§4, §5.1, §6.1 and §7.1 read literally: an independent decoder of the container
(preamble, header, blocks, CRC-32C) and of the static methods (index 1 "golomb", label 1 "iid"),
in plain Python integers, checked against the golden files and against what the encoder writes.

Nothing here imports the library's coders or kernels (pladacodec only *writes* the inputs of the
last tests, and tests/common.py names the golden folder layout): if the spec text and the
implementation ever disagree, these tests say so.  test_spec_context.py adds the adaptive
methods to the same container decoder.
"""

from __future__ import annotations

import hashlib
import json
import struct
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np
import pytest

from common import GOLDEN_DIR, clustered_folders

RANS_L = 1 << 31
MAGIC = b"\x89PLD"
LEGACY_MAGIC = b"\x89PLADA\r\n"
MAX_N = 1 << 40
MAX_BLOCK = 1 << 20
INDEX_METHODS = {1: "golomb", 2: "context", 3: "context-folders"}  # FORMAT.md §4's table
LABEL_METHODS = {1: "iid", 2: "drift", 3: "context", 4: "context-folders", 5: "mix"}
FOLDER_METHODS = {("index", 3), ("label", 4)}


class SpecError(Exception):
    """The bytes break a rule of FORMAT.md."""


def need(condition, what: str) -> None:
    if not condition:
        raise SpecError(what)


# --- conventions: CRC-32C, varints, a cursor ----------------------------------------------------


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for byte in data:
        c = CRC_TABLE[(c ^ byte) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


class Cursor:
    """A cursor over bytes[pos:end] with the spec's primitive fields."""

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos, self.end = data, pos, len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        need(0 <= n <= self.remaining, f"{n} bytes needed at {self.pos}, {self.remaining} remain")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def sub(self, n: int) -> "Cursor":
        start = self.pos
        self.take(n)
        return Cursor(self.data, start, start + n)

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def varint(self) -> int:
        value = 0
        for i in range(10):
            byte = self.u8()
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                need(i == 0 or byte != 0, "varint not minimal")
                need(value < 1 << 64, "varint above 64 bits")
                return value
        raise SpecError("varint longer than 10 bytes")

    def words(self, n: int) -> list[int]:
        return list(struct.unpack(f"<{n}I", self.take(4 * n)))

    def words_to_end(self) -> list[int]:
        need(self.remaining % 4 == 0, "a stream that ends its section is a whole number of words")
        return self.words(self.remaining // 4)

    def at_end(self) -> bool:
        return self.pos == self.end


# --- §2-§4 the container ------------------------------------------------------------------------


@dataclass
class Block:
    entries: int
    base: int
    index_method: int
    label_method: int
    index: Cursor
    label: Cursor


@dataclass
class File:
    version: tuple[int, int]
    n_reference: int
    k: int
    n_classes: int
    block_entries: int  # B' of §4
    class_names: list[str] | None = None
    fingerprint: bytes | None = None
    metadata: dict | None = None
    folders: tuple[int, bytes] | None = None
    blocks: list[Block] = field(default_factory=list)


def folders_digest(starts: list[int], n_reference: int) -> bytes:
    """§3: the first 8 bytes of SHA-256(domain || u64 N || u64 F || u64 s_j ...)."""
    raw = b"pladacodec-folders-v1\0" + struct.pack(f"<QQ{len(starts)}Q", n_reference, len(starts), *starts)
    return hashlib.sha256(raw).digest()[:8]


def parse(data: bytes) -> File:
    """Preamble, header and every block's framing and CRC (§2-§4); the sections stay undecoded."""
    cur = Cursor(data)
    if data[:8] == LEGACY_MAGIC and len(data) >= 10:
        raise SpecError(f"format version {data[8]}.{data[9]}: written before the first release")
    need(cur.take(4) == MAGIC, "magic")
    major, minor = cur.u8(), cur.u8()
    need(major == 2, f"format version {major}.{minor}")
    header = cur.sub(cur.varint())
    need(header.end - header.pos <= 16 << 20, "header above 16 MiB")
    n, k, c, b = header.varint(), header.varint(), header.varint(), header.varint()
    one_block = k >= 1 and b == 0  # §1: no header CRC; the block's CRC covers the whole file
    if not one_block:
        need(cur.u32() == crc32c(data[: header.end]), "header CRC")
    need(1 <= n <= MAX_N and k <= n and 1 <= c <= 65_535, "N, k, C")
    if b == 0:
        need(k <= MAX_BLOCK, "one block of more than 2^20 entries")
        b = max(k, 1)
    else:
        need(b < k and b <= MAX_BLOCK, "B")
    out = File((major, minor), n, k, c, b)
    seen = set()
    while not header.at_end():
        tag = header.varint()
        value = header.sub(header.varint())
        need(tag not in seen, f"tag {tag} twice")
        seen.add(tag)
        if tag == 1:
            need(value.varint() == c, "one class name per class")
            names = []
            for _ in range(c):
                size = value.varint()
                need(size <= 4096, "class name above 4,096 bytes")
                names.append(value.take(size).decode("utf-8"))
            out.class_names = names
        elif tag == 2:
            n_folders = value.varint()
            need(1 <= n_folders <= n and value.remaining == 8, "folder layout field")
            out.folders = (n_folders, value.take(8))
        elif tag == 3:
            need(value.remaining == 32, "fingerprint of 32 bytes")
            out.fingerprint = value.take(32)
        elif tag == 5:
            need(value.remaining <= 1 << 20, "metadata above 1 MiB")
            out.metadata = json.loads(value.take(value.remaining).decode("utf-8"))
            need(isinstance(out.metadata, dict), "metadata is a JSON object")
        else:
            need(tag % 2 == 1, f"unknown critical tag {tag}")
            value.take(value.remaining)
        need(value.at_end(), f"field {tag} consumed exactly")
    n_blocks = -(-k // b)
    for i in range(n_blocks):
        start = cur.pos
        base = 0 if i == 0 else cur.varint()
        methods = cur.u8()
        index_len, label_len = cur.varint(), cur.varint()
        index, label = cur.sub(index_len), cur.sub(label_len)
        need(cur.u32() == crc32c(data[0 if one_block else start : label.end]), f"block {i} CRC")
        im, lm = methods & 15, methods >> 4
        need(im in INDEX_METHODS and lm in LABEL_METHODS, f"unknown methods {im}, {lm}")
        out.blocks.append(Block(min(b, k - i * b), base, im, lm, index, label))
    need(cur.at_end(), "bytes after the last block")
    return out


# --- §7.1 static tables and streams -------------------------------------------------------------


def static_table(weights: list[int]) -> tuple[list[int], list[int], int]:
    a = len(weights)
    bits = 16 if a <= 4097 else 20
    m = 1 << bits
    need(a < m, "alphabet too large")
    spread, total = m - a, sum(weights)
    freq = [1 + w * spread // total for w in weights]
    freq[freq.index(max(freq))] += m - sum(freq)  # to the first symbol with the largest freq
    cum = [0]
    for f in freq:
        cum.append(cum[-1] + f)
    return freq, cum, bits


def static_stream(words: list[int], n: int, table) -> list[int]:
    freq, cum, bits = table
    if n == 0:
        need(not words, "an empty stream has no word")
        return []
    n_states = 2 if n >= 4096 else 1
    need(len(words) >= 2 * n_states, "initial states")
    states = [(words[2 * j] << 32) | words[2 * j + 1] for j in range(n_states)]
    need(all(RANS_L <= x < 1 << 63 for x in states), "initial state out of range")
    pos, mask, out = 2 * n_states, (1 << bits) - 1, []
    for i in range(n):
        x = states[i % n_states]
        slot = x & mask
        s = bisect_right(cum, slot) - 1  # cum_s <= slot < cum_(s+1)
        x = freq[s] * (x >> bits) + slot - cum[s]
        if x < RANS_L:
            need(pos < len(words), "the stream ran out of words")
            x = (x << 32) | words[pos]
            pos += 1
        states[i % n_states] = x
        out.append(s)
    need(states == [RANS_L] * n_states and pos == len(words), "final states 2^31, every word used")
    return out


# --- §5.1 Golomb records ------------------------------------------------------------------------


def golomb_weights(a: int) -> list[int]:
    weights, w = [], 1 << 31
    while w >= 1 << 7 and len(weights) < 4096:
        weights.append(w)
        w = w * a >> 32
    weights.append(min((w << 32) // ((1 << 32) - a), 1 << 40))  # the escape
    return [w + 1 for w in weights]


def golomb_record(cur: Cursor, n: int) -> list[int]:
    b, a = cur.u8(), cur.u32()
    need(b <= 56, "remainder width")
    weights = golomb_weights(a)
    escape = len(weights) - 1
    quotients = static_stream(cur.words(cur.varint()), n, static_table(weights))
    packed = int.from_bytes(cur.take((n * b + 7) // 8), "little")
    remainders = [(packed >> (i * b)) & ((1 << b) - 1) for i in range(n)]
    out = []
    for q, r in zip(quotients, remainders):
        if q == escape:
            q += cur.varint()
            need(q <= MAX_N >> b, "escaped quotient")
        out.append((q << b) | r)
    return out


def index_golomb(section: Cursor, count: int, base: int, n_reference: int, starts) -> list[int]:
    return golomb_record(section, count)


# --- §6.1 iid labels ----------------------------------------------------------------------------


def label_iid(section: Cursor, count: int, n_classes: int, skips, base: int, starts) -> list[int]:
    used = section.varint()
    need(1 <= used <= min(n_classes, count), "labels in use")
    bins, position = [], -1
    for skip in golomb_record(section, used):
        position += skip + 1
        bins.append(position)
    need(bins[-1] < n_classes, "a label beyond C")
    counts = [c + 1 for c in golomb_record(section, used - 1)]
    counts.append(count - sum(counts))
    need(min(counts) >= 1, "histogram counts")
    if used == 1:
        return bins * count
    ranks = static_stream(section.words_to_end(), count, static_table(counts))
    got = [0] * used
    for r in ranks:
        got[r] += 1
    need(got == counts, "the ranks reproduce the histogram")
    return [bins[r] for r in ranks]


# --- decoding a file ----------------------------------------------------------------------------

INDEX_DECODERS = {1: index_golomb}
LABEL_DECODERS = {1: label_iid}


def decode(data: bytes, starts: list[int] | None = None, index_decoders=None, label_decoders=None):
    """(File, indices, labels) of a whole file; ``starts``: the folder layout's first indices."""
    index_decoders = index_decoders or INDEX_DECODERS
    label_decoders = label_decoders or LABEL_DECODERS
    f = parse(data)
    if f.folders is not None:
        need(starts is not None, "the file names a folder layout")
        need(f.folders == (len(starts), folders_digest(starts, f.n_reference)), "another folder layout")
    indices: list[int] = []
    labels: list[int] = []
    for block in f.blocks:
        if indices:
            need(block.base == indices[-1] + 1, "block base")
        uses = {("index", block.index_method), ("label", block.label_method)} & FOLDER_METHODS
        need(not uses or f.folders is not None, "a folder method without a layout in the header")
        folder_starts = starts if ("index", block.index_method) in uses else None
        skips = index_decoders[block.index_method](block.index, block.entries, block.base, f.n_reference, folder_starts)
        need(block.index.at_end() and len(skips) == block.entries, "index section consumed exactly")
        position = block.base - 1
        for skip in skips:
            position += skip + 1
            need(position < f.n_reference, "an index beyond N")
            indices.append(position)
        folder_starts = starts if ("label", block.label_method) in uses else None
        got = label_decoders[block.label_method](block.label, block.entries, f.n_classes, skips, block.base, folder_starts)
        need(block.label.at_end() and len(got) == block.entries, "label section consumed exactly")
        need(all(0 <= label < f.n_classes for label in got), "a label beyond C")
        labels += got
    return f, indices, labels


# --- the golden files ---------------------------------------------------------------------------

MANIFEST = json.loads((GOLDEN_DIR / "MANIFEST.json").read_text(encoding="utf-8"))


def sha256(values: list[int], dtype: str) -> str:
    return hashlib.sha256(np.asarray(values, dtype=np.dtype(dtype)).tobytes()).hexdigest()


def golden_starts(entry: dict) -> list[int] | None:
    """The folder layout a golden file was coded against (tests/common.py builds it)."""
    if entry["folders"] is None:
        return None
    assert entry["folders"] == "clustered"
    return [int(s) for s in clustered_folders(entry["n_reference"]).starts]


def check_golden(name: str, index_decoders=None, label_decoders=None) -> File:
    """Decode golden file ``name`` from the spec and compare it with MANIFEST.json."""
    entry = MANIFEST[name]
    data = (GOLDEN_DIR / f"{name}.plada").read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["file_sha256"]
    f, indices, labels = decode(data, golden_starts(entry), index_decoders, label_decoders)
    assert list(f.version) == entry["version"]
    assert (f.n_reference, f.n_classes, f.k) == (entry["n_reference"], entry["n_classes"], entry["k"])
    assert f.class_names == entry["class_names"]
    assert (f.fingerprint.hex() if f.fingerprint else None) == entry["reference_fingerprint"]
    assert f.metadata == entry["metadata"]
    assert (f.folders is not None) == (entry["folders"] is not None)
    assert sorted({b.index_method for b in f.blocks}) == entry["index_methods"]
    assert sorted({b.label_method for b in f.blocks}) == entry["label_methods"]
    assert sha256(indices, "<u8") == entry["indices_sha256"]
    assert sha256(labels, "<i8") == entry["labels_sha256"]
    return f


STATIC_GOLDEN = [name for name, e in MANIFEST.items() if set(e["index_methods"]) <= {1} and set(e["label_methods"]) <= {1}]


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283


@pytest.mark.parametrize("name", STATIC_GOLDEN)
def test_spec_decoder_reads_the_static_golden_files(name):
    check_golden(name)


def test_the_static_golden_files_cover_both_methods_and_table_sizes():
    """Index 1 and label 1 have golden files (a missing one fails), among them several blocks
    (bases after the first), escaped quotients (N = 2^40) and a 20-bit label table (> 4,097 labels in use)."""
    files = {name: parse((GOLDEN_DIR / f"{name}.plada").read_bytes()) for name in STATIC_GOLDEN}
    assert any(b.index_method == 1 for f in files.values() for b in f.blocks), "index method 1 has no golden file"
    assert any(b.label_method == 1 for f in files.values() for b in f.blocks), "label method 1 has no golden file"
    assert any(len(f.blocks) > 1 for f in files.values()), "no golden file of several blocks"
    assert any(f.n_reference == MAX_N for f in files.values()), "no golden file with N = 2^40"
    assert any(MANIFEST[name]["n_classes"] == 65_535 and MANIFEST[name]["k"] > 4097 for name in files)
    assert any(f.k == 0 and not f.blocks for f in files.values()), "no golden file without entries"


def test_a_format_1_file_is_refused_naming_its_version():
    with pytest.raises(SpecError, match=r"version 1\.5"):
        parse(LEGACY_MAGIC + bytes([1, 5]) + bytes(46))


# --- what the encoder writes --------------------------------------------------------------------


def selections():
    """(name, indices, labels, n_reference, n_classes): structured, uniform, many classes."""
    rng = np.random.default_rng(5)
    runs = [start + np.flatnonzero(rng.random(300) < rng.uniform(0.2, 0.9)) for start in range(1000, 60_000, 6000)]
    structured = np.unique(np.concatenate(runs))
    yield "structured", structured, (structured // 6000 % 7).astype(np.int64), 60_000, 7
    uniform = np.sort(rng.choice(1_000_000, 1500, replace=False))
    yield "uniform", uniform, rng.integers(0, 10, uniform.size), 1_000_000, 10
    dense = np.sort(rng.choice(3000, 2500, replace=False))
    yield "dense-one-label", dense, np.full(dense.size, 3), 3000, 5
    many = np.unique(rng.integers(0, 1 << 40, 600, dtype=np.uint64))
    yield "many-classes", many, rng.integers(0, 65_535, many.size), 1 << 40, 65_535


@pytest.mark.parametrize("block_entries", [None, 500])
def test_spec_decoder_reads_what_the_encoder_writes(block_entries):
    import pladacodec

    for name, indices, labels, n_reference, n_classes in selections():
        data = pladacodec.encode(indices, labels, n_reference, n_classes=n_classes, block_entries=block_entries,
                                 index_methods=[1], label_methods=[1])
        f, got_indices, got_labels = decode(data)
        assert len(f.blocks) == (1 if block_entries is None else -(-len(indices) // block_entries)), name
        assert got_indices == indices.tolist(), name
        assert got_labels == labels.tolist(), name
