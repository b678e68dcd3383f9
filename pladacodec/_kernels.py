"""Numba kernels: the only module of pladacodec that imports numba.

Kernels are private and see only contiguous 1-D arrays of fixed dtypes; the
Python wrappers in :mod:`pladacodec._coders` validate dtype, range and
contiguity before calling in (numba does not bounds-check).  Every kernel has
an explicit signature, so a wrong dtype fails loudly instead of compiling a
new specialisation, and ``cache=True`` so the compile cost is paid once per
machine.

A kernel never raises: it returns a status code (0 = success, negative =
the input was inconsistent) that the wrapper turns into a ``PladaError``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ._spec import STATIC_TWO_STATES_MIN

__all__ = [
    "bitmap_from_indices",
    "indices_from_bitmap",
    "pack_bits",
    "golomb_combine",
    "indices_from_gaps",
    "gaps_from_indices",
]

_JIT_OPTIONS = dict(nogil=True, cache=True)


def _jit(signature):
    """The one place that decides how kernels are compiled."""
    return nb.njit(signature, **_JIT_OPTIONS)


# --- bitmaps ---------------------------------------------------------------


@_jit(nb.void(nb.uint64[::1], nb.uint64, nb.uint8[::1]))
def bitmap_from_indices(indices, base, out):
    """Set bit (index - base) of ``out`` (LSB-first within a byte) for every index.

    ``out`` must be zeroed and long enough; indices sorted, >= base.
    """
    for i in range(indices.shape[0]):
        pos = indices[i] - base
        out[pos >> 3] |= np.uint8(1 << (pos & 7))


@_jit(nb.int64(nb.uint8[::1], nb.uint64, nb.uint64, nb.uint64[::1]))
def indices_from_bitmap(bitmap, span, base, out):
    """Write base + position of every set bit below ``span`` into ``out``.

    Returns the number of set bits found, or -1 if it differs from
    ``len(out)`` (the bitmap disagrees with the declared count), or -2 if a
    bit at or beyond ``span`` is set.
    """
    n = out.shape[0]
    count = 0
    nbytes = bitmap.shape[0]
    for byte_index in range(nbytes):
        byte = np.int64(bitmap[byte_index])
        while byte != 0:
            low = byte & (-byte)
            bit = 0
            while (low >> bit) != 1:
                bit += 1
            pos = np.uint64(byte_index * 8 + bit)
            if pos >= span:
                return -2
            if count >= n:
                return -1
            out[count] = base + pos
            count += 1
            byte ^= low
    if count != n:
        return -1
    return count


# --- fixed-width bit packing ------------------------------------------------


@_jit(nb.void(nb.uint64[::1], nb.int64, nb.uint8[::1]))
def pack_bits(values, width, out):
    """Pack the low ``width`` bits of each value, LSB-first, into ``out``.

    ``out`` must be zeroed and hold ceil(len(values) * width / 8) bytes;
    width <= 56 so that one value spans at most 8 bytes.
    """
    bitpos = 0
    for i in range(values.shape[0]):
        v = values[i]
        remaining = width
        while remaining > 0:
            byte_index = bitpos >> 3
            offset = bitpos & 7
            take = min(8 - offset, remaining)
            chunk = np.uint8((v & np.uint64((1 << take) - 1)) << np.uint64(offset))
            out[byte_index] |= chunk
            v >>= np.uint64(take)
            remaining -= take
            bitpos += take


# --- gaps -------------------------------------------------------------------


@_jit(nb.void(nb.uint64[::1], nb.uint64, nb.uint64[::1]))
def gaps_from_indices(indices, base, out):
    """out[i] = indices[i] - previous - 1 with previous = base - 1 initially (so out >= 0)."""
    prev = base
    for i in range(indices.shape[0]):
        out[i] = indices[i] - prev
        prev = indices[i] + np.uint64(1)


@_jit(nb.int64(nb.uint64[::1], nb.uint64, nb.uint64, nb.uint64[::1]))
def indices_from_gaps(gaps, base, limit, out):
    """Inverse of :func:`gaps_from_indices`, checking every index stays below ``limit``.

    Returns 0, or -(i + 1) for the first entry i that would reach ``limit``
    (no arithmetic can overflow: each step is compared before it is added).
    """
    nxt = base
    for i in range(gaps.shape[0]):
        g = gaps[i]
        if nxt >= limit or g >= limit - nxt:
            return -(i + 1)
        idx = nxt + g
        out[i] = idx
        nxt = idx + np.uint64(1)
    return 0


# --- adaptive multi-symbol rANS (FORMAT.md §5.3, §6.2) ------------------------------------
#
# State x in [RANS_L, 2**63), 32-bit words, probability scale 2**RANS_BITS.
# A model is a set of adaptive frequency tables, one per context, rebuilt from
# integer counts on a fixed schedule (on first use, then after 1, 2, 4, ... 1024
# symbols, then every 1024), so encoder and decoder hold bit-identical tables on
# every platform.  A child context may lean on a parent table: at each rebuild the
# parent's frequencies count as PRIOR_STRENGTH observations, so young contexts
# start from what their coarser context has learnt instead of a flat table.
#
# Speed note: the per-symbol steps are written out inside each kernel's loop
# (``# step:`` comments), not called, because passing the model arrays to a
# function costs numba reference-count traffic worth ~10x the step itself.  Even
# ``inline="always"`` helpers for the label window / candidate updates made label
# decoding 25-45 % slower (measured), so the two label generations repeat those steps;
# table construction (_model_new, _rebuild, _rans_flush) and the raw-bit area are shared.

RANS_BITS = 12
RANS_M = 1 << RANS_BITS
RANS_MASK = np.uint64(RANS_M - 1)
RANS_L = np.uint64(1) << np.uint64(31)
RANS_X_MAX_UNIT = (RANS_L >> np.uint64(RANS_BITS)) << np.uint64(32)
OBSERVATION_WEIGHT = 8  # one observation, against the +1 (flat) or the parent's share
PRIOR_STRENGTH = 64  # the parent table is worth this many observations
REBUILD_STEP = 1024
HALVE_AT = 1 << 16
LUT_MIN_SEEN = 256  # young contexts decode by binary search; the slot->symbol table pays off later
LUT_SIZE = 1 << 12  # slot -> symbol entries per context of a 2^12 table (index method 3, label method 2: one per slot)
LUT_READY = 2 * LUT_MIN_SEEN  # nxt >= this <=> the last rebuild filled the table


@nb.njit(cache=True, nogil=True)
def _model_new(n_ctx, n_sym, first, with_lut, lut_size=LUT_SIZE):
    """Adaptive tables for n_ctx contexts over n_sym symbols; a context is first built when its
    ``seen`` reaches ``first`` (0: on first use).  Without ``with_lut`` (the model never asks
    _rebuild for slot tables) the slot table is a placeholder: a small block then does not pay
    for allocating a table per context it will not use.  ``lut_size`` (a power of two) sets the
    slot table's resolution: _rebuild fills bucket ``j`` with the symbol holding slot
    ``j * M / lut_size``."""
    counts = np.zeros((n_ctx, n_sym), dtype=np.int32)
    seen = np.zeros(n_ctx, dtype=np.int64)
    nxt = np.full(n_ctx, first, dtype=np.int64)
    # Tables of a context are written in full by its first rebuild before anything reads
    # them (the slot table only once nxt >= LUT_READY), so they need no zeroing: that keeps
    # the fixed cost of small blocks low.
    freq = np.empty((n_ctx, n_sym), dtype=np.int32)
    cum = np.empty((n_ctx, n_sym + 1), dtype=np.int32)  # cum[c, n_sym] = M after a rebuild
    lut = np.empty((n_ctx if with_lut else 1, lut_size), dtype=np.uint8)  # every alphabet has <= 256 symbols
    return counts, seen, nxt, freq, cum, lut


@nb.njit(cache=True, nogil=True)
def _rebuild(counts, seen, nxt, freq, cum, lut, c, pfreq, pc, with_lut, n_sym, bits, strength,
             halve_at=HALVE_AT, step=REBUILD_STEP):
    """Quantise context c's counts over its first n_sym symbols (plus the prior table pfreq[pc],
    worth ``strength`` observations, if pc >= 0) to a table summing to M = 2^bits (§5.6).
    Without a prior (pc < 0), ``strength`` is the weight of one observation against the +1 every
    symbol gets: OBSERVATION_WEIGHT, except label method 6 / 7's literal tables (§6.6).
    The counts halve first when they sum to ``halve_at``; the next rebuild point doubles up to
    ``step``, then grows by ``step`` (§5.6: 2^16 and 1,024; label method 8: 2^h and 2^(h - 5)).

    With ``with_lut``, once the context has seen LUT_MIN_SEEN symbols, ``lut[c, j]`` becomes
    the symbol holding slot ``j << (bits - log2 lut.shape[1])`` (every slot when the two agree).
    """
    m = np.int64(1) << bits
    total = np.int64(0)
    for s in range(n_sym):
        total += np.int64(counts[c, s])
    if total >= halve_at:
        total = 0
        for s in range(n_sym):
            counts[c, s] = (counts[c, s] + 1) >> 1
            total += counts[c, s]
    spread = m - n_sym
    if pc >= 0:
        # weight_s = OBS * M * count_s + OBS * strength * prior_s  (the prior sums to about M)
        denom = OBSERVATION_WEIGHT * m * (total + strength)
    else:
        # weight_s = strength * count_s + 1
        denom = strength * total + n_sym
    used = 0
    best = 0
    for s in range(n_sym):
        if pc >= 0:
            w = OBSERVATION_WEIGHT * m * np.int64(counts[c, s]) + OBSERVATION_WEIGHT * strength * np.int64(pfreq[pc, s])
        else:
            w = strength * np.int64(counts[c, s]) + 1
        f = 1 + (w * spread) // denom
        freq[c, s] = f
        used += f
        if f > freq[c, best]:
            best = s
    freq[c, best] += m - used
    start = 0
    for s in range(n_sym):
        cum[c, s] = start
        start += freq[c, s]
    cum[c, n_sym] = m
    if with_lut and seen[c] >= LUT_MIN_SEEN:
        shift = bits - (_bitlen(lut.shape[1]) - 1)
        bucket = (1 << shift) - 1
        for s in range(n_sym):
            for j in range((cum[c, s] + bucket) >> shift, (cum[c, s + 1] + bucket) >> shift):
                lut[c, j] = np.uint8(s)
    seen_c = seen[c]
    if seen_c == 0:
        nxt[c] = 1
    else:
        nxt[c] = seen_c * 2 if seen_c < step else seen_c + step


@nb.njit(cache=True, nogil=True, inline="always")
def _rans_put(x, f, start, bits, words, count):
    """rANS-encode one symbol (frequency f, cumulative start, over 2^bits) into state x, first
    emitting the low word when x would overflow; returns (state, word count)."""
    f = np.uint64(f)
    if x >= ((RANS_L >> np.uint64(bits)) << np.uint64(32)) * f:
        words[count] = np.uint32(x & np.uint64(0xFFFFFFFF))
        count += 1
        x >>= np.uint64(32)
    return ((x // f) << np.uint64(bits)) + (x % f) + np.uint64(start), count


@nb.njit(cache=True, nogil=True, inline="always")
def _put_state(x, words, count):
    """Flush a final state as two words (low, then high: high first once reversed)."""
    words[count] = np.uint32(x & np.uint64(0xFFFFFFFF))
    words[count + 1] = np.uint32(x >> np.uint64(32))
    return count + 2


@nb.njit(cache=True, nogil=True, inline="always")
def _reverse(words, count):
    """Words were emitted last-symbol first; the decoder reads them in the opposite order."""
    for i in range(count // 2):
        tmp = words[i]
        words[i] = words[count - 1 - i]
        words[count - 1 - i] = tmp


# The same, inlined where a table is tiny and rebuilt often (label method 3's rank contexts:
# 4 symbols, a few hundred rebuilds in a small block), so the call's fixed cost (about twice
# the rebuild's own work there) disappears.  Inlined only there: every inlined site adds
# compile time.
_rebuild_inline = _rebuild if nb.config.DISABLE_JIT else nb.njit(cache=True, nogil=True, inline="always")(_rebuild.py_func)


@nb.njit(cache=True, nogil=True, inline="always")
def _symbol_log(capacity, n_sizes):
    """An encoder's record of the symbols its model codes, for _rans_flush to encode in reverse:
    (starts, freqs) with room for ``capacity`` symbols, and the run's ``n_sizes`` output counts."""
    return np.empty(capacity, dtype=np.int32), np.empty(capacity, dtype=np.int32), np.zeros(n_sizes, dtype=np.int64)


