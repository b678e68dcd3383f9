"""Section coders with static tables: index method 1 (Golomb) and label method 1 (i.i.d.)
(FORMAT.md §5.1, §6.1), over the static rANS of §7.1 in :mod:`pladacodec._kernels`.

Every table is derived from integers stored in (or derived bit-exactly from) the section, so
every platform builds the same table and decodes the same bytes.  rANS decodes arbitrary
words without complaint, so integrity comes from our own checks: every stream must be
consumed exactly and end in its initial states, every decoded histogram must match the
stored one, every index must stay in range.
"""

from __future__ import annotations

import functools
import math
import struct

import numpy as np

from . import _kernels
from ._bytes import Reader, encode_varint
from ._spec import (
    GOLOMB_MAX_SYMBOLS,
    GOLOMB_MAX_WIDTH,
    GOLOMB_MIN_WEIGHT,
    GOLOMB_PARAMS_FORMAT,
    GOLOMB_TAIL_CAP,
    GOLOMB_W0,
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
    "indices_golomb_encode",
    "indices_golomb_decode",
    "labels_iid_encode",
    "labels_iid_decode",
    "skips_from_indices",
    "indices_from_skips",
]

_U32 = np.dtype("<u4")


# --- static rANS plumbing (§7.1) -------------------------------------------------------


