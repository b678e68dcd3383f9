"""Adaptive coders (FORMAT.md §5.3, §5.7, §5.9, §5.10, §6.2, §6.3, §6.5-§6.8): multi-symbol rANS.

All run entirely in the numba kernels of :mod:`pladacodec._kernels`; this
module sizes the buffers, frames the streams and turns kernel status codes
into :class:`~pladacodec.PladaFormatError`.  The models start from fixed tables
and adapt with integer counts, so a section costs little beyond its words and raw
bits: index methods 4 and 6-8 add one varint (the size of their token alphabet),
label method 8 one byte (its halving exponent, which the encoder picks).
"""

from __future__ import annotations

import functools
import struct

import numpy as np

from . import _kernels
from . import _spec as S
from ._bytes import Reader, encode_varint
from ._coders import indices_from_skips, skips_from_indices
from .errors import PladaFormatError

__all__ = [
    "indices_context_encode",
    "indices_context_decode",
    "labels_context_encode",
    "labels_context_decode",
    "indices_context2_encode",
    "indices_context2_decode",
    "labels_context2_encode",
    "labels_context2_decode",
    "indices_context3_encode",
    "indices_context3_decode",
    "labels_context3_encode",
    "labels_context3_decode",
    "labels_context4_encode",
    "labels_context4_decode",
    "labels_forget_encode",
    "labels_forget_decode",
]

_U32 = np.dtype("<u4")