@nb.njit(cache=True, nogil=True)
def _rans_flush(starts, freqs, n, words, bits):
    """Encode recorded symbols (probabilities over 2^bits) in reverse; returns the word count,
    words in decoding order."""
    x = RANS_L
    count = 0
    for i in range(n - 1, -1, -1):
        x, count = _rans_put(x, freqs[i], starts[i], bits, words, count)
    count = _put_state(x, words, count)
    _reverse(words, count)
    return count


@nb.njit(cache=True, nogil=True, inline="always")
def _cumulate(freq, cum, n):
    """cum[s] = freq[0] + ... + freq[s - 1] for s <= n (cum[n] = the table's total)."""
    start = 0
    for s in range(n):
        cum[s] = start
        start += freq[s]
    cum[n] = start


@nb.njit(cache=True, nogil=True, inline="always")
def _raw_take(raw, bitpos, width):
    """The ``width`` bits at ``bitpos`` of the raw-bit area (LSB-first); returns (value, new bitpos)."""
    value = np.uint64(0)
    got = 0
    while got < width:
        offset = bitpos & 7
        take = min(8 - offset, width - got)
        chunk = (np.uint64(raw[bitpos >> 3]) >> np.uint64(offset)) & np.uint64((1 << take) - 1)
        value |= chunk << np.uint64(got)
        got += take
        bitpos += take
    return value, bitpos


@nb.njit(cache=True, nogil=True, inline="always")
def _raw_put(raw, bitpos, value, width):
    """Append the low ``width`` bits of ``value`` at ``bitpos`` (``raw`` zeroed); returns the new bitpos."""
    while width > 0:
        offset = bitpos & 7
        take = min(8 - offset, width)
        raw[bitpos >> 3] |= np.uint8((value & np.uint64((1 << take) - 1)) << np.uint64(offset))
        value >>= np.uint64(take)
        width -= take
        bitpos += take
    return bitpos


if nb.config.DISABLE_JIT:

    def _bitlen(v):
        """Number of significant bits of a uint64 (0 for 0)."""
        return int(v).bit_length()

else:
    from numba.cpython.unsafe.numbers import leading_zeros as _leading_zeros

    @nb.njit(cache=True, nogil=True, inline="always")
    def _bitlen(v):
        """Number of significant bits of a uint64 (0 for 0): one count-leading-zeros instruction."""
        return 64 - np.int64(_leading_zeros(np.uint64(v)))


# --- gaps (FORMAT.md §5.3) ------------------------------------------------------------------
# A skip v (positions passed over before the entry) becomes a token: v itself below
# GAP_EXACT, else its octave e = bitlen(v) - 1 and the GAP_SUB bits below the top bit,
# with the e - GAP_SUB bits under those sent raw.  The token is coded in the context of
# the local density (half-octaves of the sum of the last GAP_WINDOW skips) and the
# previous token's magnitude, with the density-only table as the prior.

GAP_EXACT = 8
GAP_SUB = 2
GAP_MAX_EXP = 40
GAP_TOKENS = GAP_EXACT + (GAP_MAX_EXP - 2) * (1 << GAP_SUB)
GAP_WINDOW = 16
GAP_LEVELS = 40
GAP_MAG1_LEVELS = 8
GAP_CONTEXTS = GAP_LEVELS * GAP_MAG1_LEVELS


@nb.njit(cache=True, nogil=True, inline="always")
def _gap_mag(tok):
    if tok < GAP_EXACT:
        return tok
    return GAP_EXACT + (tok - GAP_EXACT) // (1 << GAP_SUB)


@nb.njit(cache=True, nogil=True, inline="always")
def _gap_level(window_sum):
    s = window_sum + np.uint64(1)
    b = _bitlen(s)
    level = 2 * b
    if b >= 2:
        level += np.int64((s >> np.uint64(b - 2)) & np.uint64(1))
    if level >= GAP_LEVELS:
        level = GAP_LEVELS - 1
    return level


@nb.njit(cache=True, nogil=True)
def _gaps_run(skips, decoding, words, raw, starts, freqs, sizes):
    """The gap model, shared by encoder and decoder.

    sizes <- [symbols recorded (encoding) or words used (decoding), raw bits used].
    Returns False on a stream that is inconsistent in any way.
    """
    n = skips.shape[0]
    counts, seen, nxt, freq, cum, lut = _model_new(GAP_CONTEXTS, GAP_TOKENS, 0, True)
    p_counts, p_seen, p_nxt, p_freq, p_cum, p_lut = _model_new(GAP_LEVELS, GAP_TOKENS, 0, True)
    g_counts, g_seen, g_nxt, g_freq, g_cum, g_lut = _model_new(1, GAP_TOKENS, 0, True)
    ring = np.zeros(GAP_WINDOW, dtype=np.uint64)
    window_sum = np.uint64(0)
    mag1 = 0
    bitpos = 0
    raw_bits = raw.shape[0] * 8
    n_words = words.shape[0]
    x = RANS_L
    pos = 0
    m = 0
    if decoding:
        if n_words < 2:
            return False
        x = (np.uint64(words[0]) << np.uint64(32)) | np.uint64(words[1])
        pos = 2
        if x < RANS_L or x >= (np.uint64(1) << np.uint64(63)):
            return False
    for i in range(n):
        level = _gap_level(window_sum)
        c = level * GAP_MAG1_LEVELS + (mag1 if mag1 < GAP_MAG1_LEVELS else GAP_MAG1_LEVELS - 1)
        tok = 0
        nraw = 0
        v = np.uint64(0)
        if not decoding:
            v = skips[i]
            if v < np.uint64(GAP_EXACT):
                tok = np.int64(v)
            else:
                e = _bitlen(v) - 1
                nraw = e - GAP_SUB
                tok = GAP_EXACT + (e - 3) * (1 << GAP_SUB) + np.int64((v >> np.uint64(nraw)) & np.uint64((1 << GAP_SUB) - 1))
        # step: tables exist (grandparent -> parent -> child)
        if nxt[c] == 0:
            if p_nxt[level] == 0:
                if g_nxt[0] == 0:
                    _rebuild(g_counts, g_seen, g_nxt, g_freq, g_cum, g_lut, 0, g_freq, -1, False, g_counts.shape[1], RANS_BITS, OBSERVATION_WEIGHT)
                _rebuild(p_counts, p_seen, p_nxt, p_freq, p_cum, p_lut, level, g_freq, 0, False, p_counts.shape[1], RANS_BITS, PRIOR_STRENGTH)
            _rebuild(counts, seen, nxt, freq, cum, lut, c, p_freq, level, True, counts.shape[1], RANS_BITS, PRIOR_STRENGTH)
        # step: code the token
        if decoding:
            slot = np.int64(x & RANS_MASK)
            if nxt[c] >= LUT_READY:
                tok = np.int64(lut[c, slot])
            else:  # binary search: the last symbol whose cum <= slot
                tok = 0
                top = counts.shape[1] - 1
                while tok < top:
                    mid = (tok + top + 1) >> 1
                    if cum[c, mid] <= slot:
                        tok = mid
                    else:
                        top = mid - 1
            x = np.uint64(freq[c, tok]) * (x >> np.uint64(RANS_BITS)) + np.uint64(slot - cum[c, tok])
            if x < RANS_L:
                if pos >= n_words:
                    return False
                x = (x << np.uint64(32)) | np.uint64(words[pos])
                pos += 1
        else:
            starts[m] = cum[c, tok]
            freqs[m] = freq[c, tok]
            m += 1
        # step: adapt child, grandparent, parent
        counts[c, tok] += 1
        seen[c] += 1
        g_counts[0, tok] += 1
        g_seen[0] += 1
        if g_seen[0] >= g_nxt[0]:
            _rebuild(g_counts, g_seen, g_nxt, g_freq, g_cum, g_lut, 0, g_freq, -1, False, g_counts.shape[1], RANS_BITS, OBSERVATION_WEIGHT)
        p_counts[level, tok] += 1
        p_seen[level] += 1
        if p_seen[level] >= p_nxt[level]:
            _rebuild(p_counts, p_seen, p_nxt, p_freq, p_cum, p_lut, level, g_freq, 0, False, p_counts.shape[1], RANS_BITS, PRIOR_STRENGTH)
        if seen[c] >= nxt[c]:
            _rebuild(counts, seen, nxt, freq, cum, lut, c, p_freq, level, True, counts.shape[1], RANS_BITS, PRIOR_STRENGTH)
        # the raw low bits
        if tok >= GAP_EXACT:
            e = (tok - GAP_EXACT) // (1 << GAP_SUB) + 3
            nraw = e - GAP_SUB
            if decoding:
                if bitpos + nraw > raw_bits:
                    return False
                low, bitpos = _raw_take(raw, bitpos, nraw)
                top = (tok - GAP_EXACT) % (1 << GAP_SUB)
                v = (np.uint64(1) << np.uint64(e)) | (np.uint64(top) << np.uint64(nraw)) | low
            else:
                bitpos = _raw_put(raw, bitpos, v, nraw)
        elif decoding:
            v = np.uint64(tok)
        if decoding:
            skips[i] = v
        mag1 = _gap_mag(tok)
        slot = i % GAP_WINDOW
        window_sum = window_sum - ring[slot] + v
        ring[slot] = v
    if decoding:
        if x != RANS_L or pos != n_words:
            return False
        sizes[0] = pos
    else:
        sizes[0] = m
    sizes[1] = bitpos
    return True


