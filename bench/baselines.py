"""Baselines that a ``.plada`` file must beat, each a real encoder and decoder.

Every baseline turns a :class:`~pladacodec_bench.workloads.Selection` into bytes and back,
so size, round trip and decode time can all be measured.  The decoder is told what a
``.plada`` reader also knows from context: the reference-set size and the class count.
Index and label arrays travel in the smallest unsigned dtype that holds them; the few
bytes of header a baseline needs to decode (count, dtype widths) are counted in its size.

The general-purpose compressors (:data:`GENERAL_PURPOSE`: brotli-11, xz-9e, PPMd and ZPAQ-5)
all get the same input, the first index, byte-shuffled gaps and byte-shuffled labels.  PPMd
and ZPAQ come from the optional PyPI packages ``pyppmd`` and ``zpaq``; a baseline whose
package is missing is left out of :data:`BASELINES`.

``iid_bound_bits`` is the size an ideal coder reaches if the indices were a uniformly
random k-subset and the labels i.i.d. from their empirical histogram:
``log2 C(N, k) + k * H(labels) + log2 C(k + C - 1, C - 1)`` bits (the last term sends the
histogram).

Example
-------

>>> from pladacodec_bench.workloads import make_selection
>>> sel = make_selection("in1k-c10", keep=0.01)
>>> blob = BASELINES["paper-list-zstd19"].encode(sel)
>>> indices, labels = BASELINES["paper-list-zstd19"].decode(blob, sel.n_reference, sel.n_classes)
>>> bool((indices == sel.indices).all() and (labels == sel.labels).all())
True
"""

from __future__ import annotations

import io
import lzma
import math
import struct
from dataclasses import dataclass
from typing import Callable

import brotli
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyroaring
import zstandard

from .workloads import Selection

try:  # optional: the bench extra installs both, but either may lack a wheel somewhere
    import pyppmd
except ImportError:  # pragma: no cover - exercised only where pyppmd does not install
    pyppmd = None
try:
    import zpaq
except ImportError:  # pragma: no cover
    zpaq = None

__all__ = ["BASELINES", "GENERAL_PURPOSE", "Baseline", "iid_bound_bits", "smallest_uint"]

Decoded = tuple[np.ndarray, np.ndarray]  # (indices as np.uint64, labels as np.int64)

ZSTD_LEVEL = 19
BROTLI_QUALITY = 11
BROTLI_LGWIN = 24  # the brotli command line's default window, larger than the library's 22
XZ_PRESET = 9 | lzma.PRESET_EXTREME
# PPMd (PyPI pyppmd): the smallest output over both variants (H = 7-Zip's Ppmd7, I = Ppmd8)
# and these model orders; the "best of orders 2-16".  Order 2 wins on almost every
# selection measured, higher orders on none by more than 1 %.
PPMD_VARIANTS = ("H", "I")
PPMD_ORDERS = (2, 3, 4, 6, 8, 12, 16)
PPMD_MIN_MEMORY, PPMD_MAX_MEMORY = 16 << 20, 1 << 30  # model memory: 32 bytes per input byte, clamped
ZPAQ_LEVEL = 5  # PyPI zpaq, one thread (a single block: the smallest output), no hints, no checksum

# Header of the list-based baselines: k, gap itemsize, first index.
_LIST_HEADER = struct.Struct("<QBQ")
_LENGTH = struct.Struct("<Q")


@dataclass(frozen=True)
class Baseline:
    """A named encoder/decoder pair."""

    name: str
    encode: Callable[[Selection], bytes]
    decode: Callable[[bytes, int, int], Decoded]
    description: str = ""


def smallest_uint(max_value: int) -> np.dtype:
    """The narrowest of uint8/16/32/64 that holds ``max_value``."""
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"{max_value} does not fit in 64 bits")


def _label_dtype(n_classes: int) -> np.dtype:
    return smallest_uint(max(n_classes - 1, 0))


def _gaps(sel: Selection) -> tuple[int, np.ndarray]:
    """First index and the gaps after it, in the smallest dtype that holds the largest gap."""
    if sel.k == 0:
        return 0, np.zeros(0, dtype=np.uint8)
    gaps = np.diff(sel.indices)
    return int(sel.indices[0]), gaps.astype(smallest_uint(int(gaps.max()) if gaps.size else 0))


