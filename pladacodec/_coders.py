"""Section coders with stored or parametric tables (FORMAT.md §5.1, §5.2, §5.8, §6.1, §6.4).

Methods 1 / 2 / label 1 use constriction's ANS; their v1.2 successors (index method 5,
label method 4) code the same models with the static two-state rANS of
:mod:`pladacodec._kernels` (FORMAT.md §5.8), which decodes several times faster.

Every probability table handed to constriction is derived from integers that
are stored in (or derived bit-exactly from) the file, converted to float64
exactly, and used with ``perfect=False``; so every platform builds the same
quantised model and decodes the same bytes.

ANS decodes arbitrary words without complaint, so integrity comes from our own
checks: every stream must be consumed exactly (``is_empty``), every decoded
histogram must match the stored one, every index must stay in range.
"""

from __future__ import annotations

import functools
import math
import struct

import constriction
import numpy as np

from . import _kernels
from ._bytes import Reader, encode_varint
from ._spec import (
    ANS_SENTINEL,
    GOLOMB_MAX_SYMBOLS,
    GOLOMB_MAX_WIDTH,
    GOLOMB_MIN_WEIGHT,
    GOLOMB_PARAMS_FORMAT,
    GOLOMB_TAIL_CAP,
    GOLOMB_W0,
    MAX_BITMAP_SPAN,
    MAX_N_REFERENCE,
    STATIC_BITS,
    STATIC_BITS_LARGE,
    STATIC_MAX_SMALL_ALPHABET,
)
from .errors import PladaFormatError

__all__ = [
    "golomb_encode",
    "golomb_decode",
    "histogram_encode",
    "histogram_decode",
    "labels_iid_encode",
    "labels_iid_decode",
    "bitmap_encode",
    "bitmap_decode",
    "indices_golomb_encode",
    "indices_golomb_decode",
    "indices_golomb_rans_encode",
    "indices_golomb_rans_decode",
    "labels_iid_rans_encode",
    "labels_iid_rans_decode",
]

_U32 = np.dtype("<u4")


# --- constriction plumbing ----------------------------------------------------


def _categorical(weights: np.ndarray):
    """A constriction model from integer weights (exact in float64, perfect=False)."""
    return constriction.stream.model.Categorical(weights.astype(np.float64), perfect=False)


def _ans_encode(symbols: np.ndarray, model) -> bytes:
    """ANS-encode ``symbols`` (int32) after a 16-bit sentinel; returns varint(word count) + words (LE u32).

    The sentinel sits at the bottom of the ANS stack, so it is decoded last: a
    decoder asked for a different number of symbols than were coded reads it
    wrong, which catches what ``is_empty`` alone cannot (constriction's stack
    starts from an empty state in which a certain symbol costs no bits).
    """
    if len(symbols) == 0:
        return encode_varint(0)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(np.array([ANS_SENTINEL], dtype=np.int32), _SENTINEL_MODEL)
    coder.encode_reverse(np.ascontiguousarray(symbols, dtype=np.int32), model)
    words = coder.get_compressed()
    return encode_varint(len(words)) + words.astype(_U32, copy=False).tobytes()