@nb.njit(nb.int64(nb.uint64[::1], nb.uint32[::1], nb.uint8[::1], nb.int64[::1]), cache=True, nogil=True)
def ctx_gaps_encode(skips, words, raw, out_sizes):
    """Context-coded gap tokens + raw low bits; out_sizes = [n_words, n_raw_bits]."""
    n = skips.shape[0]
    starts, freqs, sizes = _symbol_log(n, 2)
    _gaps_run(skips, False, words, raw, starts, freqs, sizes)
    out_sizes[0] = _rans_flush(starts, freqs, sizes[0], words, RANS_BITS)
    out_sizes[1] = sizes[1]
    return 0


@nb.njit(nb.int64(nb.uint32[::1], nb.uint8[::1], nb.uint64[::1]), cache=True, nogil=True)
def ctx_gaps_decode(words, raw, out):
    """Inverse of ctx_gaps_encode. Returns raw bits consumed, or -1 on a bad stream."""
    dummy, _, sizes = _symbol_log(0, 2)  # a decoder records no symbols
    if not _gaps_run(out, True, words, raw, dummy, dummy, sizes):
        return -1
    return sizes[1]


# --- labels (FORMAT.md §6.2) --------------------------------------------------------------------
# Per entry a candidate symbol r: 0 = the mode D of the last LABEL_WINDOW labels (ties: the
# most recent), 1 / 2 = the most / second most recent distinct labels other than D,
# 3 = another label, then coded explicitly: one token (C <= 256) or a high part and a low
# byte in the context of the high part.  r is coded in the context of the entry's gap
# magnitude, the mode's strength in the window, and whether the previous r was 0.

LABEL_WINDOW = 8
LABEL_RECENT = 4
LABEL_CANDIDATES = 3
LABEL_MAG_LEVELS = 12
LABEL_STRENGTH_LEVELS = 4
LABEL_PARENTS = LABEL_STRENGTH_LEVELS * 2
LABEL_CONTEXTS = LABEL_MAG_LEVELS * LABEL_PARENTS


@nb.njit(cache=True, nogil=True)
def _labels_run(labels, skips, n_classes, decoding, words, starts, freqs, sizes):
    """The label model, shared by encoder and decoder; returns False on a bad stream.

    sizes <- [symbols recorded (encoding) or words used (decoding)].
    """
    n = labels.shape[0]
    split = n_classes > 256
    n_hi = (n_classes + 255) // 256 if split else 1
    n_lo = 256 if split else n_classes
    r_counts, r_seen, r_nxt, r_freq, r_cum, r_lut = _model_new(LABEL_CONTEXTS, LABEL_CANDIDATES + 1, 0, True)
    q_counts, q_seen, q_nxt, q_freq, q_cum, q_lut = _model_new(LABEL_PARENTS, LABEL_CANDIDATES + 1, 0, True)
    h_counts, h_seen, h_nxt, h_freq, h_cum, h_lut = _model_new(1, n_hi, 0, True)
    l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut = _model_new(n_hi, n_lo, 0, True)
    window = np.full(LABEL_WINDOW, -1, dtype=np.int64)
    in_window = np.zeros(n_classes, dtype=np.int32)
    recent = np.full(LABEL_RECENT, -1, dtype=np.int64)
    cand = np.full(LABEL_CANDIDATES, -1, dtype=np.int64)
    mode = -1
    mode_count = 0
    prev_hit = 0
    n_words = words.shape[0]
    x = RANS_L
    pos = 0
    m = 0
    if decoding:
        if n_words < 2:
            return False
        x = (np.uint64(words[0]) << np.uint64(32)) | np.uint64(words[1])
        pos = 2
        if x < RANS_L or x >= (np.uint64(1) << np.uint64(63)):
            return False
    for i in range(n):
        cand[0] = mode
        j = 1
        for t in range(LABEL_RECENT):
            if j < LABEL_CANDIDATES and recent[t] >= 0 and recent[t] != mode:
                cand[j] = recent[t]
                j += 1
        v = skips[i]
        if v < np.uint64(GAP_EXACT):
            mag = np.int64(v)
        else:
            mag = GAP_EXACT + _bitlen(v) - 4
        if mag >= LABEL_MAG_LEVELS:
            mag = LABEL_MAG_LEVELS - 1
        strength = (mode_count - 1) * LABEL_STRENGTH_LEVELS // LABEL_WINDOW if mode_count > 0 else 0
        pc = strength * 2 + prev_hit
        c = mag * LABEL_PARENTS + pc
        label = -1
        r = LABEL_CANDIDATES
        if not decoding:
            label = labels[i]
            for t in range(LABEL_CANDIDATES):
                if cand[t] == label:
                    r = t
                    break
        # step: code r in context c (parent pc)
        if r_nxt[c] == 0:
            if q_nxt[pc] == 0:
                _rebuild(q_counts, q_seen, q_nxt, q_freq, q_cum, q_lut, pc, q_freq, -1, False, q_counts.shape[1], RANS_BITS, OBSERVATION_WEIGHT)
            _rebuild(r_counts, r_seen, r_nxt, r_freq, r_cum, r_lut, c, q_freq, pc, True, r_counts.shape[1], RANS_BITS, PRIOR_STRENGTH)
        if decoding:
            slot = np.int64(x & RANS_MASK)
            if r_nxt[c] >= LUT_READY:
                r = np.int64(r_lut[c, slot])
            else:  # binary search: the last symbol whose cum <= slot
                r = 0
                top = r_counts.shape[1] - 1
                while r < top:
                    mid = (r + top + 1) >> 1
                    if r_cum[c, mid] <= slot:
                        r = mid
                    else:
                        top = mid - 1
            x = np.uint64(r_freq[c, r]) * (x >> np.uint64(RANS_BITS)) + np.uint64(slot - r_cum[c, r])
            if x < RANS_L:
                if pos >= n_words:
                    return False
                x = (x << np.uint64(32)) | np.uint64(words[pos])
                pos += 1
        else:
            starts[m] = r_cum[c, r]
            freqs[m] = r_freq[c, r]
            m += 1
        r_counts[c, r] += 1
        r_seen[c] += 1
        q_counts[pc, r] += 1
        q_seen[pc] += 1
        if q_seen[pc] >= q_nxt[pc]:
            _rebuild(q_counts, q_seen, q_nxt, q_freq, q_cum, q_lut, pc, q_freq, -1, False, q_counts.shape[1], RANS_BITS, OBSERVATION_WEIGHT)
        if r_seen[c] >= r_nxt[c]:
            _rebuild(r_counts, r_seen, r_nxt, r_freq, r_cum, r_lut, c, q_freq, pc, True, r_counts.shape[1], RANS_BITS, PRIOR_STRENGTH)
        if r < LABEL_CANDIDATES:
            label = cand[r]
            if label < 0:
                return False
        else:
            hi = 0
            lo = 0
            if not decoding:
                hi = label >> 8 if split else 0
                lo = label & 255 if split else label
            if split:
                # step: code the high part (one context, no parent)
                if h_nxt[0] == 0:
                    _rebuild(h_counts, h_seen, h_nxt, h_freq, h_cum, h_lut, 0, h_freq, -1, True, h_counts.shape[1], RANS_BITS, OBSERVATION_WEIGHT)
                if decoding:
                    slot = np.int64(x & RANS_MASK)
                    if h_nxt[0] >= LUT_READY:
                        hi = np.int64(h_lut[0, slot])
                    else:  # binary search: the last symbol whose cum <= slot
                        hi = 0
                        top = h_counts.shape[1] - 1
                        while hi < top:
                            mid = (hi + top + 1) >> 1
                            if h_cum[0, mid] <= slot:
                                hi = mid
                            else:
                                top = mid - 1
                    x = np.uint64(h_freq[0, hi]) * (x >> np.uint64(RANS_BITS)) + np.uint64(slot - h_cum[0, hi])
                    if x < RANS_L:
                        if pos >= n_words:
                            return False
                        x = (x << np.uint64(32)) | np.uint64(words[pos])
                        pos += 1
                else:
                    starts[m] = h_cum[0, hi]
                    freqs[m] = h_freq[0, hi]
                    m += 1
                h_counts[0, hi] += 1
                h_seen[0] += 1
                if h_seen[0] >= h_nxt[0]:
                    _rebuild(h_counts, h_seen, h_nxt, h_freq, h_cum, h_lut, 0, h_freq, -1, True, h_counts.shape[1], RANS_BITS, OBSERVATION_WEIGHT)
            # step: code the low part in the context of the high part
            if l_nxt[hi] == 0:
                _rebuild(l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut, hi, l_freq, -1, True, l_counts.shape[1], RANS_BITS, OBSERVATION_WEIGHT)
            if decoding:
                slot = np.int64(x & RANS_MASK)
                if l_nxt[hi] >= LUT_READY:
                    lo = np.int64(l_lut[hi, slot])
                else:  # binary search: the last symbol whose cum <= slot
                    lo = 0
                    top = l_counts.shape[1] - 1
                    while lo < top:
                        mid = (lo + top + 1) >> 1
                        if l_cum[hi, mid] <= slot:
                            lo = mid
                        else:
                            top = mid - 1
                x = np.uint64(l_freq[hi, lo]) * (x >> np.uint64(RANS_BITS)) + np.uint64(slot - l_cum[hi, lo])
                if x < RANS_L:
                    if pos >= n_words:
                        return False
                    x = (x << np.uint64(32)) | np.uint64(words[pos])
                    pos += 1
            else:
                starts[m] = l_cum[hi, lo]
                freqs[m] = l_freq[hi, lo]
                m += 1
            l_counts[hi, lo] += 1
            l_seen[hi] += 1
            if l_seen[hi] >= l_nxt[hi]:
                _rebuild(l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut, hi, l_freq, -1, True, l_counts.shape[1], RANS_BITS, OBSERVATION_WEIGHT)
            label = (hi << 8) + lo
            if label >= n_classes:
                return False
        if decoding:
            labels[i] = label
        prev_hit = 1 if r == 0 else 0
        if recent[0] != label:
            t = LABEL_RECENT - 1
            for q in range(LABEL_RECENT):
                if recent[q] == label:
                    t = q
                    break
            while t > 0:
                recent[t] = recent[t - 1]
                t -= 1
            recent[0] = label
        slot = i % LABEL_WINDOW
        old = window[slot]
        if old >= 0:
            in_window[old] -= 1
        window[slot] = label
        in_window[label] += 1
        if label == mode:
            mode_count = in_window[label]
        elif in_window[label] >= mode_count:
            mode = label
            mode_count = in_window[label]
        elif old == mode:
            mode_count = 0
            for q in range(LABEL_WINDOW):
                lab = window[(i - q) % LABEL_WINDOW]
                if lab >= 0 and in_window[lab] > mode_count:
                    mode = lab
                    mode_count = in_window[lab]
    if decoding:
        if x != RANS_L or pos != n_words:
            return False
        sizes[0] = pos
    else:
        sizes[0] = m
    return True