def _undo_gaps(first: int, gaps: np.ndarray, k: int) -> np.ndarray:
    if k == 0:
        return np.zeros(0, dtype=np.uint64)
    indices = np.empty(k, dtype=np.uint64)
    indices[0] = first
    np.cumsum(gaps, dtype=np.uint64, out=indices[1:])
    indices[1:] += np.uint64(first)
    return indices


def _labels(sel: Selection) -> np.ndarray:
    return sel.labels.astype(_label_dtype(sel.n_classes))


def _shuffle(array: np.ndarray) -> bytes:
    """All first bytes, then all second bytes, ... (little-endian byte planes)."""
    planes = array.astype(array.dtype.newbyteorder("<"), copy=False).view(np.uint8)
    return planes.reshape(-1, array.dtype.itemsize).T.tobytes()


def _unshuffle(data: bytes, dtype: np.dtype, count: int) -> np.ndarray:
    planes = np.frombuffer(data, dtype=np.uint8, count=count * dtype.itemsize)
    return planes.reshape(dtype.itemsize, count).T.copy().view(dtype.newbyteorder("<")).ravel()


# -- the paper's pipeline --------------------------------------------------------------


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)


def _unzstd(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompress(data)


def _encode_list_payload(sel: Selection) -> bytes:
    first, gaps = _gaps(sel)
    return _LIST_HEADER.pack(sel.k, gaps.itemsize, first) + gaps.tobytes() + _labels(sel).tobytes()


def _decode_list_payload(payload: bytes, n_classes: int, shuffled: bool) -> Decoded:
    k, gap_size, first = _LIST_HEADER.unpack_from(payload)
    gap_dtype = np.dtype(f"<u{gap_size}")
    label_dtype = _label_dtype(n_classes).newbyteorder("<")
    body = payload[_LIST_HEADER.size :]
    n_gaps = max(k - 1, 0)
    split = n_gaps * gap_size
    if shuffled:
        gaps = _unshuffle(body[:split], gap_dtype, n_gaps)
        labels = _unshuffle(body[split:], label_dtype, k)
    else:
        gaps = np.frombuffer(body, dtype=gap_dtype, count=n_gaps)
        labels = np.frombuffer(body, dtype=label_dtype, count=k, offset=split)
    return _undo_gaps(first, gaps, k), labels.astype(np.int64)


def _encode_list_shuffled_payload(sel: Selection) -> bytes:
    first, gaps = _gaps(sel)
    return _LIST_HEADER.pack(sel.k, gaps.itemsize, first) + _shuffle(gaps) + _shuffle(_labels(sel))


def _paper_list_encode(sel: Selection) -> bytes:
    return _zstd(_encode_list_payload(sel))


def _paper_list_decode(blob: bytes, n_reference: int, n_classes: int) -> Decoded:
    return _decode_list_payload(_unzstd(blob), n_classes, shuffled=False)


def _paper_bitmap_encode(sel: Selection) -> bytes:
    bits = np.zeros(sel.n_reference, dtype=bool)
    bits[sel.indices] = True
    return _zstd(np.packbits(bits).tobytes() + _labels(sel).tobytes())


def _paper_bitmap_decode(blob: bytes, n_reference: int, n_classes: int) -> Decoded:
    payload = _unzstd(blob)
    n_bytes = (n_reference + 7) // 8
    bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8, count=n_bytes), count=n_reference)
    indices = np.flatnonzero(bits).astype(np.uint64)
    labels = np.frombuffer(payload, dtype=_label_dtype(n_classes).newbyteorder("<"), offset=n_bytes)
    return indices, labels.astype(np.int64)


# -- general-purpose compressors on byte-shuffled gaps ----------------------------------


def _brotli_encode(sel: Selection) -> bytes:
    return brotli.compress(_encode_list_shuffled_payload(sel), quality=BROTLI_QUALITY, lgwin=BROTLI_LGWIN)


def _brotli_decode(blob: bytes, n_reference: int, n_classes: int) -> Decoded:
    return _decode_list_payload(brotli.decompress(blob), n_classes, shuffled=True)


def _xz_encode(sel: Selection) -> bytes:
    return lzma.compress(_encode_list_shuffled_payload(sel), format=lzma.FORMAT_XZ, preset=XZ_PRESET)