def _ans_decode(reader: Reader, model, count: int, what: str) -> np.ndarray:
    """Inverse of :func:`_ans_encode`: exactly ``count`` symbols, the sentinel, every word used."""
    n_words = reader.varint(f"{what} word count", maximum=reader.remaining // 4)
    words = np.frombuffer(reader.take(4 * n_words, f"{what} words"), dtype=_U32).astype(np.uint32)
    if count == 0:
        if n_words:
            raise PladaFormatError(f"{what}: an empty stream must have no ANS words")
        return np.zeros(0, dtype=np.int64)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        symbols = coder.decode(model, count)
        sentinel = coder.decode(_SENTINEL_MODEL, 1)
        empty = coder.is_empty()
    except BaseException as exc:  # constriction raises ValueError, or pyo3's PanicException
        if isinstance(exc, (KeyboardInterrupt, SystemExit, MemoryError)):
            raise
        raise PladaFormatError(f"{what}: invalid ANS stream ({exc})") from None
    if int(sentinel[0]) != ANS_SENTINEL:
        raise PladaFormatError(f"{what}: ANS stream does not end in its sentinel after {count:,} symbols")
    if not empty:
        raise PladaFormatError(f"{what}: ANS stream has unused words after {count:,} symbols")
    return np.asarray(symbols, dtype=np.int64)


_SENTINEL_MODEL = constriction.stream.model.Uniform(1 << 16)


# --- static two-state rANS plumbing (§5.8) ----------------------------------------------


def _static_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(freq, cum, bits) of §5.8 for positive integer weights."""
    weights = np.array(weights, dtype=np.int64)  # a writable copy (golomb_weights are read-only)
    bits = STATIC_BITS if len(weights) <= STATIC_MAX_SMALL_ALPHABET else STATIC_BITS_LARGE
    freq = np.empty(len(weights), dtype=np.int32)
    cum = np.empty(len(weights) + 1, dtype=np.int32)
    if _kernels.static_table(weights, bits, freq, cum) < 0:
        raise PladaFormatError(f"an alphabet of {len(weights):,} symbols does not fit a {bits}-bit table")
    return freq, cum, bits


@functools.lru_cache(maxsize=64)
def _golomb_static_table(a: int) -> tuple[np.ndarray, np.ndarray, int]:
    return _static_table(golomb_weights(a))


def _static_encode(symbols: np.ndarray, table: tuple[np.ndarray, np.ndarray, int]) -> bytes:
    """varint(word count) + words of the static two-state rANS stream of ``symbols``."""
    freq, cum, bits = table
    words = np.empty(len(symbols) + 4, dtype=np.uint32)
    n_words = _kernels.static_rans_encode(np.ascontiguousarray(symbols, dtype=np.int32), freq, cum, bits, words)
    return encode_varint(n_words) + words[:n_words].astype(_U32, copy=False).tobytes()


def _static_decode(reader: Reader, table: tuple[np.ndarray, np.ndarray, int], count: int, what: str) -> np.ndarray:
    """Inverse of :func:`_static_encode`: exactly ``count`` symbols, every word used, final states 2^31."""
    freq, cum, bits = table
    n_words = reader.varint(f"{what} word count", maximum=reader.remaining // 4)
    words = np.frombuffer(reader.take(4 * n_words, f"{what} words"), dtype=_U32).astype(np.uint32)
    out = np.empty(count, dtype=np.int32)
    if _kernels.static_rans_decode(words, freq, cum, bits, out) < 0:
        raise PladaFormatError(f"{what}: invalid rANS stream for {count:,} symbols")
    return out


# --- Golomb-ANS: parametric geometric coder for non-negative integers (§5.1) ------


@functools.lru_cache(maxsize=64)
def golomb_weights(a: int) -> np.ndarray:
    """Integer weights of the quotient alphabet for continuation probability a / 2**32.

    weight[j] = floor(weight[j-1] * a / 2**32) from 2**31, until a weight drops
    below 2**7 or 4096 symbols exist; the last symbol is the escape, weighted by
    the geometric tail (capped).  Every weight gets +1 so none is zero.
    """
    weights = []
    w = GOLOMB_W0
    while w >= GOLOMB_MIN_WEIGHT and len(weights) < GOLOMB_MAX_SYMBOLS:
        weights.append(w)
        w = (w * a) >> 32
    tail = min((w << 32) // ((1 << 32) - a), GOLOMB_TAIL_CAP)
    weights.append(tail)
    out = np.array(weights, dtype=np.int64) + 1
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=64)
def _golomb_model(a: int):
    return _categorical(golomb_weights(a))


def _golomb_cost_bits(x: np.ndarray, b: int) -> tuple[float, int]:
    """Estimated size in bits of coding ``x`` with remainder width ``b`` (encoder's choice only)."""
    q = x >> np.uint64(b)
    mean_q = float(q.mean())
    c = mean_q / (1.0 + mean_q)
    a = min(int(round(c * 2**32)), 2**32 - 1)
    weights = golomb_weights(a)
    escape = len(weights) - 1
    logp = np.log2(weights.astype(np.float64) / float(weights.sum()))
    qs = np.minimum(q, escape).astype(np.int64)
    hist = np.bincount(qs, minlength=len(weights))
    bits = -float(hist @ logp) + len(x) * b
    bits += 40.0 * float(hist[escape])  # escaped quotients cost a varint each (rough)
    return bits, a


def golomb_encode(x: np.ndarray, static: bool = False) -> tuple[bytes, bytes]:
    """Code non-negative integers ``x`` (uint64); returns (params, body).

    x = q * 2**b + r: q is ANS-coded with a geometric table of parameter a
    (constriction, §5.1; or with ``static``, the two-state rANS of §5.8),
    r is stored in b raw bits, quotients beyond the table as varints.
    """
    x = np.ascontiguousarray(x, dtype=np.uint64)
    if len(x) == 0:
        return struct.pack(GOLOMB_PARAMS_FORMAT, 0, 0), encode_varint(0)
    mean = float(x.mean())
    b0 = int(math.floor(math.log2(mean / 8.0))) if mean >= 16.0 else 0
    candidates = range(max(0, b0 - 2), min(GOLOMB_MAX_WIDTH, b0 + 3) + 1)
    best = None
    for bb in candidates:
        bits, aa = _golomb_cost_bits(x, bb)
        if best is None or bits < best[0]:
            best = (bits, bb, aa)
    _, b, a = best
    weights = golomb_weights(a)
    escape = len(weights) - 1
    q = x >> np.uint64(b)
    symbols = np.minimum(q, escape).astype(np.int32)
    if static:
        body = bytearray(_static_encode(symbols, _golomb_static_table(a)))
    else:
        body = bytearray(_ans_encode(symbols, _golomb_model(a)))
    if b:
        raw = np.zeros((len(x) * b + 7) // 8, dtype=np.uint8)
        _kernels.pack_bits(x & np.uint64((1 << b) - 1), b, raw)
        body += raw.tobytes()
    for value in q[q >= escape]:
        body += encode_varint(int(value) - escape)
    return struct.pack(GOLOMB_PARAMS_FORMAT, b, a), bytes(body)


def golomb_decode(params: Reader, body: Reader, count: int, what: str, static: bool = False) -> np.ndarray:
    """Inverse of :func:`golomb_encode`; values are bounded by MAX_N_REFERENCE."""
    b, a = params.unpack(GOLOMB_PARAMS_FORMAT, f"{what} parameters")
    if b > GOLOMB_MAX_WIDTH:
        raise PladaFormatError(f"{what}: remainder width {b} exceeds {GOLOMB_MAX_WIDTH}")
    weights = golomb_weights(a)
    escape = len(weights) - 1
    if static:
        symbols = _static_decode(body, _golomb_static_table(a), count, what)
    else:
        symbols = _ans_decode(body, _golomb_model(a), count, what).astype(np.int32)
    raw = np.frombuffer(body.take((count * b + 7) // 8, f"{what} remainder bits"), dtype=np.uint8).copy()
    values = np.empty(count, dtype=np.uint64)
    if _kernels.golomb_combine(symbols, raw, b, escape, values):
        q_limit = MAX_N_REFERENCE >> b
        low = np.uint64((1 << b) - 1)
        for position in np.flatnonzero((values >> np.uint64(b)) == np.uint64(escape)):
            q = escape + body.varint(f"{what} escaped quotient", maximum=q_limit)
            if q > q_limit:
                raise PladaFormatError(f"{what}: quotient exceeds {q_limit:,}")
            values[position] = (np.uint64(q) << np.uint64(b)) | (values[position] & low)
    return values


# --- Histograms (§5.4) -------------------------------------------------------------------------


def histogram_encode(counts: np.ndarray, static: bool = False) -> bytes:
    """Code a histogram whose total the decoder knows, sparsely.

    varint(u = bins in use), then Golomb-ANS (with ``static``: Golomb-rANS) of the skips
    between the used bins, then the same of (count - 1) for all used bins but the last (the total
    gives the last).  About log2 C(C, u) + log2 C(k - 1, u - 1) bits, never more
    than the stars-and-bars bound log2 C(k + C - 1, C - 1) by more than a few
    bytes, and decoding costs O(u) <= O(k), not O(C).
    """
    used = np.flatnonzero(counts)
    out = bytearray(encode_varint(len(used)))
    if len(used):
        positions = np.diff(used, prepend=-1) - 1
        for values in (positions, counts[used][:-1] - 1):
            params, body = golomb_encode(np.asarray(values, dtype=np.uint64), static)
            out += params + body
    return bytes(out)


def histogram_decode(reader: Reader, n_bins: int, total: int, what: str, static: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`histogram_encode`: (used bins, their counts), all counts >= 1."""
    n_used = reader.varint(f"{what} bins in use", maximum=min(n_bins, total))
    if n_used == 0:
        if total:
            raise PladaFormatError(f"{what}: no bin in use for a total of {total:,}")
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    skips = golomb_decode(reader, reader, n_used, f"{what} bins", static)
    if int(skips.max()) >= n_bins:
        raise PladaFormatError(f"{what}: bin beyond {n_bins:,}")
    bins = np.cumsum(skips.astype(np.int64) + 1) - 1
    if int(bins[-1]) >= n_bins:
        raise PladaFormatError(f"{what}: bin {int(bins[-1]):,} beyond {n_bins:,}")
    head = golomb_decode(reader, reader, n_used - 1, f"{what} counts", static)
    if len(head) and int(head.max()) >= total:
        raise PladaFormatError(f"{what}: a bin count exceeds the total {total:,}")
    counts = np.empty(n_used, dtype=np.int64)
    counts[:-1] = head.astype(np.int64) + 1
    last = total - int(counts[:-1].sum())
    if last < 1:
        raise PladaFormatError(f"{what}: bin counts add up to more than the total {total:,}")
    counts[-1] = last
    return bins, counts


def _symbols_encode(symbols: np.ndarray, n_symbols: int, static: bool = False) -> bytes:
    """Sparse histogram + i.i.d. ANS stream of each symbol's rank among the used ones
    (§5.5; with ``static``, every stream is the two-state rANS of §5.8)."""
    counts = np.bincount(symbols, minlength=n_symbols).astype(np.int64)
    out = bytearray(histogram_encode(counts, static))
    used = np.flatnonzero(counts)
    if len(used) <= 1:
        out += encode_varint(0)
    else:
        rank_of = np.zeros(n_symbols, dtype=np.int32)
        rank_of[used] = np.arange(len(used), dtype=np.int32)
        if static:
            out += _static_encode(rank_of[symbols], _static_table(counts[used]))
        else:
            out += _ans_encode(rank_of[symbols], _categorical(counts[used]))
    return bytes(out)


def _symbols_decode(reader: Reader, n_symbols: int, count: int, what: str, static: bool = False) -> np.ndarray:
    bins, counts = histogram_decode(reader, n_symbols, count, f"{what} histogram", static)
    if len(bins) <= 1:
        if reader.varint(f"{what} word count") != 0:
            raise PladaFormatError(f"{what}: a constant stream must have no ANS words")
        return np.full(count, bins[0] if len(bins) else 0, dtype=np.int64)
    if static:
        ranks = _static_decode(reader, _static_table(counts), count, what)
    else:
        ranks = _ans_decode(reader, _categorical(counts), count, what).astype(np.int32)
    symbols = np.empty(count, dtype=np.int64)
    if _kernels.ranks_to_symbols(ranks, bins, counts, symbols) < 0:
        raise PladaFormatError(f"{what}: decoded symbols disagree with the stored histogram")
    return symbols


# --- Labels, i.i.d. (§6.1) ------------------------------------------------------------


def labels_iid_encode(labels: np.ndarray, n_classes: int) -> tuple[bytes, bytes]:
    return b"", _symbols_encode(np.asarray(labels, dtype=np.int64), n_classes)


def labels_iid_decode(params: Reader, body: Reader, count: int, n_classes: int) -> np.ndarray:
    return _symbols_decode(body, n_classes, count, "label stream")


def labels_iid_rans_encode(labels: np.ndarray, n_classes: int) -> tuple[bytes, bytes]:
    return b"", _symbols_encode(np.asarray(labels, dtype=np.int64), n_classes, static=True)


def labels_iid_rans_decode(params: Reader, body: Reader, count: int, n_classes: int) -> np.ndarray:
    return _symbols_decode(body, n_classes, count, "label stream", static=True)


# --- Indices ---------------------------------------------------------------------------


def skips_from_indices(indices: np.ndarray, base: int) -> np.ndarray:
    skips = np.empty(len(indices), dtype=np.uint64)
    _kernels.gaps_from_indices(indices, np.uint64(base), skips)
    return skips


def indices_from_skips(skips: np.ndarray, base: int, n_reference: int, what: str) -> np.ndarray:
    out = np.empty(len(skips), dtype=np.uint64)
    status = _kernels.indices_from_gaps(np.ascontiguousarray(skips, dtype=np.uint64), np.uint64(base), np.uint64(n_reference), out)
    if status:
        raise PladaFormatError(f"{what}: entry {-status - 1:,} points beyond the reference size {n_reference:,}")
    return out


def indices_golomb_encode(indices: np.ndarray, base: int) -> tuple[bytes, bytes]:
    return golomb_encode(skips_from_indices(indices, base))


def indices_golomb_decode(params: Reader, body: Reader, count: int, base: int, n_reference: int) -> np.ndarray:
    skips = golomb_decode(params, body, count, "index stream")
    return indices_from_skips(skips, base, n_reference, "index stream")


def indices_golomb_rans_encode(indices: np.ndarray, base: int) -> tuple[bytes, bytes]:
    return golomb_encode(skips_from_indices(indices, base), static=True)


def indices_golomb_rans_decode(params: Reader, body: Reader, count: int, base: int, n_reference: int) -> np.ndarray:
    skips = golomb_decode(params, body, count, "index stream", static=True)
    return indices_from_skips(skips, base, n_reference, "index stream")


def bitmap_worth_trying(indices: np.ndarray, base: int) -> bool:
    """The automatic choice skips bitmaps sparser than one entry per 64 positions: they never win."""
    return len(indices) > 0 and (int(indices[-1]) - base + 1) <= 64 * len(indices)


def bitmap_encode(indices: np.ndarray, base: int) -> tuple[bytes, bytes] | None:
    """Bitmap of [base, last] as bytes, ANS-coded with their histogram (§5.2); None if too wide."""
    if len(indices) == 0:
        return None
    span = int(indices[-1]) - base + 1
    if span > MAX_BITMAP_SPAN:
        return None
    bitmap = np.zeros((span + 7) // 8, dtype=np.uint8)
    _kernels.bitmap_from_indices(indices, np.uint64(base), bitmap)
    return encode_varint(span), _symbols_encode(bitmap, 256)


def bitmap_decode(params: Reader, body: Reader, count: int, base: int, n_reference: int) -> np.ndarray:
    span = params.varint("bitmap span", maximum=MAX_BITMAP_SPAN)
    if span < count or span > n_reference - base:
        raise PladaFormatError(f"bitmap span {span:,} impossible for {count:,} entries from {base:,} in {n_reference:,}")
    n_bytes = (span + 7) // 8
    bitmap = _symbols_decode(body, 256, n_bytes, "bitmap stream").astype(np.uint8)
    out = np.empty(count, dtype=np.uint64)
    status = _kernels.indices_from_bitmap(bitmap, np.uint64(span), np.uint64(base), out)
    if status < 0:
        raise PladaFormatError("bitmap stream: set bits disagree with the block's entry count")
    return out
