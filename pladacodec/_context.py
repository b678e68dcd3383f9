"""Adaptive coders (FORMAT.md §5.2, §5.3, §6.2-§6.5): index methods 2 / 3, label methods 2-5.

All run entirely in the numba kernels of :mod:`pladacodec._kernels`; this module sizes the
buffers, frames the streams and turns kernel status codes into
:class:`~pladacodec.PladaFormatError`.  The models start from fixed tables and adapt with
integer counts, so a section costs little beyond its words and raw bits: index methods add
two varints (the size of their token alphabet, the word count), label methods 2 and 5 one byte (their
halving exponents, which the encoder picks).  A label section's words run to the section's end.
"""

from __future__ import annotations

import functools
import struct

import numpy as np

from . import _kernels
from . import _spec as S
from ._bytes import Reader, encode_varint
from ._coders import indices_from_skips, skips_from_indices, take_words
from .errors import PladaEncodeError, PladaFormatError

__all__ = [
    "indices_context_encode",
    "indices_context_decode",
    "labels_context_encode",
    "labels_context_decode",
    "labels_drift_encode",
    "labels_drift_decode",
    "drift_trials",
    "labels_mix_encode",
    "labels_mix_decode",
    "mix_trials",
]

_U32 = np.dtype("<u4")
_NO_FOLDERS = np.zeros(0, dtype=np.int64)


@functools.cache
def _geo() -> tuple[np.ndarray, np.ndarray]:
    """The geometric survivals of §5.2, computed on first use and kept for the process."""
    return _kernels.geo_survivals()


def _ends(folders, base: int) -> np.ndarray:
    """The kernels' folder argument: the ends of the folders from the one holding ``base`` on,
    or an empty array (no layout: run boundaries are jumps)."""
    return _NO_FOLDERS if folders is None else folders.ends_from(base)


def _words_bytes(words: np.ndarray, n_words: int) -> bytes:
    return words[:n_words].astype(_U32, copy=False).tobytes()


_NO_SYMBOLS = np.zeros(0, dtype=np.int32)


def _encoded(run, capacity: int, n_sizes: int, words: np.ndarray) -> tuple[int, np.ndarray]:
    """Run a model kernel forward as an encoder, recording each symbol's (start, freq), then code
    them in reverse: (word count, the model's sizes).  ``run(starts, freqs, sizes) -> ok``."""
    starts = np.empty(capacity, dtype=np.int32)
    freqs = np.empty(capacity, dtype=np.int32)
    sizes = np.zeros(n_sizes, dtype=np.int64)
    if not run(starts, freqs, sizes):
        raise AssertionError("the encoder's model refused its own input")  # pragma: no cover
    return int(_kernels.rans_flush(starts, freqs, int(sizes[0]), words)), sizes


def _decoded(run, n_sizes: int) -> np.ndarray | None:
    """Run a model kernel as a decoder; its sizes, or None on a bad stream."""
    sizes = np.zeros(n_sizes, dtype=np.int64)
    return sizes if run(_NO_SYMBOLS, _NO_SYMBOLS, sizes) else None


# --- index methods 2 and 3 (FORMAT.md §5.2, §5.3) -------------------------------------------