def _frame(words: np.ndarray, n_words: int, raw: np.ndarray, n_bits: int) -> bytes:
    return (
        encode_varint(n_words)
        + words[:n_words].astype(_U32, copy=False).tobytes()
        + raw[: (n_bits + 7) // 8].tobytes()
    )


def _unframe(body: Reader, what: str) -> tuple[np.ndarray, np.ndarray]:
    n_words = body.varint(f"{what} word count", maximum=body.remaining // 4)
    words = np.frombuffer(body.take(4 * n_words, f"{what} words"), dtype=_U32).astype(np.uint32)
    raw = np.frombuffer(body.take(body.remaining, f"{what} raw bits"), dtype=np.uint8).copy()
    return words, raw


def _check_raw(raw: np.ndarray, used_bits: int, what: str) -> None:
    if (used_bits + 7) // 8 != len(raw):
        raise PladaFormatError(f"{what}: {len(raw) * 8 - used_bits:,} unused raw bits")
    if used_bits % 8 and raw[-1] >> (used_bits % 8):
        raise PladaFormatError(f"{what}: non-zero padding bits")


def _gaps_encode(skips: np.ndarray, run) -> bytes:
    """Buffers for a gap kernel; ``run(skips, words, raw, sizes)`` fills them; returns the body."""
    n = len(skips)
    words = np.empty(n + 2, dtype=np.uint32)
    raw = np.zeros(n * 5 + 8, dtype=np.uint8)
    sizes = np.zeros(2, dtype=np.int64)
    run(skips, words, raw, sizes)
    return _frame(words, int(sizes[0]), raw, int(sizes[1]))


def _gaps_decode(body: Reader, count: int, base: int, n_reference: int, run) -> np.ndarray:
    """Unframe, run ``run(words, raw, skips) -> raw bits used or < 0``, check, rebuild the indices."""
    words, raw = _unframe(body, "index stream")
    skips = np.empty(count, dtype=np.uint64)
    used = run(words, raw, skips)
    if used < 0:
        raise PladaFormatError("index stream: context-coded stream is inconsistent (wrong count or unused words)")
    _check_raw(raw, used, "index stream")
    return indices_from_skips(skips, base, n_reference, "index stream")


def _labels_encode(labels: np.ndarray, indices: np.ndarray, base: int, run) -> bytes:
    """``run(labels, skips, words) -> n_words``, framed as varint(n_words) + words."""
    skips = skips_from_indices(indices, base)
    words = np.empty(3 * len(labels) + 2, dtype=np.uint32)
    n_words = run(np.ascontiguousarray(labels, dtype=np.int64), skips, words)
    return encode_varint(n_words) + words[:n_words].astype(_U32, copy=False).tobytes()


def _labels_decode(body: Reader, count: int, indices: np.ndarray, base: int, run) -> np.ndarray:
    """Unframe, run ``run(words, skips, out) -> 0 or < 0``, check."""
    n_words = body.varint("label stream word count", maximum=body.remaining // 4)
    words = np.frombuffer(body.take(4 * n_words, "label stream words"), dtype=_U32).astype(np.uint32)
    out = np.empty(count, dtype=np.int64)
    if run(words, skips_from_indices(indices, base), out) < 0:
        raise PladaFormatError("label stream: context-coded stream is inconsistent (wrong count or unused words)")
    return out


# --- index method 3 (FORMAT.md §5.3), label method 2 (§6.2) -----------------------------------


def indices_context_encode(indices: np.ndarray, base: int) -> tuple[bytes, bytes]:
    return b"", _gaps_encode(skips_from_indices(indices, base), _kernels.ctx_gaps_encode)


def indices_context_decode(params: Reader, body: Reader, count: int, base: int, n_reference: int) -> np.ndarray:
    return _gaps_decode(body, count, base, n_reference, _kernels.ctx_gaps_decode)


def labels_context_encode(labels: np.ndarray, n_classes: int, indices: np.ndarray, base: int) -> tuple[bytes, bytes]:
    return b"", _labels_encode(labels, indices, base, lambda lab, skips, words: _kernels.ctx_labels_encode(lab, skips, n_classes, words))


def labels_context_decode(params: Reader, body: Reader, count: int, n_classes: int, indices: np.ndarray, base: int) -> np.ndarray:
    return _labels_decode(body, count, indices, base, lambda words, skips, out: _kernels.ctx_labels_decode(words, skips, n_classes, out))


# --- second generation: index method 4 (FORMAT.md §5.7), label method 3 (§6.3) ---------------
# With ``folders`` (a :class:`pladacodec.folders.FolderLayout`, which the header names in tag
# 10) the same coders are index method 6 / label method 5 (§5.9, §6.5): the run boundaries
# are the layout's folder changes.

_NO_FOLDERS = np.zeros(0, dtype=np.int64)


@functools.cache
def _geo() -> tuple[np.ndarray, np.ndarray]:
    """The geometric survivals of §5.7, computed on first use and kept for the process."""
    return _kernels.geo_survivals()


def _folder_args(folders, base: int) -> tuple[np.ndarray, int, bool]:
    """(ends, base, folders?) for the kernels: the folder ends from the one holding ``base`` on."""
    if folders is None:
        return _NO_FOLDERS, base, False
    return folders.ends_from(base), base, True


def indices_context2_encode(indices: np.ndarray, base: int, folders=None, gen: int = 0) -> tuple[bytes, bytes]:
    skips = skips_from_indices(indices, base)
    n_tokens = int(_kernels.gap_tokens_needed(skips))
    args = (*_geo(), *_folder_args(folders, base), gen)
    body = _gaps_encode(skips, lambda s, words, raw, sizes: _kernels.ctx2_gaps_encode(s, n_tokens, words, raw, sizes, *args))
    return encode_varint(n_tokens), body


def indices_context2_decode(params: Reader, body: Reader, count: int, base: int, n_reference: int, folders=None, gen: int = 0) -> np.ndarray:
    n_tokens = params.varint("token alphabet size", maximum=_kernels.GAP_TOKENS)
    if n_tokens < 1:
        raise PladaFormatError("index stream: token alphabet size must be at least 1")
    args = (*_geo(), *_folder_args(folders, base), gen)
    return _gaps_decode(body, count, base, n_reference, lambda words, raw, skips: _kernels.ctx2_gaps_decode(words, raw, n_tokens, skips, *args))


def labels_context2_encode(labels: np.ndarray, n_classes: int, indices: np.ndarray, base: int, folders=None, gen: int = 0) -> tuple[bytes, bytes]:
    args = (*_folder_args(folders, base), gen)
    return b"", _labels_encode(labels, indices, base, lambda lab, skips, words: _kernels.ctx2_labels_encode(lab, skips, n_classes, words, *args))


def labels_context2_decode(params: Reader, body: Reader, count: int, n_classes: int, indices: np.ndarray, base: int, folders=None, gen: int = 0) -> np.ndarray:
    args = (*_folder_args(folders, base), gen)
    return _labels_decode(body, count, indices, base, lambda words, skips, out: _kernels.ctx2_labels_decode(words, skips, n_classes, out, *args))


# --- index method 7 (FORMAT.md §5.10), and 8 with ``folders``: method 4's kernel, gen 1 -------


def indices_context3_encode(indices: np.ndarray, base: int, folders=None) -> tuple[bytes, bytes]:
    return indices_context2_encode(indices, base, folders, gen=1)


def indices_context3_decode(params: Reader, body: Reader, count: int, base: int, n_reference: int, folders=None) -> np.ndarray:
    return indices_context2_decode(params, body, count, base, n_reference, folders, gen=1)


# --- label method 6 (FORMAT.md §6.6), and 7 with ``folders``: method 3's kernel, gen 1 ------


def labels_context3_encode(labels: np.ndarray, n_classes: int, indices: np.ndarray, base: int, folders=None) -> tuple[bytes, bytes]:
    return labels_context2_encode(labels, n_classes, indices, base, folders, gen=1)


def labels_context3_decode(params: Reader, body: Reader, count: int, n_classes: int, indices: np.ndarray, base: int, folders=None) -> np.ndarray:
    return labels_context2_decode(params, body, count, n_classes, indices, base, folders, gen=1)


# --- label method 9 (FORMAT.md §6.8): method 3's kernel, gen 2 ---------------------------------
# (With a folder layout the new state adds nothing measurable: +0.004 % over method 7 on the
# bench's 18 structured rows, so there is no folder variant.)


def labels_context4_encode(labels: np.ndarray, n_classes: int, indices: np.ndarray, base: int) -> tuple[bytes, bytes]:
    return labels_context2_encode(labels, n_classes, indices, base, gen=2)


def labels_context4_decode(params: Reader, body: Reader, count: int, n_classes: int, indices: np.ndarray, base: int) -> np.ndarray:
    return labels_context2_decode(params, body, count, n_classes, indices, base, gen=2)


# --- label method 8 (FORMAT.md §6.7): order 0 with forgetting ----------------------------------
# The one parameter, h, is the encoder's to choose: it tries each of FORGET_TRIALS and keeps the
# smallest body (how fast the class mix drifts differs from one selection to the next).

FORGET_TRIALS = (6, 7, 8, 9, 10, 12, 16)
FORGET_MAX_REBUILD_COST = 8  # ... skipping those whose tables would be rebuilt at more than 8 symbols per label


def forget_trials(n_classes: int) -> list[int]:
    """The halving exponents the encoder tries for ``n_classes``: a table of A symbols rebuilt every
    2^(h - 5) labels costs A / 2^(h - 5) symbol updates per label, in the encoder and the decoder."""
    alphabet = 256 if n_classes > 256 else n_classes
    return [h for h in FORGET_TRIALS if alphabet <= FORGET_MAX_REBUILD_COST << max(h - 5, 0)] or [FORGET_TRIALS[-1]]


def labels_forget_encode(labels: np.ndarray, n_classes: int, indices: np.ndarray, base: int) -> tuple[bytes, bytes]:
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    words = np.empty(2 * len(labels) + 2, dtype=np.uint32)
    best_h, best_words = 0, None
    for h in forget_trials(n_classes):
        n_words = _kernels.forget_labels_encode(labels, n_classes, h, words)
        if best_words is None or n_words < len(best_words):
            best_h, best_words = h, words[:n_words].copy()
    return struct.pack(S.FORGET_PARAMS_FORMAT, best_h), encode_varint(len(best_words)) + best_words.astype(_U32, copy=False).tobytes()


def labels_forget_decode(params: Reader, body: Reader, count: int, n_classes: int, indices: np.ndarray, base: int) -> np.ndarray:
    (h,) = params.unpack(S.FORGET_PARAMS_FORMAT, "label method 8 parameters")
    if not S.FORGET_MIN_BITS <= h <= S.FORGET_MAX_BITS:
        raise PladaFormatError(f"label method 8: halving exponent {h} outside [{S.FORGET_MIN_BITS}, {S.FORGET_MAX_BITS}]")
    return _labels_decode(body, count, indices, base, lambda words, skips, out: _kernels.forget_labels_decode(words, n_classes, h, out))