@nb.njit(nb.int64(nb.int64[::1], nb.uint64[::1], nb.int64, nb.uint32[::1]), cache=True, nogil=True)
def ctx_labels_encode(labels, skips, n_classes, words):
    """Context-coded labels (skips give the gap context); returns the word count."""
    n = labels.shape[0]
    starts, freqs, sizes = _symbol_log(3 * n, 1)
    _labels_run(labels, skips, n_classes, False, words, starts, freqs, sizes)
    return _rans_flush(starts, freqs, sizes[0], words, RANS_BITS)


@nb.njit(nb.int64(nb.uint32[::1], nb.uint64[::1], nb.int64, nb.int64[::1]), cache=True, nogil=True)
def ctx_labels_decode(words, skips, n_classes, out):
    """Inverse of ctx_labels_encode; returns 0, or -1 on a bad stream."""
    dummy, _, sizes = _symbol_log(0, 1)  # a decoder records no symbols
    if not _labels_run(out, skips, n_classes, True, words, dummy, dummy, sizes):
        return -1
    return 0


# --- adaptive rANS, second generation (FORMAT.md §5.7, §6.3) -------------------------------
#
# Index method 4 and label method 3 refine methods 3 / 2 (each step measured on the bench's
# 18 structured rows before it was kept): 15-bit probabilities (a 160-symbol table at 12 bits
# spends 4 % of its range on symbols that never occur); an alphabet cut to the tokens the
# block can use; young child contexts that borrow their parent's table until they have seen
# CHILD_MIN symbols (fewer rebuilds: small blocks decode several times faster); parents whose
# prior mixes the grandparent with a per-level geometric skip law (integers only, see
# geo_survivals); run boundaries (a jump far above the local mean: usually a new folder) after
# which the gap model measures the new run's density and the label model forgets its window;
# priors worth PRIOR_STRENGTH2 observations.  Decoding a symbol of a mature context looks up
# the bucket ``slot >> LUT2_SHIFT`` of a 256-entry table, then steps forward over the symbols
# that start inside that 128-slot bucket (a 4,096-entry table decoded 10 % slower: it misses
# the cache, and every rebuild rewrites it).

RANS2_BITS = 15
RANS2_M = 1 << RANS2_BITS
RANS2_MASK = np.uint64(RANS2_M - 1)
LUT2_BITS = 8  # slot tables of 2^8 buckets of 2^7 slots: 256 bytes per context stay in cache
LUT2_SIZE = 1 << LUT2_BITS
LUT2_SHIFT = RANS2_BITS - LUT2_BITS
CHILD_MIN = 16
PRIOR_STRENGTH2 = 256  # methods 4 / 3: a prior table is worth this many observations (64 in 3 / 2)
# A run boundary (methods 4 and label 3): a skip > 4 x the mean of the previous 16 skips + 8
# (entries >= 16).  After one, the gap model takes its density from the skips since the
# boundary once there are GAP_FRESH_MIN of them; the label model empties its window.
BOUNDARY_FACTOR = 4
BOUNDARY_SLACK = 8
GAP_FRESH_MIN = 4
GAP_FRESH_MIN_FOLDERS = 2  # index method 6: a boundary is certain, so trust the new folder's density sooner
GAP_RUN_CAP = 4096  # index methods 7 / 8 (§5.10): a run's density is measured over up to this many skips
GAP3_DRIFT = 4  # ... unless it differs from the last 16 skips' by this many half-octaves: the run restarts
GAP3_GEO_SHARE = 3  # ... and a parent's prior is 3/4 the geometric table, 1/4 the grandparent


@nb.njit(cache=True, nogil=True, inline="always")
def _run_level(run_sum, run_n):
    """§5.10: the half-octave of 16·S'/n + 1, from u = floor(4·(16·S' + n) / n) (no rounding of S')."""
    u = ((run_sum * np.uint64(GAP_WINDOW) + np.uint64(run_n)) << np.uint64(2)) // np.uint64(run_n)
    b = _bitlen(u)
    level = 2 * b + np.int64((u >> np.uint64(b - 2)) & np.uint64(1)) - 4
    return GAP_LEVELS - 1 if level >= GAP_LEVELS else level