def _xz_decode(blob: bytes, n_reference: int, n_classes: int) -> Decoded:
    return _decode_list_payload(lzma.decompress(blob, format=lzma.FORMAT_XZ), n_classes, shuffled=True)


def _uleb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_uleb128(data: bytes) -> tuple[int, int]:
    """The value and the number of bytes it took."""
    value = shift = 0
    for i, byte in enumerate(data[:10]):
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i + 1
        shift += 7
    raise ValueError("truncated or over-long LEB128 length")


def _ppmd_memory(length: int) -> int:
    """Model memory in bytes for an input of ``length`` bytes (a power of two)."""
    wanted = max(PPMD_MIN_MEMORY, 32 * length)
    return min(PPMD_MAX_MEMORY, 1 << (wanted - 1).bit_length())


def _ppmd_raw_decode(body: bytes, variant: str, order: int, length: int) -> bytes:
    decoder = (pyppmd.Ppmd7Decoder if variant == "H" else pyppmd.Ppmd8Decoder)(order, _ppmd_memory(length))
    return decoder.decode(body, length)


def _ppmd_encode(sel: Selection) -> bytes:
    """One byte (variant bit 7, order in bits 0-6), the payload length as LEB128, the PPMd stream.

    Every (variant, order) is tried and the smallest stream that decodes back is kept (pyppmd's
    Ppmd7 decoder stops short on a few inputs: e.g. order 10 on in21k-c200 at keep 1 %)."""
    data = _encode_list_shuffled_payload(sel)
    memory = _ppmd_memory(len(data))
    candidates = sorted(
        (len(body), variant, order, body)
        for variant in PPMD_VARIANTS
        for order in PPMD_ORDERS
        for body in [pyppmd.compress(data, max_order=order, mem_size=memory, variant=variant)]
    )
    for _, variant, order, body in candidates:
        if _ppmd_raw_decode(body, variant, order, len(data)) == data:
            tag = (0x80 if variant == "I" else 0) | order
            return bytes([tag]) + _uleb128(len(data)) + body
    raise RuntimeError(f"no PPMd variant and order round-trips {sel.name}")  # pragma: no cover


def _ppmd_decode(blob: bytes, n_reference: int, n_classes: int) -> Decoded:
    variant, order = ("I" if blob[0] & 0x80 else "H"), blob[0] & 0x7F
    length, used = _read_uleb128(blob[1:])
    payload = _ppmd_raw_decode(blob[1 + used :], variant, order, length)
    return _decode_list_payload(payload, n_classes, shuffled=True)


def _zpaq_encode(sel: Selection) -> bytes:
    data = _encode_list_shuffled_payload(sel)
    return zpaq.compress(data, level=ZPAQ_LEVEL, threads=1, hints=False, verify=False)


def _zpaq_decode(blob: bytes, n_reference: int, n_classes: int) -> Decoded:
    return _decode_list_payload(zpaq.decompress(blob, threads=1), n_classes, shuffled=True)


# -- container formats ------------------------------------------------------------------


def _npz_encode(sel: Selection) -> bytes:
    first, gaps = _gaps(sel)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, first=np.array([first], dtype=np.uint64), gaps=gaps, labels=_labels(sel))
    return buffer.getvalue()


def _npz_decode(blob: bytes, n_reference: int, n_classes: int) -> Decoded:
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        labels = archive["labels"]
        first = int(archive["first"][0])
        return _undo_gaps(first, archive["gaps"], labels.size), labels.astype(np.int64)