def indices_context_encode(indices: np.ndarray, base: int, folders=None) -> bytes:
    """varint(T) varint(n_words) words raw-bits; ``folders``: method 3 (the layout's folder
    changes are the run boundaries)."""
    skips = skips_from_indices(indices, base)
    n = len(skips)
    n_tokens = int(_kernels.gap_tokens_needed(skips))
    words = np.empty(n + 2, dtype=np.uint32)
    raw = np.zeros(n * 5 + 8, dtype=np.uint8)
    args = (*_geo(), _ends(folders, base), base)
    n_words, sizes = _encoded(
        lambda st, fr, sz: _kernels.gaps_code(skips, n_tokens, False, words, raw, st, fr, sz, *args), n, 2, words
    )
    n_bits = int(sizes[1])
    return encode_varint(n_tokens) + encode_varint(n_words) + _words_bytes(words, n_words) + raw[: (n_bits + 7) // 8].tobytes()


def indices_context_decode(section: Reader, count: int, base: int, n_reference: int, folders=None) -> np.ndarray:
    n_tokens = section.varint("token alphabet size", maximum=S.GAP_TOKENS)
    if n_tokens < 1:
        raise PladaFormatError("index stream: token alphabet size must be at least 1")
    words = take_words(section, "index stream")
    raw = np.frombuffer(section.take(section.remaining, "index stream raw bits"), dtype=np.uint8).copy()
    skips = np.empty(count, dtype=np.uint64)
    args = (*_geo(), _ends(folders, base), base)
    sizes = _decoded(lambda st, fr, sz: _kernels.gaps_code(skips, n_tokens, True, words, raw, st, fr, sz, *args), 2)
    if sizes is None:
        raise PladaFormatError("index stream: context-coded stream is inconsistent (wrong count or unused words)")
    used = int(sizes[1])
    if (used + 7) // 8 != len(raw):
        raise PladaFormatError(f"index stream: {len(raw) * 8 - used:,} unused raw bits")
    if used % 8 and raw[-1] >> (used % 8):
        raise PladaFormatError("index stream: non-zero padding bits")
    return indices_from_skips(skips, base, n_reference, "index stream")


# --- label methods 3 and 4 (FORMAT.md §6.3, §6.4) -------------------------------------------


def labels_context_encode(labels: np.ndarray, n_classes: int, indices: np.ndarray, base: int, folders=None) -> bytes:
    skips = skips_from_indices(indices, base)
    words = np.empty(3 * len(labels) + 2, dtype=np.uint32)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    ends = _ends(folders, base)
    n_words, _ = _encoded(
        lambda st, fr, sz: _kernels.labels_code(labels, skips, n_classes, False, words, st, fr, sz, ends, base),
        3 * len(labels), 1, words,
    )
    return _words_bytes(words, n_words)


def labels_context_decode(section: Reader, count: int, n_classes: int, indices: np.ndarray, base: int, folders=None) -> np.ndarray:
    words = take_words(section, "label stream", last=True)
    out = np.empty(count, dtype=np.int64)
    skips, ends = skips_from_indices(indices, base), _ends(folders, base)
    if _decoded(lambda st, fr, sz: _kernels.labels_code(out, skips, n_classes, True, words, st, fr, sz, ends, base), 1) is None:
        raise PladaFormatError("label stream: context-coded stream is inconsistent (wrong count or unused words)")
    return out


# --- label method 2 (FORMAT.md §6.2): order 0 with forgetting ----------------------------------
# The one parameter, h, is the encoder's to choose: it tries each of DRIFT_TRIALS and keeps the
# smallest section (how fast the class mix drifts differs from one selection to the next).

DRIFT_TRIALS = (4, 5, 6, 7, 8, 9, 10, 12, 16)
DRIFT_MAX_REBUILD_COST = 8  # ... skipping those whose tables would be rebuilt at more than 8 symbols per label
DRIFT_SMALL_BLOCK = 4096  # ... or 32 in a block of at most this many labels (at most 131,072 updates in all)


def drift_trials(n_classes: int, n_labels: int = DRIFT_SMALL_BLOCK + 1) -> list[int]:
    """The halving exponents the encoder tries for ``n_classes``: a table of A symbols rebuilt every
    2^(h - 5) labels costs A / 2^(h - 5) symbol updates per label, in the encoder and the decoder;
    small blocks (a few hundred labels: the ones that gain from forgetting fast) may spend more."""
    alphabet = 256 if n_classes > S.LABEL_SPLIT else n_classes
    shift = S.DRIFT_STEP_SHIFT
    budget = DRIFT_MAX_REBUILD_COST * (4 if n_labels <= DRIFT_SMALL_BLOCK else 1)
    return [h for h in DRIFT_TRIALS if alphabet <= budget << max(h - shift, 0)] or [DRIFT_TRIALS[-1]]


def labels_drift_encode(labels: np.ndarray, n_classes: int, indices=None, base: int = 0, folders=None) -> bytes:
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    words = np.empty(2 * len(labels) + 2, dtype=np.uint32)
    best_h, best_words = 0, None
    for h in drift_trials(n_classes, len(labels)):
        n_words, _ = _encoded(
            lambda st, fr, sz: _kernels.drift_code(labels, n_classes, h, False, words, st, fr, sz), 2 * len(labels), 1, words
        )
        if best_words is None or n_words < len(best_words):
            best_h, best_words = h, words[:n_words].copy()
    return struct.pack(S.DRIFT_PARAMS_FORMAT, best_h) + best_words.astype(_U32, copy=False).tobytes()


def labels_drift_decode(section: Reader, count: int, n_classes: int, indices=None, base: int = 0, folders=None) -> np.ndarray:
    (h,) = section.unpack(S.DRIFT_PARAMS_FORMAT, "label method 2 parameters")
    if not S.DRIFT_MIN_BITS <= h <= S.DRIFT_MAX_BITS:
        raise PladaFormatError(f"label method 2: halving exponent {h} outside [{S.DRIFT_MIN_BITS}, {S.DRIFT_MAX_BITS}]")
    words = take_words(section, "label stream", last=True)
    out = np.empty(count, dtype=np.int64)
    if _decoded(lambda st, fr, sz: _kernels.drift_code(out, n_classes, h, True, words, st, fr, sz), 1) is None:
        raise PladaFormatError("label stream: adaptive stream is inconsistent (wrong count or unused words)")
    return out


# --- label method 5 (FORMAT.md §6.5): order 0 and order 1, mixed -----------------------------
# The encoder picks the two halving exponents: a coarse grid, then the neighbours of the best
# point (how fast the class mix and the label-to-label statistics drift differs from one
# selection to the next; on the 47 real selections the best h0 ranged over 4-12, h1 over 4-10).

MIX_COARSE = (5, 7, 9, 11)
MIX_NEIGHBOURS = tuple((d0, d1) for d0 in (-1, 0, 1) for d1 in (-1, 0, 1))
MIX_SEARCH_LABELS = 1 << 16  # a larger block picks (h0, h1) on its first 65,536 labels, then codes them all once


def mix_trials(n_labels: int) -> tuple[tuple[int, int], ...]:
    """The coarse grid of (h0, h1) the encoder tries first (the same for any block size)."""
    return tuple((h0, h1) for h0 in MIX_COARSE for h1 in MIX_COARSE)


def _mix_words(labels: np.ndarray, n_classes: int, h0: int, h1: int) -> np.ndarray:
    words = np.empty(len(labels) + 2, dtype=np.uint32)
    n_words, _ = _encoded(
        lambda st, fr, sz: _kernels.mix_code(labels, n_classes, h0, h1, False, words, st, fr, sz), len(labels), 1, words
    )
    return words[:n_words]


def labels_mix_encode(labels: np.ndarray, n_classes: int, indices=None, base: int = 0, folders=None) -> bytes:
    """u8 (h0 - 4) << 4 | (h1 - 4), then the words: the grid of mix_trials, then the best
    point's neighbours, each coded in full (on a large block: on its first labels only)."""
    if n_classes > S.MIX_MAX_CLASSES:
        raise PladaEncodeError(f"label method 5 serves at most {S.MIX_MAX_CLASSES} classes, not {n_classes:,}")
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    sample = labels[:MIX_SEARCH_LABELS]
    tried: dict[tuple[int, int], np.ndarray] = {}

    def best_of(points) -> tuple[int, int]:
        for h0, h1 in points:
            if (h0, h1) not in tried and S.MIX_MIN_BITS <= min(h0, h1) and max(h0, h1) <= S.MIX_MAX_BITS:
                tried[h0, h1] = _mix_words(sample, n_classes, h0, h1)
        return min(tried, key=lambda hh: (len(tried[hh]), hh))

    h0, h1 = best_of(mix_trials(len(labels)))
    best = best_of([(h0 + d0, h1 + d1) for d0, d1 in MIX_NEIGHBOURS])
    words = tried[best] if len(sample) == len(labels) else _mix_words(labels, n_classes, *best)
    params = (best[0] - S.MIX_MIN_BITS) << 4 | (best[1] - S.MIX_MIN_BITS)
    return struct.pack(S.MIX_PARAMS_FORMAT, params) + words.astype(_U32, copy=False).tobytes()


def labels_mix_decode(section: Reader, count: int, n_classes: int, indices=None, base: int = 0, folders=None) -> np.ndarray:
    if n_classes > S.MIX_MAX_CLASSES:
        raise PladaFormatError(f"label method 5 serves at most {S.MIX_MAX_CLASSES} classes, the file has {n_classes:,}")
    (params,) = section.unpack(S.MIX_PARAMS_FORMAT, "label method 5 parameters")
    h0, h1 = (params >> 4) + S.MIX_MIN_BITS, (params & 15) + S.MIX_MIN_BITS
    if max(h0, h1) > S.MIX_MAX_BITS:
        raise PladaFormatError(f"label method 5: halving exponents {h0}, {h1}: the largest allowed is {S.MIX_MAX_BITS}")
    words = take_words(section, "label stream", last=True)
    out = np.empty(count, dtype=np.int64)
    if _decoded(lambda st, fr, sz: _kernels.mix_code(out, n_classes, h0, h1, True, words, st, fr, sz), 1) is None:
        raise PladaFormatError("label stream: mixed stream is inconsistent (wrong count or unused words)")
    return out