def _static_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(freq, cum, bits) of §7.1 for positive integer weights."""
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


def _static_encode(symbols: np.ndarray, table: tuple[np.ndarray, np.ndarray, int], last: bool = False) -> bytes:
    """The static rANS stream of ``symbols``: varint(word count) + words, or with ``last`` (the
    stream ends its section) the words alone."""
    freq, cum, bits = table
    words = np.empty(len(symbols) + 4, dtype=np.uint32)
    n_words = _kernels.static_rans_encode(np.ascontiguousarray(symbols, dtype=np.int32), freq, cum, bits, words)
    data = words[:n_words].astype(_U32, copy=False).tobytes()
    return data if last else encode_varint(n_words) + data


def take_words(reader: Reader, what: str, last: bool = False) -> np.ndarray:
    """The words of a stream: varint(count) + words, or with ``last`` every remaining byte,
    which must be a whole number of words."""
    if last:
        if reader.remaining % 4:
            raise PladaFormatError(f"{what}: {reader.remaining:,} bytes are not a whole number of 32-bit words")
        n_words = reader.remaining // 4
    else:
        n_words = reader.varint(f"{what} word count", maximum=reader.remaining // 4)
    return np.frombuffer(reader.take(4 * n_words, f"{what} words"), dtype=_U32).astype(np.uint32)


def _static_decode(reader: Reader, table, count: int, what: str, last: bool = False) -> np.ndarray:
    """Inverse of :func:`_static_encode`: exactly ``count`` symbols, every word used, final states 2^31."""
    freq, cum, bits = table
    words = take_words(reader, what, last)
    out = np.empty(count, dtype=np.int32)
    if _kernels.static_rans_decode(words, freq, cum, bits, out) < 0:
        raise PladaFormatError(f"{what}: invalid rANS stream for {count:,} symbols")
    return out


# --- Golomb: parametric geometric coder for non-negative integers (§5.1) ------


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


def golomb_encode(x: np.ndarray) -> bytes:
    """Code non-negative integers ``x`` (uint64) as §5.1's record: u8 b, u32 a, the quotients'
    static rANS stream, the b-bit remainders, the escaped quotients' varints."""
    x = np.ascontiguousarray(x, dtype=np.uint64)
    if len(x) == 0:
        return struct.pack(GOLOMB_PARAMS_FORMAT, 0, 0) + encode_varint(0)
    mean = float(x.mean())
    b0 = int(math.floor(math.log2(mean / 8.0))) if mean >= 16.0 else 0
    best = None
    for bb in range(max(0, b0 - 2), min(GOLOMB_MAX_WIDTH, b0 + 3) + 1):
        bits, aa = _golomb_cost_bits(x, bb)
        if best is None or bits < best[0]:
            best = (bits, bb, aa)
    _, b, a = best
    escape = len(golomb_weights(a)) - 1
    q = x >> np.uint64(b)
    out = bytearray(struct.pack(GOLOMB_PARAMS_FORMAT, b, a))
    out += _static_encode(np.minimum(q, escape).astype(np.int32), _golomb_static_table(a))
    if b:
        raw = np.zeros((len(x) * b + 7) // 8, dtype=np.uint8)
        _kernels.pack_bits(x & np.uint64((1 << b) - 1), b, raw)
        out += raw.tobytes()
    for value in q[q >= escape]:
        out += encode_varint(int(value) - escape)
    return bytes(out)


def golomb_decode(reader: Reader, count: int, what: str) -> np.ndarray:
    """Inverse of :func:`golomb_encode`; values are bounded by MAX_N_REFERENCE."""
    b, a = reader.unpack(GOLOMB_PARAMS_FORMAT, f"{what} parameters")
    if b > GOLOMB_MAX_WIDTH:
        raise PladaFormatError(f"{what}: remainder width {b} exceeds {GOLOMB_MAX_WIDTH}")
    escape = len(golomb_weights(a)) - 1
    symbols = _static_decode(reader, _golomb_static_table(a), count, what)
    raw = np.frombuffer(reader.take((count * b + 7) // 8, f"{what} remainder bits"), dtype=np.uint8).copy()
    values = np.empty(count, dtype=np.uint64)
    if _kernels.golomb_combine(symbols, raw, b, escape, values):
        q_limit = MAX_N_REFERENCE >> b
        low = np.uint64((1 << b) - 1)
        for position in np.flatnonzero((values >> np.uint64(b)) == np.uint64(escape)):
            q = escape + reader.varint(f"{what} escaped quotient", maximum=q_limit)
            if q > q_limit:
                raise PladaFormatError(f"{what}: quotient exceeds {q_limit:,}")
            values[position] = (np.uint64(q) << np.uint64(b)) | (values[position] & low)
    return values


# --- Histograms (§6.1) -------------------------------------------------------------------------


def histogram_encode(counts: np.ndarray) -> bytes:
    """Code a histogram whose total the decoder knows, sparsely: varint(u = bins in use), then
    Golomb records of the skips between used bins and of (count - 1) for all used bins but the
    last.  About log2 C(C, u) + log2 C(k - 1, u - 1) bits; decoding costs O(u), not O(C)."""
    used = np.flatnonzero(counts)
    out = bytearray(encode_varint(len(used)))
    if len(used):
        out += golomb_encode(np.asarray(np.diff(used, prepend=-1) - 1, dtype=np.uint64))
        out += golomb_encode(np.asarray(counts[used][:-1] - 1, dtype=np.uint64))
    return bytes(out)


def histogram_decode(reader: Reader, n_bins: int, total: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`histogram_encode`: (used bins, their counts), all counts >= 1."""
    n_used = reader.varint(f"{what} bins in use", maximum=min(n_bins, total))
    if n_used == 0:
        if total:
            raise PladaFormatError(f"{what}: no bin in use for a total of {total:,}")
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    skips = golomb_decode(reader, n_used, f"{what} bins")
    if int(skips.max()) >= n_bins:
        raise PladaFormatError(f"{what}: bin beyond {n_bins:,}")
    bins = np.cumsum(skips.astype(np.int64) + 1) - 1
    if int(bins[-1]) >= n_bins:
        raise PladaFormatError(f"{what}: bin {int(bins[-1]):,} beyond {n_bins:,}")
    head = golomb_decode(reader, n_used - 1, f"{what} counts")
    if len(head) and int(head.max()) >= total:
        raise PladaFormatError(f"{what}: a bin count exceeds the total {total:,}")
    counts = np.empty(n_used, dtype=np.int64)
    counts[:-1] = head.astype(np.int64) + 1
    last = total - int(counts[:-1].sum())
    if last < 1:
        raise PladaFormatError(f"{what}: bin counts add up to more than the total {total:,}")
    counts[-1] = last
    return bins, counts


# --- Label method 1: i.i.d. (§6.1) ------------------------------------------------------------


def labels_iid_encode(labels: np.ndarray, n_classes: int, indices=None, base: int = 0, folders=None) -> bytes:
    """The block's label histogram, then (with two or more labels in use) each label's rank among
    the used labels as a static rANS stream that ends the section."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=n_classes).astype(np.int64)
    out = bytearray(histogram_encode(counts))
    used = np.flatnonzero(counts)
    if len(used) > 1:
        rank_of = np.zeros(n_classes, dtype=np.int32)
        rank_of[used] = np.arange(len(used), dtype=np.int32)
        out += _static_encode(rank_of[labels], _static_table(counts[used]), last=True)
    return bytes(out)


def labels_iid_decode(section: Reader, count: int, n_classes: int, indices=None, base: int = 0, folders=None) -> np.ndarray:
    bins, counts = histogram_decode(section, n_classes, count, "label histogram")
    if len(bins) <= 1:
        return np.full(count, bins[0] if len(bins) else 0, dtype=np.int64)
    ranks = _static_decode(section, _static_table(counts), count, "label stream", last=True)
    labels = np.empty(count, dtype=np.int64)
    if _kernels.ranks_to_symbols(ranks, bins, counts, labels) < 0:
        raise PladaFormatError("label stream: decoded labels disagree with the stored histogram")
    return labels


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


def indices_golomb_encode(indices: np.ndarray, base: int, folders=None) -> bytes:
    return golomb_encode(skips_from_indices(indices, base))


def indices_golomb_decode(section: Reader, count: int, base: int, n_reference: int, folders=None) -> np.ndarray:
    return indices_from_skips(golomb_decode(section, count, "index stream"), base, n_reference, "index stream")