def _parquet_encode(sel: Selection) -> bytes:
    # The index column holds sorted indices: DELTA_BINARY_PACKED takes the gaps itself
    # and bit-packs them per miniblock.  Labels are dictionary + RLE/bit-packed.
    table = pa.table(
        {
            "index": pa.array(sel.indices.astype(np.int64)),
            "label": pa.array(_labels(sel)),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(
        table,
        buffer,
        compression="zstd",
        compression_level=ZSTD_LEVEL,
        use_dictionary=["label"],
        column_encoding={"index": "DELTA_BINARY_PACKED"},
        write_statistics=False,
        store_schema=False,
    )
    return buffer.getvalue()


def _parquet_decode(blob: bytes, n_reference: int, n_classes: int) -> Decoded:
    table = pq.read_table(pa.BufferReader(blob))
    indices = table.column("index").to_numpy().astype(np.uint64)
    return indices, table.column("label").to_numpy().astype(np.int64)


def _roaring_class(n_reference: int):
    return pyroaring.BitMap if n_reference <= 2**32 else pyroaring.BitMap64


def _roaring_encode(sel: Selection) -> bytes:
    bitmap = _roaring_class(sel.n_reference)(sel.indices)
    bitmap.run_optimize()
    serialized = bitmap.serialize()
    return _LENGTH.pack(len(serialized)) + serialized + _zstd(_labels(sel).tobytes())


def _roaring_decode(blob: bytes, n_reference: int, n_classes: int) -> Decoded:
    (length,) = _LENGTH.unpack_from(blob)
    start = _LENGTH.size
    bitmap = _roaring_class(n_reference).deserialize(blob[start : start + length])
    indices = np.asarray(bitmap.to_array()).astype(np.uint64)  # array('I') or array('Q')
    labels = np.frombuffer(_unzstd(blob[start + length :]), dtype=_label_dtype(n_classes).newbyteorder("<"))
    return indices, labels.astype(np.int64)


BASELINES: dict[str, Baseline] = {
    baseline.name: baseline
    for baseline in (
        Baseline(
            "paper-list-zstd19",
            _paper_list_encode,
            _paper_list_decode,
            "first index + gaps, labels, smallest dtypes, zstd level 19 (the paper's pipeline)",
        ),
        Baseline(
            "paper-bitmap-zstd19",
            _paper_bitmap_encode,
            _paper_bitmap_decode,
            "np.packbits bitmap of N bits + labels, zstd level 19 (the paper's bitmap variant)",
        ),
        Baseline(
            "brotli11-shuffled",
            _brotli_encode,
            _brotli_decode,
            "byte-shuffled gaps + labels, brotli quality 11, window 2^24",
        ),
        Baseline(
            "xz9e-shuffled",
            _xz_encode,
            _xz_decode,
            "byte-shuffled gaps + labels, xz preset 9e",
        ),
        *(
            []
            if pyppmd is None
            else [
                Baseline(
                    "ppmd-shuffled",
                    _ppmd_encode,
                    _ppmd_decode,
                    "byte-shuffled gaps + labels, PPMd (pyppmd), the best of variants H / I and orders"
                    f" {', '.join(map(str, PPMD_ORDERS))}",
                )
            ]
        ),
        *(
            []
            if zpaq is None
            else [
                Baseline(
                    "zpaq5-shuffled",
                    _zpaq_encode,
                    _zpaq_decode,
                    f"byte-shuffled gaps + labels, ZPAQ level {ZPAQ_LEVEL} (PyPI zpaq), one thread",
                )
            ]
        ),
        Baseline(
            "npz-compressed",
            _npz_encode,
            _npz_decode,
            "np.savez_compressed of first index, gaps and labels",
        ),
        Baseline(
            "parquet-zstd",
            _parquet_encode,
            _parquet_decode,
            "Parquet: indices DELTA_BINARY_PACKED, labels dictionary, zstd level 19",
        ),
        Baseline(
            "roaring-zstd",
            _roaring_encode,
            _roaring_decode,
            "run-optimised Roaring bitmap + zstd-19 labels",
        ),
    )
}

# The general-purpose compressors on byte-shuffled gaps + labels, those installed.
GENERAL_PURPOSE: tuple[str, ...] = tuple(
    name for name in ("brotli11-shuffled", "xz9e-shuffled", "ppmd-shuffled", "zpaq5-shuffled") if name in BASELINES
)


def _log2_binomial(n: int, k: int) -> float:
    if k < 0 or k > n:
        raise ValueError(f"binomial({n}, {k}) is zero")
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2)


def iid_bound_bits(sel: Selection) -> float:
    """``log2 C(N, k) + k * H(labels) + log2 C(k + C - 1, C - 1)`` bits, H the empirical entropy."""
    k, n_classes = sel.k, sel.n_classes
    counts = np.bincount(sel.labels, minlength=n_classes).astype(np.float64)
    counts = counts[counts > 0]
    # k * H = k log2 k - sum c log2 c, summed without forming probabilities.
    label_bits = float(k * math.log2(k) - np.sum(counts * np.log2(counts))) if k else 0.0
    return _log2_binomial(sel.n_reference, k) + label_bits + _log2_binomial(k + n_classes - 1, n_classes - 1)
