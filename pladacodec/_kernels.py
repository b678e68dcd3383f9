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

__all__ = [
    "bitmap_from_indices",
    "indices_from_bitmap",
    "pack_bits",
    "unpack_bits",
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


@_jit(nb.void(nb.uint8[::1], nb.int64, nb.uint64[::1]))
def unpack_bits(data, width, out):
    """Inverse of :func:`pack_bits`; ``data`` must hold enough bytes."""
    bitpos = 0
    for i in range(out.shape[0]):
        v = np.uint64(0)
        got = 0
        while got < width:
            byte_index = bitpos >> 3
            offset = bitpos & 7
            take = min(8 - offset, width - got)
            chunk = (np.uint64(data[byte_index]) >> np.uint64(offset)) & np.uint64((1 << take) - 1)
            v |= chunk << np.uint64(got)
            got += take
            bitpos += take
        out[i] = v


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
# Models are adaptive frequency tables, one per context, rebuilt from integer counts
# on a fixed schedule (after 1, 2, 4, ... 1024 symbols, then every 1024), so the
# encoder and decoder hold bit-identical tables on every platform.

RANS_BITS = 12
RANS_M = 1 << RANS_BITS
RANS_L = np.uint64(1) << np.uint64(31)
MODEL_PRIOR = 8  # count weight of one observation relative to the +1 every symbol gets
REBUILD_STEP = 1024
HALVE_AT = 1 << 16


@nb.njit(cache=True, nogil=True)
def _model_new(n_ctx, n_sym):
    counts = np.zeros((n_ctx, n_sym), dtype=np.int32)
    seen = np.zeros(n_ctx, dtype=np.int64)
    nxt = np.ones(n_ctx, dtype=np.int64)
    freq = np.zeros((n_ctx, n_sym), dtype=np.int32)
    cum = np.zeros((n_ctx, n_sym), dtype=np.int32)
    lut = np.zeros((n_ctx, RANS_M), dtype=np.uint8)  # every alphabet has <= 256 symbols
    for c in range(n_ctx):
        _model_rebuild(counts, freq, cum, lut, c)
    return counts, seen, nxt, freq, cum, lut


@nb.njit(cache=True, nogil=True)
def _model_rebuild(counts, freq, cum, lut, c):
    n_sym = counts.shape[1]
    total = np.int64(n_sym)
    for s in range(n_sym):
        total += np.int64(counts[c, s]) * MODEL_PRIOR
    spread = RANS_M - n_sym
    used = 0
    best = 0
    for s in range(n_sym):
        f = 1 + ((np.int64(counts[c, s]) * MODEL_PRIOR + 1) * spread) // total
        freq[c, s] = f
        used += f
        if f > freq[c, best]:
            best = s
    freq[c, best] += RANS_M - used
    start = 0
    for s in range(n_sym):
        cum[c, s] = start
        for j in range(start, start + freq[c, s]):
            lut[c, j] = np.uint8(s)
        start += freq[c, s]


@nb.njit(cache=True, nogil=True)
def _model_update(counts, seen, nxt, freq, cum, lut, c, s):
    counts[c, s] += 1
    seen[c] += 1
    if seen[c] >= nxt[c]:
        total = 0
        for j in range(counts.shape[1]):
            total += counts[c, j]
        if total >= HALVE_AT:
            for j in range(counts.shape[1]):
                counts[c, j] = (counts[c, j] + 1) >> 1
        _model_rebuild(counts, freq, cum, lut, c)
        nxt[c] = nxt[c] * 2 if nxt[c] < REBUILD_STEP else nxt[c] + REBUILD_STEP


@nb.njit(cache=True, nogil=True)
def _rans_flush(starts, freqs, n, words):
    """Encode recorded symbols in reverse; returns words in decoding order (count via return)."""
    x = RANS_L
    count = 0
    for i in range(n - 1, -1, -1):
        f = np.uint64(freqs[i])
        x_max = ((RANS_L >> np.uint64(RANS_BITS)) << np.uint64(32)) * f
        if x >= x_max:
            words[count] = np.uint32(x & np.uint64(0xFFFFFFFF))
            count += 1
            x >>= np.uint64(32)
        x = ((x // f) << np.uint64(RANS_BITS)) + (x % f) + np.uint64(starts[i])
    words[count] = np.uint32(x & np.uint64(0xFFFFFFFF))
    words[count + 1] = np.uint32(x >> np.uint64(32))
    count += 2
    # reverse so the decoder reads forward
    for i in range(count // 2):
        tmp = words[i]
        words[i] = words[count - 1 - i]
        words[count - 1 - i] = tmp
    return count


@nb.njit(cache=True, nogil=True)
def _put_bits(raw, bitpos, value, width):
    while width > 0:
        offset = bitpos & 7
        take = min(8 - offset, width)
        raw[bitpos >> 3] |= np.uint8((value & np.uint64((1 << take) - 1)) << np.uint64(offset))
        value >>= np.uint64(take)
        width -= take
        bitpos += take
    return bitpos


@nb.njit(cache=True, nogil=True)
def _get_bits(raw, bitpos, width):
    v = np.uint64(0)
    got = 0
    while got < width:
        offset = bitpos & 7
        take = min(8 - offset, width - got)
        chunk = (np.uint64(raw[bitpos >> 3]) >> np.uint64(offset)) & np.uint64((1 << take) - 1)
        v |= chunk << np.uint64(got)
        got += take
        bitpos += take
    return v


# --- gap tokens -----------------------------------------------------------------------------

GAP_EXACT = 8  # skips below this are their own token
GAP_SUB = 2  # mantissa bits folded into the token above that
GAP_MAX_EXP = 40
GAP_TOKENS = GAP_EXACT + (GAP_MAX_EXP - 2) * (1 << GAP_SUB)
GAP_MAGS = GAP_EXACT + GAP_MAX_EXP - 2


@nb.njit(cache=True, nogil=True)
def _bitlen(v):
    """Number of significant bits of a uint64 (0 for 0), by binary search."""
    n = 0
    if v >= np.uint64(1) << np.uint64(32):
        v >>= np.uint64(32)
        n += 32
    if v >= np.uint64(1) << np.uint64(16):
        v >>= np.uint64(16)
        n += 16
    if v >= np.uint64(1) << np.uint64(8):
        v >>= np.uint64(8)
        n += 8
    if v >= np.uint64(1) << np.uint64(4):
        v >>= np.uint64(4)
        n += 4
    if v >= np.uint64(1) << np.uint64(2):
        v >>= np.uint64(2)
        n += 2
    if v >= np.uint64(1) << np.uint64(1):
        v >>= np.uint64(1)
        n += 1
    return n + np.int64(v)


@nb.njit(cache=True, nogil=True)
def _gap_token(v):
    if v < GAP_EXACT:
        return np.int64(v), np.int64(0)
    e = _bitlen(v) - 1
    top = np.int64((v >> np.uint64(e - GAP_SUB)) & np.uint64((1 << GAP_SUB) - 1))
    return GAP_EXACT + (e - 3) * (1 << GAP_SUB) + top, np.int64(e - GAP_SUB)


@nb.njit(cache=True, nogil=True)
def _gap_mag(tok):
    if tok < GAP_EXACT:
        return tok
    return GAP_EXACT + (tok - GAP_EXACT) // (1 << GAP_SUB)


GAP_WINDOW = 16  # skips summed for the local-density context
GAP_LEVELS = 40
GAP_MAG1_LEVELS = 8
GAP_CONTEXTS = GAP_LEVELS * GAP_MAG1_LEVELS


@nb.njit(cache=True, nogil=True)
def _gap_ctx(mag1, window_sum):
    # local density: half-octaves of the sum of the last GAP_WINDOW skips
    s = window_sum + np.uint64(1)
    b = _bitlen(s)
    level = 2 * b
    if b >= 2:
        level += np.int64((s >> np.uint64(b - 2)) & np.uint64(1))
    if level >= GAP_LEVELS:
        level = GAP_LEVELS - 1
    m = mag1
    if m >= GAP_MAG1_LEVELS:
        m = GAP_MAG1_LEVELS - 1
    return level * GAP_MAG1_LEVELS + m


@nb.njit(cache=True, nogil=True)
def _gap_push(ring, i, v, window_sum):
    slot = i % GAP_WINDOW
    window_sum = window_sum - ring[slot] + v
    ring[slot] = v
    return window_sum


@nb.njit(nb.int64(nb.uint64[::1], nb.uint32[::1], nb.uint8[::1], nb.int64[::1]), cache=True, nogil=True)
def ctx_gaps_encode(skips, words, raw, out_sizes):
    """Context-coded gap tokens + raw low bits; out_sizes = [n_words, n_raw_bits]."""
    n = skips.shape[0]
    counts, seen, nxt, freq, cum, lut = _model_new(GAP_CONTEXTS, GAP_TOKENS)
    starts = np.empty(n, dtype=np.int32)
    freqs = np.empty(n, dtype=np.int32)
    mag1 = 0
    ring = np.zeros(GAP_WINDOW, dtype=np.uint64)
    window_sum = np.uint64(0)
    bitpos = 0
    for i in range(n):
        v = skips[i]
        tok, nraw = _gap_token(v)
        c = _gap_ctx(mag1, window_sum)
        starts[i] = cum[c, tok]
        freqs[i] = freq[c, tok]
        _model_update(counts, seen, nxt, freq, cum, lut, c, tok)
        if nraw:
            bitpos = _put_bits(raw, bitpos, v, nraw)
        mag1 = _gap_mag(tok)
        window_sum = _gap_push(ring, i, v, window_sum)
    out_sizes[0] = _rans_flush(starts, freqs, n, words)
    out_sizes[1] = bitpos
    return 0


@nb.njit(nb.int64(nb.uint32[::1], nb.uint8[::1], nb.uint64[::1]), cache=True, nogil=True)
def ctx_gaps_decode(words, raw, out):
    """Inverse of ctx_gaps_encode. Returns raw bits consumed, or -1 on a bad stream."""
    n = out.shape[0]
    n_words = words.shape[0]
    if n_words < 2:
        return -1
    x = (np.uint64(words[0]) << np.uint64(32)) | np.uint64(words[1])
    pos = 2
    if x < RANS_L or x >= (np.uint64(1) << np.uint64(63)):
        return -1
    counts, seen, nxt, freq, cum, lut = _model_new(GAP_CONTEXTS, GAP_TOKENS)
    mask = np.uint64(RANS_M - 1)
    raw_bits = raw.shape[0] * 8
    mag1 = 0
    ring = np.zeros(GAP_WINDOW, dtype=np.uint64)
    window_sum = np.uint64(0)
    bitpos = 0
    for i in range(n):
        c = _gap_ctx(mag1, window_sum)
        slot = np.int64(x & mask)
        tok = np.int64(lut[c, slot])
        x = np.uint64(freq[c, tok]) * (x >> np.uint64(RANS_BITS)) + np.uint64(slot - cum[c, tok])
        if x < RANS_L:
            if pos >= n_words:
                return -1
            x = (x << np.uint64(32)) | np.uint64(words[pos])
            pos += 1
        _model_update(counts, seen, nxt, freq, cum, lut, c, tok)
        if tok < GAP_EXACT:
            v = np.uint64(tok)
        else:
            e = (tok - GAP_EXACT) // (1 << GAP_SUB) + 3
            top = (tok - GAP_EXACT) % (1 << GAP_SUB)
            nraw = e - GAP_SUB
            if bitpos + nraw > raw_bits:
                return -1
            low = _get_bits(raw, bitpos, nraw)
            bitpos += nraw
            v = (np.uint64(1) << np.uint64(e)) | (np.uint64(top) << np.uint64(nraw)) | low
        out[i] = v
        mag1 = _gap_mag(tok)
        window_sum = _gap_push(ring, i, v, window_sum)
    if x != RANS_L or pos != n_words:
        return -1
    return bitpos


# --- one coding step shared by encoders and decoders -----------------------------------------
# st = [x (decoder state), m (encoder: symbols recorded / decoder: next word), error flag]


@nb.njit(cache=True, nogil=True)
def _code(model, c, s, decoding, words, st, starts, freqs):
    """Record symbol s (encoding) or decode one (decoding) in context c; adapt the model."""
    counts, seen, nxt, freq, cum, lut = model
    if decoding:
        x = st[0]
        slot = np.int64(x & np.uint64(RANS_M - 1))
        s = np.int64(lut[c, slot])
        x = np.uint64(freq[c, s]) * (x >> np.uint64(RANS_BITS)) + np.uint64(slot - cum[c, s])
        if x < RANS_L:
            pos = np.int64(st[1])
            if pos >= words.shape[0]:
                st[2] = 1
                return 0
            x = (x << np.uint64(32)) | np.uint64(words[pos])
            st[1] = pos + 1
        st[0] = x
    else:
        m = np.int64(st[1])
        starts[m] = cum[c, s]
        freqs[m] = freq[c, s]
        st[1] = m + 1
    _model_update(counts, seen, nxt, freq, cum, lut, c, s)
    return s


@nb.njit(cache=True, nogil=True)
def _start_decoder(words, st):
    if words.shape[0] < 2:
        return False
    x = (np.uint64(words[0]) << np.uint64(32)) | np.uint64(words[1])
    if x < RANS_L or x >= (np.uint64(1) << np.uint64(63)):
        return False
    st[0] = x
    st[1] = 2
    return True


@nb.njit(cache=True, nogil=True)
def _finish_decoder(words, st):
    return st[2] == 0 and st[0] == RANS_L and np.int64(st[1]) == words.shape[0]


# --- labels (FORMAT.md §6.2) --------------------------------------------------------------------
# Per entry a candidate symbol r: 0 = the mode D of the last LABEL_WINDOW labels (ties: the
# most recent), 1 / 2 = the most / second most recent distinct labels other than D,
# 3 = another label, then coded explicitly: one token (C <= 256) or a high part and a low
# byte in the context of the high part.  r is coded in the context of the entry's gap
# magnitude, the mode's strength in the window, and whether the previous r was 0.

LABEL_WINDOW = 16
LABEL_RECENT = 4
LABEL_CANDIDATES = 3
LABEL_MAG_LEVELS = 12
LABEL_STRENGTH_LEVELS = 4
LABEL_CONTEXTS = LABEL_MAG_LEVELS * LABEL_STRENGTH_LEVELS * 2


@nb.njit(cache=True, nogil=True)
def _labels_run(labels, skips, n_classes, decoding, words, st, starts, freqs):
    """The label model, shared by encoder and decoder; returns False on a bad stream."""
    n = labels.shape[0]
    split = n_classes > 256
    n_hi = (n_classes + 255) // 256 if split else 1
    n_lo = 256 if split else n_classes
    r_model = _model_new(LABEL_CONTEXTS, LABEL_CANDIDATES + 1)
    hi_model = _model_new(1, n_hi)
    lo_model = _model_new(n_hi, n_lo)
    window = np.full(LABEL_WINDOW, -1, dtype=np.int64)
    in_window = np.zeros(n_classes, dtype=np.int32)
    recent = np.full(LABEL_RECENT, -1, dtype=np.int64)
    cand = np.full(LABEL_CANDIDATES, -1, dtype=np.int64)
    mode = -1
    mode_count = 0
    prev_hit = 0
    for i in range(n):
        # candidates: the mode, then recent distinct labels other than it
        cand[0] = mode
        j = 1
        for t in range(LABEL_RECENT):
            if j < LABEL_CANDIDATES and recent[t] >= 0 and recent[t] != mode:
                cand[j] = recent[t]
                j += 1
        while j < LABEL_CANDIDATES:
            cand[j] = -1
            j += 1
        tok, _ = _gap_token(skips[i])
        mag = _gap_mag(tok)
        if mag >= LABEL_MAG_LEVELS:
            mag = LABEL_MAG_LEVELS - 1
        strength = (mode_count - 1) * LABEL_STRENGTH_LEVELS // LABEL_WINDOW if mode_count > 0 else 0
        c = (mag * LABEL_STRENGTH_LEVELS + strength) * 2 + prev_hit
        r = LABEL_CANDIDATES
        if not decoding:
            label = labels[i]
            for t in range(LABEL_CANDIDATES):
                if cand[t] == label:
                    r = t
                    break
        r = _code(r_model, c, r, decoding, words, st, starts, freqs)
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
                hi = _code(hi_model, 0, hi, decoding, words, st, starts, freqs)
            lo = _code(lo_model, hi, lo, decoding, words, st, starts, freqs)
            label = (hi << 8) + lo
            if label >= n_classes:
                return False
        if st[2]:
            return False
        if decoding:
            labels[i] = label
        prev_hit = 1 if r == 0 else 0
        # recent distinct labels, most recent first
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
        # the window and its mode
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
    return True


@nb.njit(nb.int64(nb.int64[::1], nb.uint64[::1], nb.int64, nb.uint32[::1]), cache=True, nogil=True)
def ctx_labels_encode(labels, skips, n_classes, words):
    """Context-coded labels (skips give the gap context); returns the word count."""
    n = labels.shape[0]
    starts = np.empty(3 * n, dtype=np.int32)
    freqs = np.empty(3 * n, dtype=np.int32)
    st = np.zeros(3, dtype=np.uint64)
    _labels_run(labels, skips, n_classes, False, words, st, starts, freqs)
    return _rans_flush(starts, freqs, np.int64(st[1]), words)


@nb.njit(nb.int64(nb.uint32[::1], nb.uint64[::1], nb.int64, nb.int64[::1]), cache=True, nogil=True)
def ctx_labels_decode(words, skips, n_classes, out):
    """Inverse of ctx_labels_encode; returns 0, or -1 on a bad stream."""
    st = np.zeros(3, dtype=np.uint64)
    dummy = np.zeros(0, dtype=np.int32)
    if not _start_decoder(words, st):
        return -1
    if not _labels_run(out, skips, n_classes, True, words, st, dummy, dummy):
        return -1
    if not _finish_decoder(words, st):
        return -1
    return 0