@nb.njit(cache=True, nogil=True, inline="always")
def _run_boundary(i, v, window_sum):
    """Entry i (skip v) starts a new run: v > 4 x the mean of the previous 16 skips + 8 (§5.7, §6.3)."""
    return i >= GAP_WINDOW and v > np.uint64(BOUNDARY_FACTOR) * (window_sum // np.uint64(GAP_WINDOW)) + np.uint64(BOUNDARY_SLACK)


@nb.njit(cache=True, nogil=True, inline="always")
def _folder_step(ends, f, at, v, i):
    """Methods 6 / 5 (§5.9): entry i (skip v) lies at ``at + v``; move f to its folder.  Returns
    (whether entry i >= 1 is in another folder than entry i - 1, f, the entry + 1).  ``ends[j]``
    is the end of folder ``f0 + j`` (f0: the folder of the block's base), so f starts at 0; an
    entry at or past the last end (a bad stream) stays in the last folder."""
    x = at + v
    moved = False
    while f + 1 < ends.shape[0] and np.uint64(ends[f]) <= x:
        f += 1
        moved = True
    return moved and i > 0, f, x + np.uint64(1)


@nb.njit(cache=True, nogil=True)
def _stream_open(words, decoding):
    """(wpad, x, pos) to start the §5.6 decoder on ``words``: the words plus one zero (see _renorm),
    the initial state (the first two words, high first) and the next word; pos = -1 if the stream
    cannot start (fewer than two words, or a state outside [2^31, 2^63)).  An encoder starts at
    x = 2^31 and needs no words."""
    n_words = words.shape[0]
    wpad = np.zeros(n_words + 1 if decoding else 0, dtype=np.uint32)
    if not decoding:
        return wpad, RANS_L, 0
    if n_words < 2:
        return wpad, RANS_L, -1
    wpad[:n_words] = words
    x = (np.uint64(words[0]) << np.uint64(32)) | np.uint64(words[1])
    if x < RANS_L or x >= (np.uint64(1) << np.uint64(63)):
        return wpad, x, -1
    return wpad, x, 2


@nb.njit(cache=True, nogil=True, inline="always")
def _renorm(x, wpad, pos, n_words):
    """Refill the rANS state from ``wpad`` (the words plus one zero) without a branch; a read
    past the words moves pos beyond n_words, which the end-of-stream check rejects."""
    refilled = (x << np.uint64(32)) | np.uint64(wpad[min(pos, n_words)])
    need = x < RANS_L
    return (refilled if need else x), pos + np.int64(need)


@nb.njit(cache=True, nogil=True, inline="always")
def _search2(cum, c, n_sym, slot):
    """The symbol s with cum[c, s] <= slot < cum[c, s + 1], by binary search."""
    s = 0
    top = n_sym - 1
    while s < top:
        mid = (s + top + 1) >> 1
        if cum[c, mid] <= slot:
            s = mid
        else:
            top = mid - 1
    return s


GEO_DEN = 640  # a level's mean skip is (5 * (R8 - 8) + 32) / GEO_DEN (FORMAT.md §5.7)
GEO_ONE = np.int64(1) << np.int64(31)  # Q31 fixed point


@nb.njit(cache=True, nogil=True, inline="always")
def _geo_survival(a, qpow):
    """q^a in Q31 as the truncated product of q^(2^j) over the set bits j of a (lowest first)."""
    result = GEO_ONE
    j = 0
    while a != 0:
        if a & 1:
            result = (result * qpow[j]) >> 31
        a >>= 1
        j += 1
    return result


@nb.njit(nb.types.UniTuple(nb.int64[:, ::1], 2)(), cache=True, nogil=True)
def geo_survivals():
    """surv(lo_t) and surv(lo_t + w_t) in Q31 for every level and all GAP_TOKENS tokens (§5.7).

    Integer only: q = num / (num + GEO_DEN) in Q31, powers by repeated squaring.  Computed
    once per process (see pladacodec._context); blocks only quantise them.
    """
    lo_surv = np.empty((GAP_LEVELS, GAP_TOKENS), dtype=np.int64)
    hi_surv = np.empty((GAP_LEVELS, GAP_TOKENS), dtype=np.int64)
    qpow = np.empty(GAP_MAX_EXP + 2, dtype=np.int64)
    for level in range(GAP_LEVELS):
        b = level >> 1
        r8 = 12 if b < 2 else (1 << (b + 2)) + (2 * (level & 1) + 1) * (1 << b)
        num = np.int64(5 * (r8 - 8) + 32)
        qpow[0] = (num << np.int64(31)) // (num + GEO_DEN)
        for j in range(1, GAP_MAX_EXP + 2):
            qpow[j] = (qpow[j - 1] * qpow[j - 1]) >> 31
        for t in range(GAP_TOKENS):
            if t < GAP_EXACT:
                lo = np.int64(t)
                width = np.int64(1)
            else:
                e = (t - GAP_EXACT) // (1 << GAP_SUB) + 3
                width = np.int64(1) << np.int64(e - GAP_SUB)
                lo = (np.int64(1) << np.int64(e)) + np.int64((t - GAP_EXACT) % (1 << GAP_SUB)) * width
            lo_surv[level, t] = _geo_survival(lo, qpow)
            hi_surv[level, t] = _geo_survival(lo + width, qpow)
    return lo_surv, hi_surv


@nb.njit(cache=True, nogil=True)
def _geo_row(level, n_tok, lo_surv, hi_surv, out):
    """out[level] <- the tokens' shares of the level's geometric skip law over n_tok tokens (§5.7),
    quantised to frequencies summing to RANS2_M; the last token takes the whole tail.  Built when
    the level's parent context is first used, so a small block pays only for the levels it meets."""
    spread = RANS2_M - n_tok
    total = np.int64(0)
    for t in range(n_tok):
        m = lo_surv[level, t]
        if t < n_tok - 1:
            m -= hi_surv[level, t]
        if m < 0:
            m = 0
        total += m
    used = 0
    best = 0
    for t in range(n_tok):
        m = lo_surv[level, t]
        if t < n_tok - 1:
            m -= hi_surv[level, t]
        if m < 0:
            m = 0
        f = 1 + (m * spread) // total
        out[level, t] = f
        used += f
        if f > out[level, best]:
            best = t
    out[level, best] += RANS2_M - used


@nb.njit(cache=True, nogil=True)
def _gaps_run2(skips, n_tok, decoding, words, raw, starts, freqs, sizes, lo_surv, hi_surv, ends, base, gen):
    """The gap model of index method 4, shared by encoder and decoder (see _gaps_run).  With
    ``ends`` (not None) it is index method 6: run boundaries are the folder changes (``ends``:
    the end of the folder holding ``base`` and of every later folder, see _folder_step), not
    the jumps of §5.7.  ``ends is None`` is decided when numba compiles, so method 4's kernel
    carries none of method 6's work.  ``gen`` 1 is index method 7 / 8 (§5.10): the density of
    the whole run, a restart when it drifts from the last 16 skips', a sharper geometric prior."""
    n = skips.shape[0]
    fold = 0  # with folders: the folder of the previous entry, as a position in ends
    fold_at = np.uint64(base)  # ... and that entry + 1 (the block's base before the first)
    fresh_min = GAP_FRESH_MIN
    if ends is not None:
        fresh_min = GAP_FRESH_MIN_FOLDERS
    run_cap = GAP_RUN_CAP if gen else GAP_WINDOW
    geo_share = GAP3_GEO_SHARE if gen else 2  # of 4: the geometric table's share of a parent's prior
    counts, seen, nxt, freq, cum, lut = _model_new(GAP_CONTEXTS, n_tok, CHILD_MIN, True, LUT2_SIZE)
    p_counts, p_seen, p_nxt, p_freq, p_cum, p_lut = _model_new(GAP_LEVELS, n_tok, 0, False)
    g_counts, g_seen, g_nxt, g_freq, g_cum, g_lut = _model_new(1, n_tok, 0, False)
    geo = np.empty((GAP_LEVELS, n_tok), dtype=np.int32)  # filled per level on first use
    prior = np.empty((GAP_LEVELS, n_tok), dtype=np.int32)  # a parent's prior: grandparent + geometric
    ring = np.zeros(GAP_WINDOW, dtype=np.uint64)
    window_sum = np.uint64(0)
    since = 0 if gen else GAP_WINDOW  # skips since the last run boundary (capped), and their sum
    since_sum = np.uint64(0)
    mag1 = 0
    bitpos = 0
    raw_bits = raw.shape[0] * 8
    n_words = words.shape[0]
    m = 0
    wpad, x, pos = _stream_open(words, decoding)
    if pos < 0:
        return False
    for i in range(n):
        if pos > n_words:  # a refill read past the stream: it is inconsistent, stop early
            return False
        level = _gap_level(window_sum)
        if gen:
            if since >= fresh_min:  # the whole run's density (§5.10), unless it drifted
                run_level = _run_level(since_sum, since)
                if since < GAP_WINDOW or abs(run_level - level) < GAP3_DRIFT:
                    level = run_level
                else:
                    since = GAP_WINDOW
                    since_sum = window_sum
        elif fresh_min <= since < GAP_WINDOW:  # a new run: its own density, scaled to 16 skips
            level = _gap_level(since_sum * np.uint64(GAP_WINDOW) // np.uint64(since))
        c = level * GAP_MAG1_LEVELS + (mag1 if mag1 < GAP_MAG1_LEVELS else GAP_MAG1_LEVELS - 1)
        tok = 0
        v = np.uint64(0)
        if not decoding:
            v = skips[i]
            if v < np.uint64(GAP_EXACT):
                tok = np.int64(v)
            else:
                e = _bitlen(v) - 1
                tok = GAP_EXACT + (e - 3) * (1 << GAP_SUB) + np.int64((v >> np.uint64(e - GAP_SUB)) & np.uint64((1 << GAP_SUB) - 1))
        # step: the parent chain exists; a young child codes with its parent's table
        if p_nxt[level] == 0:
            _geo_row(level, n_tok, lo_surv, hi_surv, geo)
            if g_nxt[0] == 0:
                _rebuild(g_counts, g_seen, g_nxt, g_freq, g_cum, g_lut, 0, g_freq, -1, False, n_tok, RANS2_BITS, OBSERVATION_WEIGHT)
            for t in range(n_tok):
                prior[level, t] = ((4 - geo_share) * g_freq[0, t] + geo_share * geo[level, t]) >> 2
            _rebuild(p_counts, p_seen, p_nxt, p_freq, p_cum, p_lut, level, prior, level, False, n_tok, RANS2_BITS, PRIOR_STRENGTH2)
        own = seen[c] >= CHILD_MIN
        if decoding:
            slot = np.int64(x & RANS2_MASK)
            if own:
                if nxt[c] >= LUT_READY:
                    tok = np.int64(lut[c, slot >> LUT2_SHIFT])
                    while cum[c, tok + 1] <= slot:
                        tok += 1
                else:
                    tok = _search2(cum, c, n_tok, slot)
                f = freq[c, tok]
                st = cum[c, tok]
            else:
                tok = _search2(p_cum, level, n_tok, slot)
                f = p_freq[level, tok]
                st = p_cum[level, tok]
            x = np.uint64(f) * (x >> np.uint64(RANS2_BITS)) + np.uint64(slot - st)
            x, pos = _renorm(x, wpad, pos, n_words)
        else:
            if tok >= n_tok:
                return False
            if own:
                starts[m] = cum[c, tok]
                freqs[m] = freq[c, tok]
            else:
                starts[m] = p_cum[level, tok]
                freqs[m] = p_freq[level, tok]
            m += 1
        # step: adapt child, grandparent, parent, then rebuild the child if due
        counts[c, tok] += 1
        seen[c] += 1
        g_counts[0, tok] += 1
        g_seen[0] += 1
        if g_seen[0] >= g_nxt[0]:
            _rebuild(g_counts, g_seen, g_nxt, g_freq, g_cum, g_lut, 0, g_freq, -1, False, n_tok, RANS2_BITS, OBSERVATION_WEIGHT)
        p_counts[level, tok] += 1
        p_seen[level] += 1
        if p_seen[level] >= p_nxt[level]:
            for t in range(n_tok):
                prior[level, t] = ((4 - geo_share) * g_freq[0, t] + geo_share * geo[level, t]) >> 2
            _rebuild_inline(p_counts, p_seen, p_nxt, p_freq, p_cum, p_lut, level, prior, level, False, n_tok, RANS2_BITS, PRIOR_STRENGTH2)
        if seen[c] >= nxt[c]:
            _rebuild(counts, seen, nxt, freq, cum, lut, c, p_freq, level, True, n_tok, RANS2_BITS, PRIOR_STRENGTH2)
        # the raw low bits
        if tok >= GAP_EXACT:
            e = (tok - GAP_EXACT) // (1 << GAP_SUB) + 3
            nraw = e - GAP_SUB
            if decoding:
                if bitpos + nraw > raw_bits:
                    return False
                low, bitpos = _raw_take(raw, bitpos, nraw)
                top = (tok - GAP_EXACT) % (1 << GAP_SUB)
                v = (np.uint64(1) << np.uint64(e)) | (np.uint64(top) << np.uint64(nraw)) | low
            else:
                bitpos = _raw_put(raw, bitpos, v, nraw)
        elif decoding:
            v = np.uint64(tok)
        if decoding:
            skips[i] = v
        mag1 = _gap_mag(tok)
        if ends is not None:
            boundary, fold, fold_at = _folder_step(ends, fold, fold_at, v, i)
        else:
            boundary = _run_boundary(i, v, window_sum)
        if boundary:
            since = 0
            since_sum = np.uint64(0)
        elif since < run_cap:
            since += 1
            since_sum += v
        slot_w = i % GAP_WINDOW
        window_sum = window_sum - ring[slot_w] + v
        ring[slot_w] = v
    if decoding:
        if x != RANS_L or pos != n_words:
            return False
        sizes[0] = pos
    else:
        sizes[0] = m
    sizes[1] = bitpos
    return True


@nb.njit(nb.int64(nb.uint64[::1]), cache=True, nogil=True)
def gap_tokens_needed(skips):
    """1 + the largest token of §5.3 among ``skips`` (1 for no skips)."""
    top = np.uint64(0)
    for i in range(skips.shape[0]):
        if skips[i] > top:
            top = skips[i]
    if top < np.uint64(GAP_EXACT):
        return np.int64(top) + 1
    e = _bitlen(top) - 1
    return GAP_EXACT + (e - 3) * (1 << GAP_SUB) + np.int64((top >> np.uint64(e - GAP_SUB)) & np.uint64((1 << GAP_SUB) - 1)) + 1


@nb.njit(
    nb.int64(
        nb.uint64[::1], nb.int64, nb.uint32[::1], nb.uint8[::1], nb.int64[::1], nb.int64[:, ::1], nb.int64[:, ::1],
        nb.int64[::1], nb.int64, nb.boolean, nb.int64,
    ),
    cache=True,
    nogil=True,
)
def ctx2_gaps_encode(skips, n_tok, words, raw, out_sizes, lo_surv, hi_surv, ends, base, folders, gen):
    """Index method 4, or 6 with ``folders`` (run boundaries at the folder changes ``ends`` gives,
    see _folder_step): tokens + raw low bits; out_sizes = [n_words, n_raw_bits]; -1 if a token >= n_tok."""
    n = skips.shape[0]
    starts, freqs, sizes = _symbol_log(n, 2)
    if folders:
        ok = _gaps_run2(skips, n_tok, False, words, raw, starts, freqs, sizes, lo_surv, hi_surv, ends, base, gen)
    else:
        ok = _gaps_run2(skips, n_tok, False, words, raw, starts, freqs, sizes, lo_surv, hi_surv, None, 0, gen)
    if not ok:
        return -1
    out_sizes[0] = _rans_flush(starts, freqs, sizes[0], words, RANS2_BITS)
    out_sizes[1] = sizes[1]
    return 0


@nb.njit(
    nb.int64(
        nb.uint32[::1], nb.uint8[::1], nb.int64, nb.uint64[::1], nb.int64[:, ::1], nb.int64[:, ::1],
        nb.int64[::1], nb.int64, nb.boolean, nb.int64,
    ),
    cache=True,
    nogil=True,
)
def ctx2_gaps_decode(words, raw, n_tok, out, lo_surv, hi_surv, ends, base, folders, gen):
    """Inverse of ctx2_gaps_encode. Returns raw bits consumed, or -1 on a bad stream."""
    dummy, _, sizes = _symbol_log(0, 2)  # a decoder records no symbols
    if folders:
        ok = _gaps_run2(out, n_tok, True, words, raw, dummy, dummy, sizes, lo_surv, hi_surv, ends, base, gen)
    else:
        ok = _gaps_run2(out, n_tok, True, words, raw, dummy, dummy, sizes, lo_surv, hi_surv, None, 0, gen)
    if not ok:
        return -1
    return sizes[1]


# --- labels, second generation (FORMAT.md §6.3) ---------------------------------------------
# Label method 2's model at M = 2^15 with PRIOR_STRENGTH2, a window that empties at run
# boundaries, and, for C <= LABEL_EXCLUDE_MAX, literals coded with the candidates excluded
# from the literal table (their share, up to 3/C of the range, would otherwise be wasted on
# every such label).

LABEL_EXCLUDE_MAX = 32
# label method 6 / 7 (§6.6): skip magnitudes up to 2^18 as child contexts, parents that know
# the skip coarsely (< 8, < 1,024, larger), children whose prior is worth 32 observations
# instead of 256, literal tables weighting an observation 1 instead of 8
LABEL3_MAG_LEVELS = 24
LABEL3_CHILD_STRENGTH = 32
LABEL3_LITERAL_WEIGHT = 1
LABEL3_COARSE = 3  # parent skip classes: mag < LABEL3_MAG_SMALL, < LABEL3_MAG_MEDIUM, the rest
LABEL3_MAG_SMALL = 8  # skips below 8
LABEL3_MAG_MEDIUM = 15  # skips below 1,024
LABEL4_PREV = 3  # label method 9 (§6.8): the previous entry hit D, or started a run of another label, or neither


@nb.njit(cache=True, nogil=True)
def _labels_run2(labels, skips, n_classes, decoding, words, starts, freqs, sizes, ends, base, gen):
    """The label model of label method 3, shared by encoder and decoder; False on a bad stream.
    With ``ends`` (not None: label method 5 / 7, see _gaps_run2) the window empties when the entry's
    folder differs from the previous entry's, instead of at the jumps of §6.3.  ``gen`` 1 is label
    method 6 / 7 (§6.6): more skip contexts, parents that see the skip, children that learn
    sooner, literal tables that sharpen slower; 0 is methods 3 / 5."""
    n = labels.shape[0]
    fold = 0
    fold_at = np.uint64(base)
    split = n_classes > 256
    exclude = n_classes <= LABEL_EXCLUDE_MAX
    n_hi = (n_classes + 255) // 256 if split else 1
    n_lo = 256 if split else n_classes
    r_sym = LABEL_CANDIDATES + 1
    mag_levels = LABEL3_MAG_LEVELS if gen else LABEL_MAG_LEVELS
    child_strength = LABEL3_CHILD_STRENGTH if gen else PRIOR_STRENGTH2
    literal_weight = LABEL3_LITERAL_WEIGHT if gen else OBSERVATION_WEIGHT
    n_prev = LABEL4_PREV if gen == 2 else 2  # the previous entry's states: hit / not (and a new run, §6.8)
    per_coarse = LABEL_STRENGTH_LEVELS * n_prev
    r_counts, r_seen, r_nxt, r_freq, r_cum, r_lut = _model_new(mag_levels * per_coarse, r_sym, 0, False)
    q_counts, q_seen, q_nxt, q_freq, q_cum, q_lut = _model_new(per_coarse * (LABEL3_COARSE if gen else 1), r_sym, 0, False)
    h_counts, h_seen, h_nxt, h_freq, h_cum, h_lut = _model_new(1, n_hi, 0, True, LUT2_SIZE)
    l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut = _model_new(n_hi, n_lo, 0, True, LUT2_SIZE)
    x_freq = np.zeros(n_lo, dtype=np.int64)  # the literal table with the candidates excluded
    x_cum = np.zeros(n_lo + 1, dtype=np.int64)
    window = np.full(LABEL_WINDOW, -1, dtype=np.int64)
    in_window = np.zeros(n_classes, dtype=np.int32)
    recent = np.full(LABEL_RECENT, -1, dtype=np.int64)
    cand = np.full(LABEL_CANDIDATES, -1, dtype=np.int64)
    mode = -1
    mode_count = 0
    prev_hit = 0
    prev_label = -1  # the block's previous label, and whether it equals the one before (§6.8)
    prev_same = False
    gap_ring = np.zeros(GAP_WINDOW, dtype=np.uint64)  # the previous 16 skips, for boundary detection
    gap_sum = np.uint64(0)
    n_words = words.shape[0]
    m = 0
    wpad, x, pos = _stream_open(words, decoding)
    if pos < 0:
        return False
    for i in range(n):
        if pos > n_words:  # a refill read past the stream: it is inconsistent, stop early
            return False
        cand[0] = mode
        j = 1
        for t in range(LABEL_RECENT):
            if j < LABEL_CANDIDATES and recent[t] >= 0 and recent[t] != mode:
                cand[j] = recent[t]
                j += 1
        v = skips[i]
        # a skip far above the local mean starts a new run (likely a new folder): forget the window
        if ends is not None:
            boundary, fold, fold_at = _folder_step(ends, fold, fold_at, v, i)
        else:
            boundary = _run_boundary(i, v, gap_sum)
        if boundary:
            for q in range(LABEL_WINDOW):
                if window[q] >= 0:
                    in_window[window[q]] -= 1
                window[q] = -1
            mode = -1
            mode_count = 0
            if ends is not None:  # label methods 5 / 7: a new folder's first label has its own context (hit 0)
                prev_hit = 0
        gap_sum = gap_sum - gap_ring[i % GAP_WINDOW] + v
        gap_ring[i % GAP_WINDOW] = v
        if v < np.uint64(GAP_EXACT):
            mag = np.int64(v)
        else:
            mag = GAP_EXACT + _bitlen(v) - 4
        if mag >= mag_levels:
            mag = mag_levels - 1
        strength = (mode_count - 1) * LABEL_STRENGTH_LEVELS // LABEL_WINDOW if mode_count > 0 else 0
        state = prev_hit
        if gen == 2 and prev_hit == 0 and prev_same and mode >= 0 and prev_label != mode:
            state = 2  # label method 9: the last two labels agree on another label than D (§6.8)
        pc = strength * n_prev + state
        c = mag * per_coarse + pc
        if gen:  # label method 6 / 7: the parent sees the skip's class too (§6.6)
            coarse = 0 if mag < LABEL3_MAG_SMALL else (1 if mag < LABEL3_MAG_MEDIUM else 2)
            pc += coarse * per_coarse
        label = -1
        r = LABEL_CANDIDATES
        if not decoding:
            label = labels[i]
            for t in range(LABEL_CANDIDATES):
                if cand[t] == label:
                    r = t
                    break
        # step: code r in context c (parent pc)
        if r_nxt[c] == 0:
            if q_nxt[pc] == 0:
                _rebuild_inline(q_counts, q_seen, q_nxt, q_freq, q_cum, q_lut, pc, q_freq, -1, False, r_sym, RANS2_BITS, OBSERVATION_WEIGHT)
            _rebuild_inline(r_counts, r_seen, r_nxt, r_freq, r_cum, r_lut, c, q_freq, pc, False, r_sym, RANS2_BITS, child_strength)
        if decoding:
            slot = np.int64(x & RANS2_MASK)
            # r = how many of the (increasing) bounds cum[c, 1..3] lie at or below the slot
            r = np.int64(r_cum[c, 1] <= slot) + np.int64(r_cum[c, 2] <= slot) + np.int64(r_cum[c, 3] <= slot)
            x = np.uint64(r_freq[c, r]) * (x >> np.uint64(RANS2_BITS)) + np.uint64(slot - r_cum[c, r])
            x, pos = _renorm(x, wpad, pos, n_words)
        else:
            starts[m] = r_cum[c, r]
            freqs[m] = r_freq[c, r]
            m += 1
        r_counts[c, r] += 1
        r_seen[c] += 1
        q_counts[pc, r] += 1
        q_seen[pc] += 1
        if q_seen[pc] >= q_nxt[pc]:
            _rebuild_inline(q_counts, q_seen, q_nxt, q_freq, q_cum, q_lut, pc, q_freq, -1, False, r_sym, RANS2_BITS, OBSERVATION_WEIGHT)
        if r_seen[c] >= r_nxt[c]:
            _rebuild_inline(r_counts, r_seen, r_nxt, r_freq, r_cum, r_lut, c, q_freq, pc, False, r_sym, RANS2_BITS, child_strength)
        if r < LABEL_CANDIDATES:
            label = cand[r]
            if label < 0:
                return False
        elif exclude:
            # step: the literal, from the adaptive table with the candidates' share removed
            if l_nxt[0] == 0:
                _rebuild(l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut, 0, l_freq, -1, False, n_lo, RANS2_BITS, literal_weight)
            gone = 0
            for t in range(LABEL_CANDIDATES):
                if cand[t] >= 0:
                    gone += l_freq[0, cand[t]]
            left = RANS2_M - gone
            if left <= 0:
                return False
            scale = (np.int64(RANS2_M) << 16) // left  # >= 2^16: a kept symbol's frequency only grows
            used = 0
            best = -1
            for s in range(n_lo):
                x_freq[s] = (np.int64(l_freq[0, s]) * scale) >> 16
            for t in range(LABEL_CANDIDATES):
                if cand[t] >= 0:
                    x_freq[cand[t]] = 0
            for s in range(n_lo):
                used += x_freq[s]
                if best < 0 or x_freq[s] > x_freq[best]:
                    best = s
            x_freq[best] += RANS2_M - used
            _cumulate(x_freq, x_cum, n_lo)
            if decoding:
                slot = np.int64(x & RANS2_MASK)
                lo = 0
                while x_cum[lo + 1] <= slot:
                    lo += 1
                x = np.uint64(x_freq[lo]) * (x >> np.uint64(RANS2_BITS)) + np.uint64(slot - x_cum[lo])
                x, pos = _renorm(x, wpad, pos, n_words)
                label = lo
            else:
                lo = label
                if x_freq[lo] == 0:
                    return False
                starts[m] = x_cum[lo]
                freqs[m] = x_freq[lo]
                m += 1
            l_counts[0, lo] += 1
            l_seen[0] += 1
            if l_seen[0] >= l_nxt[0]:
                _rebuild(l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut, 0, l_freq, -1, False, n_lo, RANS2_BITS, literal_weight)
        else:
            hi = 0
            lo = 0
            if not decoding:
                hi = label >> 8 if split else 0
                lo = label & 255 if split else label
            if split:
                # step: code the high part (one context, no parent)
                if h_nxt[0] == 0:
                    _rebuild(h_counts, h_seen, h_nxt, h_freq, h_cum, h_lut, 0, h_freq, -1, True, n_hi, RANS2_BITS, literal_weight)
                if decoding:
                    slot = np.int64(x & RANS2_MASK)
                    if h_nxt[0] >= LUT_READY:
                        hi = np.int64(h_lut[0, slot >> LUT2_SHIFT])
                        while h_cum[0, hi + 1] <= slot:
                            hi += 1
                    else:
                        hi = _search2(h_cum, 0, n_hi, slot)
                    x = np.uint64(h_freq[0, hi]) * (x >> np.uint64(RANS2_BITS)) + np.uint64(slot - h_cum[0, hi])
                    x, pos = _renorm(x, wpad, pos, n_words)
                else:
                    starts[m] = h_cum[0, hi]
                    freqs[m] = h_freq[0, hi]
                    m += 1
                h_counts[0, hi] += 1
                h_seen[0] += 1
                if h_seen[0] >= h_nxt[0]:
                    _rebuild(h_counts, h_seen, h_nxt, h_freq, h_cum, h_lut, 0, h_freq, -1, True, n_hi, RANS2_BITS, literal_weight)
            # step: code the low part in the context of the high part
            if l_nxt[hi] == 0:
                _rebuild(l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut, hi, l_freq, -1, True, n_lo, RANS2_BITS, literal_weight)
            if decoding:
                slot = np.int64(x & RANS2_MASK)
                if l_nxt[hi] >= LUT_READY:
                    lo = np.int64(l_lut[hi, slot >> LUT2_SHIFT])
                    while l_cum[hi, lo + 1] <= slot:
                        lo += 1
                else:
                    lo = _search2(l_cum, hi, n_lo, slot)
                x = np.uint64(l_freq[hi, lo]) * (x >> np.uint64(RANS2_BITS)) + np.uint64(slot - l_cum[hi, lo])
                x, pos = _renorm(x, wpad, pos, n_words)
            else:
                starts[m] = l_cum[hi, lo]
                freqs[m] = l_freq[hi, lo]
                m += 1
            l_counts[hi, lo] += 1
            l_seen[hi] += 1
            if l_seen[hi] >= l_nxt[hi]:
                _rebuild(l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut, hi, l_freq, -1, True, n_lo, RANS2_BITS, literal_weight)
            label = (hi << 8) + lo
        if label >= n_classes:
            return False
        if decoding:
            labels[i] = label
        prev_hit = 1 if r == 0 else 0
        prev_same = label == prev_label
        prev_label = label
        if recent[0] != label:
            t = LABEL_RECENT - 1
            for q in range(LABEL_RECENT):
                if recent[q] == label:
                    t = q
                    break
            while t > 0:
                recent[t] = recent[t - 1]
                t -= 1
            recent[0] = label
        slot = i % LABEL_WINDOW
        old = window[slot]
        if old >= 0:
            in_window[old] -= 1
        window[slot] = label
        in_window[label] += 1
        if label == mode:
            mode_count = in_window[label]
        elif in_window[label] >= mode_count:
            mode = label
            mode_count = in_window[label]
        elif old == mode:
            mode_count = 0
            for q in range(LABEL_WINDOW):
                lab = window[(i - q) % LABEL_WINDOW]
                if lab >= 0 and in_window[lab] > mode_count:
                    mode = lab
                    mode_count = in_window[lab]
    if decoding:
        if x != RANS_L or pos != n_words:
            return False
        sizes[0] = pos
    else:
        sizes[0] = m
    return True


@nb.njit(
    nb.int64(nb.int64[::1], nb.uint64[::1], nb.int64, nb.uint32[::1], nb.int64[::1], nb.int64, nb.boolean, nb.int64),
    cache=True,
    nogil=True,
)
def ctx2_labels_encode(labels, skips, n_classes, words, ends, base, folders, gen):
    """Label method 3, or 5 with ``folders``; with ``gen`` 1, method 6 or 7 (skips give the gap
    context); returns the word count."""
    n = labels.shape[0]
    starts, freqs, sizes = _symbol_log(3 * n, 1)
    if folders:
        _labels_run2(labels, skips, n_classes, False, words, starts, freqs, sizes, ends, base, gen)
    else:
        _labels_run2(labels, skips, n_classes, False, words, starts, freqs, sizes, None, 0, gen)
    return _rans_flush(starts, freqs, sizes[0], words, RANS2_BITS)


@nb.njit(
    nb.int64(nb.uint32[::1], nb.uint64[::1], nb.int64, nb.int64[::1], nb.int64[::1], nb.int64, nb.boolean, nb.int64),
    cache=True,
    nogil=True,
)
def ctx2_labels_decode(words, skips, n_classes, out, ends, base, folders, gen):
    """Inverse of ctx2_labels_encode; returns 0, or -1 on a bad stream."""
    dummy, _, sizes = _symbol_log(0, 1)  # a decoder records no symbols
    if folders:
        ok = _labels_run2(out, skips, n_classes, True, words, dummy, dummy, sizes, ends, base, gen)
    else:
        ok = _labels_run2(out, skips, n_classes, True, words, dummy, dummy, sizes, None, 0, gen)
    if not ok:
        return -1
    return 0


# --- label method 8 (FORMAT.md §6.7): order 0 with forgetting ---------------------------------
# One adaptive table over the labels (or the high part, then the low part in the high part's
# context, for C > 256) whose counts halve whenever they sum to 2^h: the table follows the
# class mix of the last few hundred labels.  Selections a real teacher makes on a pool stored
# source by source have no constant label per run (the rank model's strength) but a class mix
# that drifts from one source to the next.

FORGET_WEIGHT = 2  # one observation against the +1 every label gets (a = 1/2, Krichevsky-Trofimov)
FORGET_LUT_STEP = 64  # tables rebuilt every >= this many labels (h >= 11) decode through a slot table


@nb.njit(cache=True, nogil=True)
def _forget_rebuild(counts, seen, nxt, freq, cum, lut, c, n_sym, halve_bits):
    """Rebuild context c (§6.7): §5.6's rebuild with counts that halve at 2^h and rebuild points
    1, 2, 4, ... up to R = 2^(h - 5), then every R; a slot table (LUT_READY, see _rebuild) only
    when rebuilds are rare enough to pay for it."""
    step = np.int64(1) << max(halve_bits - 5, 0)
    _rebuild(counts, seen, nxt, freq, cum, lut, c, freq, -1, step >= FORGET_LUT_STEP, n_sym, RANS2_BITS,
             FORGET_WEIGHT, np.int64(1) << halve_bits, step)


@nb.njit(cache=True, nogil=True, inline="always")
def _forget_find(cum, lut, nxt, c, n_sym, slot, with_lut):
    """The symbol of context c whose range holds ``slot``: through the slot table once the last
    rebuild filled it (LUT_READY), else by binary search."""
    if with_lut and nxt[c] >= LUT_READY:
        s = np.int64(lut[c, slot >> LUT2_SHIFT])
        while cum[c, s + 1] <= slot:
            s += 1
    else:
        s = _search2(cum, c, n_sym, slot)
    return s


@nb.njit(cache=True, nogil=True)
def _labels_forget_run(labels, n_classes, halve_bits, decoding, words, starts, freqs, sizes):
    """Label method 8's model, shared by encoder and decoder; False on a bad stream."""
    n = labels.shape[0]
    split = n_classes > 256
    n_hi = (n_classes + 255) // 256 if split else 1
    n_lo = 256 if split else n_classes
    with_lut = (np.int64(1) << max(halve_bits - 5, 0)) >= FORGET_LUT_STEP
    h_counts, h_seen, h_nxt, h_freq, h_cum, h_lut = _model_new(1, n_hi, 0, with_lut, LUT2_SIZE)
    l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut = _model_new(n_hi, n_lo, 0, with_lut, LUT2_SIZE)
    n_words = words.shape[0]
    m = 0
    wpad, x, pos = _stream_open(words, decoding)
    if pos < 0:
        return False
    for i in range(n):
        if pos > n_words:
            return False
        label = 0 if decoding else labels[i]
        hi = 0
        if split:  # the high part, in one context
            if h_nxt[0] == 0:
                _forget_rebuild(h_counts, h_seen, h_nxt, h_freq, h_cum, h_lut, 0, n_hi, halve_bits)
            if decoding:
                slot = np.int64(x & RANS2_MASK)
                hi = _forget_find(h_cum, h_lut, h_nxt, 0, n_hi, slot, with_lut)
                x = np.uint64(h_freq[0, hi]) * (x >> np.uint64(RANS2_BITS)) + np.uint64(slot - h_cum[0, hi])
                x, pos = _renorm(x, wpad, pos, n_words)
            else:
                hi = label >> 8
                starts[m] = h_cum[0, hi]
                freqs[m] = h_freq[0, hi]
                m += 1
            h_counts[0, hi] += 1
            h_seen[0] += 1
            if h_seen[0] >= h_nxt[0]:
                _forget_rebuild(h_counts, h_seen, h_nxt, h_freq, h_cum, h_lut, 0, n_hi, halve_bits)
        # the label, or its low part in the high part's context
        if l_nxt[hi] == 0:
            _forget_rebuild(l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut, hi, n_lo, halve_bits)
        if decoding:
            slot = np.int64(x & RANS2_MASK)
            lo = _forget_find(l_cum, l_lut, l_nxt, hi, n_lo, slot, with_lut)
            x = np.uint64(l_freq[hi, lo]) * (x >> np.uint64(RANS2_BITS)) + np.uint64(slot - l_cum[hi, lo])
            x, pos = _renorm(x, wpad, pos, n_words)
        else:
            lo = label & 255 if split else label
            starts[m] = l_cum[hi, lo]
            freqs[m] = l_freq[hi, lo]
            m += 1
        l_counts[hi, lo] += 1
        l_seen[hi] += 1
        if l_seen[hi] >= l_nxt[hi]:
            _forget_rebuild(l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut, hi, n_lo, halve_bits)
        label = (hi << 8) + lo
        if label >= n_classes:
            return False
        if decoding:
            labels[i] = label
    if decoding:
        if x != RANS_L or pos != n_words:
            return False
    sizes[0] = m
    return True


@nb.njit(nb.int64(nb.int64[::1], nb.int64, nb.int64, nb.uint32[::1]), cache=True, nogil=True)
def forget_labels_encode(labels, n_classes, halve_bits, words):
    """Label method 8 with halving exponent ``halve_bits``; returns the word count."""
    n = labels.shape[0]
    starts, freqs, sizes = _symbol_log(2 * n, 1)
    _labels_forget_run(labels, n_classes, halve_bits, False, words, starts, freqs, sizes)
    return _rans_flush(starts, freqs, sizes[0], words, RANS2_BITS)


@nb.njit(nb.int64(nb.uint32[::1], nb.int64, nb.int64, nb.int64[::1]), cache=True, nogil=True)
def forget_labels_decode(words, n_classes, halve_bits, out):
    """Inverse of forget_labels_encode; returns 0, or -1 on a bad stream."""
    dummy, _, sizes = _symbol_log(0, 1)  # a decoder records no symbols
    if not _labels_forget_run(out, n_classes, halve_bits, True, words, dummy, dummy, sizes):
        return -1
    return 0


# --- static two-state rANS (FORMAT.md §5.8): index method 5, label method 4 -----------------
# A fixed table per stream, two interleaved states (entry i uses state i mod 2) so that the
# decoder's two dependency chains overlap, and a slot table of 2^12 buckets per stream.

STATIC_LUT_BITS = 12


@nb.njit(nb.int64(nb.int64[::1], nb.int64, nb.int32[::1], nb.int32[::1]), cache=True, nogil=True)
def static_table(weights, bits, freq, cum):
    """Quantise positive integer weights to frequencies summing to 2^bits (§5.8); 0, or -1 if
    the alphabet does not fit (every symbol needs a frequency of at least 1)."""
    a = weights.shape[0]
    m = np.int64(1) << bits
    if a < 1 or a >= m:
        return -1
    total = np.int64(0)
    for s in range(a):
        total += weights[s]
    spread = m - a
    used = np.int64(0)
    best = 0
    for s in range(a):
        f = 1 + (weights[s] * spread) // total
        freq[s] = f
        used += f
        if f > freq[best]:
            best = s
    freq[best] += m - used
    _cumulate(freq, cum, a)
    return 0


@nb.njit(nb.int64(nb.int32[::1], nb.int32[::1], nb.int32[::1], nb.int64, nb.uint32[::1]), cache=True, nogil=True)
def static_rans_encode(symbols, freq, cum, bits, words):
    """Encode symbols (each < len(freq)) with two interleaved states (one below
    STATIC_TWO_STATES_MIN symbols); returns the word count (0 for no symbol), words in decoding
    order: state 0 (high, low), [state 1 (high, low)], ..."""
    n = symbols.shape[0]
    if n == 0:
        return 0
    two = n >= STATIC_TWO_STATES_MIN
    e0 = RANS_L
    e1 = RANS_L
    count = 0
    for i in range(n - 1, -1, -1):
        s = symbols[i]
        if two and i & 1:
            e1, count = _rans_put(e1, freq[s], cum[s], bits, words, count)
        else:
            e0, count = _rans_put(e0, freq[s], cum[s], bits, words, count)
    if two:
        count = _put_state(e1, words, count)
    count = _put_state(e0, words, count)
    _reverse(words, count)
    return count


@nb.njit(cache=True, nogil=True, inline="always")
def _static_step(x, freq, cum, lut, shift, mask, ub):
    """Decode one symbol from state x: (symbol, state before refill)."""
    slot = np.int64(x & mask)
    s = np.int64(lut[slot >> shift])
    while cum[s + 1] <= slot:
        s += 1
    return s, np.uint64(freq[s]) * (x >> ub) + np.uint64(slot - cum[s])


@nb.njit(nb.int64(nb.uint32[::1], nb.int32[::1], nb.int32[::1], nb.int64, nb.int32[::1]), cache=True, nogil=True)
def static_rans_decode(words, freq, cum, bits, out):
    """Inverse of static_rans_encode (the table from static_table); 0, or -1 on a bad stream."""
    n = out.shape[0]
    n_words = words.shape[0]
    if n == 0:
        return 0 if n_words == 0 else -1
    two = n >= STATIC_TWO_STATES_MIN
    pos = 4 if two else 2
    if n_words < pos:
        return -1
    a = freq.shape[0]
    shift = bits - STATIC_LUT_BITS
    bucket = (np.int64(1) << shift) - 1
    lut = np.empty(1 << STATIC_LUT_BITS, dtype=np.int32)
    for s in range(a):
        for j in range((np.int64(cum[s]) + bucket) >> shift, (np.int64(cum[s + 1]) + bucket) >> shift):
            lut[j] = s
    wpad = np.zeros(n_words + 1, dtype=np.uint32)
    wpad[:n_words] = words
    top = np.uint64(1) << np.uint64(63)
    x0 = (np.uint64(words[0]) << np.uint64(32)) | np.uint64(words[1])
    x1 = RANS_L
    if two:
        x1 = (np.uint64(words[2]) << np.uint64(32)) | np.uint64(words[3])
    if x0 < RANS_L or x0 >= top or x1 < RANS_L or x1 >= top:
        return -1
    ub = np.uint64(bits)
    mask = np.uint64((np.int64(1) << bits) - 1)
    if not two:
        for i in range(n):
            s0, x0 = _static_step(x0, freq, cum, lut, shift, mask, ub)
            x0, pos = _renorm(x0, wpad, pos, n_words)
            out[i] = s0
    for i in range(0, n - 1 if two else 0, 2):
        if pos > n_words:  # a refill read past the stream: it is inconsistent, stop early
            return -1
        s0, x0 = _static_step(x0, freq, cum, lut, shift, mask, ub)
        x0, pos = _renorm(x0, wpad, pos, n_words)
        s1, x1 = _static_step(x1, freq, cum, lut, shift, mask, ub)
        x1, pos = _renorm(x1, wpad, pos, n_words)
        out[i] = s0
        out[i + 1] = s1
    if two and n & 1:
        s0, x0 = _static_step(x0, freq, cum, lut, shift, mask, ub)
        x0, pos = _renorm(x0, wpad, pos, n_words)
        out[n - 1] = s0
    if x0 != RANS_L or x1 != RANS_L or pos != n_words:
        return -1
    return 0


@nb.njit(nb.int64(nb.int32[::1], nb.uint8[::1], nb.int64, nb.int64, nb.uint64[::1]), cache=True, nogil=True)
def golomb_combine(quotients, raw, width, escape, out):
    """out[i] = quotients[i] << width | the i-th ``width``-bit remainder of ``raw`` (§5.1, packed
    LSB-first; ``raw`` holds enough bytes); returns how many quotients are the escape."""
    n_escaped = 0
    bitpos = 0
    w = np.uint64(width)
    for i in range(quotients.shape[0]):
        q = quotients[i]
        if q == escape:
            n_escaped += 1
        r, bitpos = _raw_take(raw, bitpos, width)
        out[i] = (np.uint64(q) << w) | r
    return n_escaped


@nb.njit(nb.int64(nb.int32[::1], nb.int64[::1], nb.int64[::1], nb.int64[::1]), cache=True, nogil=True)
def ranks_to_symbols(ranks, used, counts, out):
    """out[i] = used[ranks[i]], checking that rank r occurs exactly counts[r] times (§5.5); 0 or -1."""
    seen = np.zeros(used.shape[0], dtype=np.int64)
    for i in range(ranks.shape[0]):
        r = ranks[i]
        seen[r] += 1
        out[i] = used[r]
    for r in range(used.shape[0]):
        if seen[r] != counts[r]:
            return -1
    return 0
