"""Adaptive coders (FORMAT.md §5.2, §5.3, §6.2-§6.4): index methods 2 / 3, label methods 2-4.

All run entirely in the numba kernels of :mod:`pladacodec._kernels`; this module sizes the
buffers, frames the streams and turns kernel status codes into
:class:`~pladacodec.PladaFormatError`.  The models start from fixed tables and adapt with
integer counts, so a section costs little beyond its words and raw bits: index methods add
one varint (the size of their token alphabet), label method 2 one byte (its halving
exponent, which the encoder picks).  A label section's words run to the section's end.
"""

from __future__ import annotations

import functools
import struct

import numpy as np

from . import _kernels
from . import _spec as S
from ._bytes import Reader, encode_varint
from ._coders import indices_from_skips, skips_from_indices, take_words
from .errors import PladaFormatError

__all__ = [
    "indices_context_encode",
    "indices_context_decode",
    "labels_context_encode",
    "labels_context_decode",
    "labels_drift_encode",
    "labels_drift_decode",
    "drift_trials",
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


# --- index methods 2 and 3 (FORMAT.md §5.2, §5.3) -------------------------------------------


def indices_context_encode(indices: np.ndarray, base: int, folders=None) -> bytes:
    """varint(T) varint(n_words) words raw-bits; ``folders``: method 3 (the layout's folder
    changes are the run boundaries)."""
    skips = skips_from_indices(indices, base)
    n = len(skips)
    n_tokens = int(_kernels.gap_tokens_needed(skips))
    words = np.empty(n + 2, dtype=np.uint32)
    raw = np.zeros(n * 5 + 8, dtype=np.uint8)
    sizes = np.zeros(2, dtype=np.int64)
    if _kernels.gaps_encode(skips, n_tokens, words, raw, sizes, *_geo(), _ends(folders, base), base) < 0:
        raise AssertionError("gap token beyond the alphabet the encoder sized")  # pragma: no cover
    n_words, n_bits = int(sizes[0]), int(sizes[1])
    return encode_varint(n_tokens) + encode_varint(n_words) + _words_bytes(words, n_words) + raw[: (n_bits + 7) // 8].tobytes()


def indices_context_decode(section: Reader, count: int, base: int, n_reference: int, folders=None) -> np.ndarray:
    n_tokens = section.varint("token alphabet size", maximum=S.GAP_TOKENS)
    if n_tokens < 1:
        raise PladaFormatError("index stream: token alphabet size must be at least 1")
    words = take_words(section, "index stream")
    raw = np.frombuffer(section.take(section.remaining, "index stream raw bits"), dtype=np.uint8).copy()
    skips = np.empty(count, dtype=np.uint64)
    used = _kernels.gaps_decode(words, raw, n_tokens, skips, *_geo(), _ends(folders, base), base)
    if used < 0:
        raise PladaFormatError("index stream: context-coded stream is inconsistent (wrong count or unused words)")
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
    n_words = _kernels.labels_encode(labels, skips, n_classes, words, _ends(folders, base), base)
    return _words_bytes(words, n_words)


def labels_context_decode(section: Reader, count: int, n_classes: int, indices: np.ndarray, base: int, folders=None) -> np.ndarray:
    words = take_words(section, "label stream", last=True)
    out = np.empty(count, dtype=np.int64)
    if _kernels.labels_decode(words, skips_from_indices(indices, base), n_classes, out, _ends(folders, base), base) < 0:
        raise PladaFormatError("label stream: context-coded stream is inconsistent (wrong count or unused words)")
    return out


# --- label method 2 (FORMAT.md §6.2): order 0 with forgetting ----------------------------------
# The one parameter, h, is the encoder's to choose: it tries each of DRIFT_TRIALS and keeps the
# smallest section (how fast the class mix drifts differs from one selection to the next).

DRIFT_TRIALS = (6, 7, 8, 9, 10, 12, 16)
DRIFT_MAX_REBUILD_COST = 8  # ... skipping those whose tables would be rebuilt at more than 8 symbols per label


def drift_trials(n_classes: int) -> list[int]:
    """The halving exponents the encoder tries for ``n_classes``: a table of A symbols rebuilt every
    2^(h - 5) labels costs A / 2^(h - 5) symbol updates per label, in the encoder and the decoder."""
    alphabet = 256 if n_classes > S.LABEL_SPLIT else n_classes
    shift = S.DRIFT_STEP_SHIFT
    return [h for h in DRIFT_TRIALS if alphabet <= DRIFT_MAX_REBUILD_COST << max(h - shift, 0)] or [DRIFT_TRIALS[-1]]


def labels_drift_encode(labels: np.ndarray, n_classes: int, indices=None, base: int = 0, folders=None) -> bytes:
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    words = np.empty(2 * len(labels) + 2, dtype=np.uint32)
    best_h, best_words = 0, None
    for h in drift_trials(n_classes):
        n_words = _kernels.drift_encode(labels, n_classes, h, words)
        if best_words is None or n_words < len(best_words):
            best_h, best_words = h, words[:n_words].copy()
    return struct.pack(S.DRIFT_PARAMS_FORMAT, best_h) + best_words.astype(_U32, copy=False).tobytes()


def labels_drift_decode(section: Reader, count: int, n_classes: int, indices=None, base: int = 0, folders=None) -> np.ndarray:
    (h,) = section.unpack(S.DRIFT_PARAMS_FORMAT, "label method 2 parameters")
    if not S.DRIFT_MIN_BITS <= h <= S.DRIFT_MAX_BITS:
        raise PladaFormatError(f"label method 2: halving exponent {h} outside [{S.DRIFT_MIN_BITS}, {S.DRIFT_MAX_BITS}]")
    words = take_words(section, "label stream", last=True)
    out = np.empty(count, dtype=np.int64)
    if _kernels.drift_decode(words, n_classes, h, out) < 0:
        raise PladaFormatError("label stream: adaptive stream is inconsistent (wrong count or unused words)")
    return out
