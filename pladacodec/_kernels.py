"""Numba kernels: the only module of pladacodec that imports numba.

Kernels are private and see only contiguous 1-D arrays of fixed dtypes; the
Python wrappers in :mod:`pladacodec._coders` validate dtype, range and
contiguity before calling in (numba does not bounds-check).  Every entry point
has an explicit signature, so a wrong dtype fails loudly instead of compiling a
new specialisation.  Nothing compiles at import: an entry point compiles on its
first call (``cache=True``: once per machine), so a process pays only for the
kernels it uses.  Faster still, :func:`build_aot` compiles every entry point ahead
of time into an extension module next to this file (``scripts/setup.sh`` does):
an entry point then loads from it instead of compiling, as long as the module was
built from this very source (its stamp holds a digest of this file, ``_spec.py``
and the numba version; anything else and the kernels compile as before).
``PLADACODEC_AOT=0`` turns the module off; NUMBA_BOUNDSCHECK and NUMBA_DISABLE_JIT
do too (they ask for the checked or the pure-Python kernels).

A kernel never raises: it returns a status code (0 = success, negative =
the input was inconsistent) that the wrapper turns into a ``PladaError``.

Every constant that changes the bytes comes from :mod:`pladacodec._spec`; the
ones defined here (slot-table sizes) only change how fast a table is searched.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import threading
from pathlib import Path

import numba as nb
import numpy as np

from . import _spec as S

_JIT_OPTIONS = dict(nogil=True, cache=True)


class _LazyKernel:
    """An entry point compiled for its signature on first call, not at import."""

    def __init__(self, py_func, signature):
        self.py_func = py_func
        self._signature = signature
        self._dispatcher = None
        functools.update_wrapper(self, py_func)
        _ENTRY_POINTS.append(self)

    def compile(self):
        """Compile now (or load from numba's cache); returns the dispatcher.  One thread compiles,
        others wait: blocks decode on threads, and two compilations of one kernel at once crash
        numba."""
        with _COMPILE_LOCK:
            if self._dispatcher is None:
                aot = _aot_module()
                self._dispatcher = getattr(aot, self.py_func.__name__, None) if aot is not None else None
                if self._dispatcher is None:
                    self._dispatcher = nb.njit(self._signature, **_JIT_OPTIONS)(self.py_func)
        return self._dispatcher

    def __call__(self, *args):
        dispatcher = self._dispatcher
        if dispatcher is None:
            dispatcher = self.compile()
        return dispatcher(*args)


_ENTRY_POINTS: list[_LazyKernel] = []
_COMPILE_LOCK = threading.RLock()


def compile_all() -> int:
    """Compile every entry point into numba's cache (or load it from the ahead-of-time module);
    returns how many.  Under NUMBA_DISABLE_JIT there is nothing to do."""
    for kernel in _ENTRY_POINTS:
        kernel.compile()
    return len(_ENTRY_POINTS)


# --- ahead-of-time compilation ----------------------------------------------------------------

AOT_MODULE = "_kernels_aot"  # the extension module build_aot writes next to this file ...
AOT_STAMP = AOT_MODULE + ".json"  # ... and its stamp: the source digest it was built from


def source_digest() -> str:
    """What the kernels' machine code depends on: this file, the format constants, numba."""
    h = hashlib.sha256()
    for path in (Path(__file__), Path(S.__file__)):
        h.update(path.read_bytes())
    h.update(nb.__version__.encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _aot_module():
    """The ahead-of-time module if it was built from this source and is not turned off, else None
    (looked up once per process, by the first entry point that compiles, under its lock)."""
    return _load_aot()


def _load_aot():
    if os.environ.get("PLADACODEC_AOT", "1") == "0" or nb.config.BOUNDSCHECK or nb.config.DISABLE_JIT:
        return None
    try:
        stamp = json.loads(Path(__file__).with_name(AOT_STAMP).read_text())
        if stamp.get("digest") != source_digest():
            return None  # built from other sources: compile instead
        return importlib.import_module(f"{__package__}.{AOT_MODULE}")
    except (OSError, ValueError, ImportError):
        return None


def build_aot(output_dir=None, cpu: str = "host") -> Path:
    """Compile every entry point ahead of time (numba.pycc) into ``_kernels_aot`` in
    ``output_dir`` (default: next to this file, where entry points look for it), with its stamp;
    returns the module's path.  ``cpu``: LLVM's target ("host": this machine's, as the JIT;
    "" for a generic x86-64 build that runs anywhere).  The compiled functions release the GIL
    (as the JIT's ``nogil=True``), so blocks still decode on parallel threads.  Needs numba.pycc
    (pending deprecation in numba; if it goes, the kernels simply compile as before) and a C
    compiler."""
    import warnings

    with warnings.catch_warnings():  # pycc is "pending deprecation" with a replacement to come
        warnings.simplefilter("ignore", nb.errors.NumbaPendingDeprecationWarning)
        import numba.pycc.compiler as pycc_compiler
        from numba.pycc import CC

    out = Path(output_dir) if output_dir is not None else Path(__file__).parent
    stamp = out / AOT_STAMP
    stamp.unlink(missing_ok=True)  # a half-built module is never trusted

    class _NoGilFlags(pycc_compiler.Flags):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.release_gil = True

    cc = CC(AOT_MODULE)
    cc.output_dir = str(out)
    cc.target_cpu = cpu
    cc.verbose = False
    for kernel in _ENTRY_POINTS:
        cc.export(kernel.py_func.__name__, kernel._signature)(kernel.py_func)
    original = pycc_compiler.Flags
    pycc_compiler.Flags = _NoGilFlags
    try:
        cc.compile()
    finally:
        pycc_compiler.Flags = original
    built = out / Path(cc.output_file).name
    stamp.write_text(json.dumps({"digest": source_digest(), "cpu": cpu, "numba": nb.__version__}) + "\n")
    return built


def _jit(signature=None, inline=False):
    """The one place that decides how kernels are compiled.  With a ``signature``: an entry point
    called from Python, compiled lazily for exactly that signature.  Without: a helper that
    kernels call, compiled once per argument types (callers pass non-literal arguments, so that
    is once); LLVM inlines the small ones (the rANS step, the symbol search) into their callers.
    ``inline``: numba itself inlines the helper into every caller, which saves the reference
    counting of its array arguments on every call (only where a call is frequent and cheap)."""

    def wrap(fn):
        if signature is not None:
            return fn if nb.config.DISABLE_JIT else _LazyKernel(fn, signature)
        return nb.njit(inline="always" if inline else "never", **_JIT_OPTIONS)(fn)

    return wrap


u64, i64, i32, u32, u8 = nb.uint64, nb.int64, nb.int32, nb.uint32, nb.uint8

RANS_L = np.uint64(S.RANS_L)
ADAPTIVE_M = 1 << S.ADAPTIVE_BITS
ADAPTIVE_MASK = np.uint64(ADAPTIVE_M - 1)
# Slot tables (speed only): a table built with one decodes through 256 buckets (bucket
# ``slot >> LUT_SHIFT``), then steps forward over the symbols starting inside the bucket;
# others by binary search.  256 bytes a context stay in cache; every rebuild rewrites them.
LUT_BITS = 8
LUT_SIZE = 1 << LUT_BITS
LUT_SHIFT = S.ADAPTIVE_BITS - LUT_BITS
DRIFT_LUT_STEP = 64  # drift tables rebuilt every >= this many labels (h >= 11) keep a slot table
STATIC_LUT_BITS = 12


# --- bit packing, gaps --------------------------------------------------------------------


@_jit(nb.void(u64[::1], i64, u8[::1]))
def pack_bits(values, width, out):
    """Pack the low ``width`` bits of each value, LSB-first, into ``out`` (zeroed,
    ceil(len * width / 8) bytes; width <= 56)."""
    bitpos = 0
    for i in range(values.shape[0]):
        bitpos = _raw_put(out, bitpos, values[i], width)


@_jit(nb.void(u64[::1], u64, u64[::1]))
def gaps_from_indices(indices, base, out):
    """out[i] = indices[i] - previous - 1 with previous = base - 1 initially (so out >= 0)."""
    prev = base
    for i in range(indices.shape[0]):
        out[i] = indices[i] - prev
        prev = indices[i] + np.uint64(1)


@_jit(i64(u64[::1], u64, u64, u64[::1]))
def indices_from_gaps(gaps, base, limit, out):
    """Inverse of :func:`gaps_from_indices`, checking every index stays below ``limit``.
    Returns 0, or -(i + 1) for the first entry i that would reach ``limit`` (each step is
    compared before it is added, so nothing overflows)."""
    nxt = base
    for i in range(gaps.shape[0]):
        g = gaps[i]
        if nxt >= limit or g >= limit - nxt:
            return -(i + 1)
        idx = nxt + g
        out[i] = idx
        nxt = idx + np.uint64(1)
    return 0


@_jit(i64(i32[::1], u8[::1], i64, i64, u64[::1]))
def golomb_combine(quotients, raw, width, escape, out):
    """out[i] = quotients[i] << width | the i-th ``width``-bit remainder of ``raw`` (§5.1);
    returns how many quotients are the escape."""
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


@_jit(i64(i32[::1], i64[::1], i64[::1], i64[::1]))
def ranks_to_symbols(ranks, used, counts, out):
    """out[i] = used[ranks[i]], checking that rank r occurs exactly counts[r] times (§6.1); 0 or -1."""
    seen = np.zeros(used.shape[0], dtype=np.int64)
    for i in range(ranks.shape[0]):
        r = ranks[i]
        seen[r] += 1
        out[i] = used[r]
    for r in range(used.shape[0]):
        if seen[r] != counts[r]:
            return -1
    return 0


# --- shared helpers -------------------------------------------------------------------------

if nb.config.DISABLE_JIT:

    def _bitlen(v):
        """Number of significant bits of a uint64 (0 for 0)."""
        return int(v).bit_length()

else:
    from numba.cpython.unsafe.numbers import leading_zeros as _leading_zeros

    @_jit()
    def _bitlen(v):
        """Number of significant bits of a uint64 (0 for 0): one count-leading-zeros instruction."""
        return 64 - np.int64(_leading_zeros(np.uint64(v)))


@_jit()
def _raw_take(raw, bitpos, width):
    """The ``width`` bits at ``bitpos`` of a raw-bit area (LSB-first); returns (value, new bitpos)."""
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


@_jit()
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


@_jit()
def _cumulate(freq, cum, n):
    """cum[s] = freq[0] + ... + freq[s - 1] for s <= n (cum[n] = the table's total)."""
    start = 0
    for s in range(n):
        cum[s] = start
        start += freq[s]
    cum[n] = start


@_jit()
def _rans_put(x, f, start, bits, words, count):
    """rANS-encode one symbol (frequency f, cumulative start, over 2^bits) into state x, first
    emitting the low word when x would overflow (§7.1); returns (state, word count)."""
    f = np.uint64(f)
    if x >= ((RANS_L >> np.uint64(bits)) << np.uint64(32)) * f:
        words[count] = np.uint32(x & np.uint64(0xFFFFFFFF))
        count += 1
        x >>= np.uint64(32)
    return ((x // f) << np.uint64(bits)) + (x % f) + np.uint64(start), count


@_jit()
def _rans_take(x, f, start, slot, bits):
    """The decoder's half of a symbol (§7.1): the state after the symbol [start, start + f) that
    holds ``slot``, before the refill."""
    return np.uint64(f) * (x >> np.uint64(bits)) + np.uint64(slot - start)


@_jit()
def _renorm(x, wpad, pos, n_words):
    """Refill the state from ``wpad`` (the words plus one zero) without a branch; a read past the
    words moves pos beyond n_words, which the end-of-stream check rejects."""
    refilled = (x << np.uint64(32)) | np.uint64(wpad[min(pos, n_words)])
    need = x < RANS_L
    return (refilled if need else x), pos + np.int64(need)


@_jit()
def _put_state(x, words, count):
    """Flush a final state as two words (low, then high: high first once reversed)."""
    words[count] = np.uint32(x & np.uint64(0xFFFFFFFF))
    words[count + 1] = np.uint32(x >> np.uint64(32))
    return count + 2


@_jit()
def _reverse(words, count):
    """Words were emitted last-symbol first; the decoder reads them in the opposite order."""
    for i in range(count // 2):
        tmp = words[i]
        words[i] = words[count - 1 - i]
        words[count - 1 - i] = tmp


@_jit()
def _search(cum, c, n_sym, slot):
    """The symbol s of context c with cum[c, s] <= slot < cum[c, s + 1], by binary search."""
    s = 0
    top = n_sym - 1
    while s < top:
        mid = (s + top + 1) >> 1
        if cum[c, mid] <= slot:
            s = mid
        else:
            top = mid - 1
    return s


@_jit()
def _find(cum, lut, c, slot):
    """The symbol of context c whose range holds ``slot``, through the context's slot table."""
    s = np.int64(lut[c, slot >> LUT_SHIFT])
    while cum[c, s + 1] <= slot:
        s += 1
    return s


# --- adaptive tables (FORMAT.md §7.2) ---------------------------------------------------------


@_jit()
def _halve(counts, n):
    """Halve the first n counts, rounding up (``(c + 1) >> 1``, §7.2 and §6.5); their new sum."""
    total = np.int64(0)
    for s in range(n):
        counts[s] = (counts[s] + 1) >> 1
        total += counts[s]
    return total


@_jit()
def _model_new(n_ctx, n_sym, first, with_lut):
    """Adaptive tables for n_ctx contexts over n_sym symbols; a context is first built when its
    ``seen`` reaches ``first`` (0: on first use).  Without ``with_lut`` the slot table is a
    placeholder (a small block does not pay for tables it will not use)."""
    counts = np.zeros((n_ctx, n_sym), dtype=np.int32)
    seen = np.zeros(n_ctx, dtype=np.int64)
    nxt = np.full(n_ctx, first, dtype=np.int64)
    # A context's tables are written in full by its first rebuild before anything reads them.
    freq = np.empty((n_ctx, n_sym), dtype=np.int32)
    cum = np.empty((n_ctx, n_sym + 1), dtype=np.int32)
    lut = np.empty((n_ctx if with_lut else 1, LUT_SIZE), dtype=np.uint8)  # alphabets have <= 256 symbols
    return counts, seen, nxt, freq, cum, lut


def _quantise(counts, seen, nxt, freq, cum, c, pfreq, pc, n_sym, rule):
    """Quantise context c's counts (plus the prior table pfreq[pc], worth ``strength``
    observations, if pc >= 0) to a table summing to 2^15 (§7.2).  ``rule`` = (strength, halve_at,
    step, young): without a prior, ``strength`` is the weight of one observation against the +1
    every symbol gets; counts halve first when they sum to ``halve_at``; the next rebuild point
    is ``young`` after the build on first use, then doubles up to ``step``, then grows by it."""
    strength, halve_at, step, young = rule[0], rule[1], rule[2], rule[3]
    m = np.int64(ADAPTIVE_M)
    total = np.int64(0)
    for s in range(n_sym):
        total += np.int64(counts[c, s])
    if total >= halve_at:
        total = _halve(counts[c], n_sym)
    spread = m - n_sym
    if pc >= 0:
        denom = S.OBSERVATION_WEIGHT * m * (total + strength)
    else:
        denom = strength * total + n_sym
    used = 0
    best = 0
    for s in range(n_sym):
        if pc >= 0:
            w = S.OBSERVATION_WEIGHT * m * np.int64(counts[c, s]) + S.OBSERVATION_WEIGHT * strength * np.int64(pfreq[pc, s])
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
    seen_c = seen[c]
    if seen_c == 0:
        nxt[c] = young
    else:
        nxt[c] = seen_c * 2 if seen_c < step else seen_c + step


# The rebuild of a table without a slot table, inlined by numba where it is called: in
# _rebuild, and where tables are tiny and rebuilt often (the label rank contexts: 4 symbols,
# hundreds of rebuilds in a small block), so the call's fixed cost, about twice the rebuild's
# own work there, disappears.  (Inlining all of _rebuild, slot table included, at those four
# sites cost ~5 s of a cold compile.)
_rebuild_inline = _quantise if nb.config.DISABLE_JIT else _jit(inline=True)(_quantise)


@_jit()
def _rebuild(counts, seen, nxt, freq, cum, lut, c, pfreq, pc, with_lut, n_sym, rule):
    """:func:`_quantise`, then, ``with_lut``, the context's slot table.  (Callers pass
    non-literal arguments, so one compiled rebuild serves every call site.)"""
    _rebuild_inline(counts, seen, nxt, freq, cum, c, pfreq, pc, n_sym, rule)
    if with_lut:
        for s in range(n_sym):
            for j in range((cum[c, s] + (1 << LUT_SHIFT) - 1) >> LUT_SHIFT, (cum[c, s + 1] + (1 << LUT_SHIFT) - 1) >> LUT_SHIFT):
                lut[c, j] = np.uint8(s)


@_jit(inline=True)
def _code_step(decoding, x, f, start, slot, wpad, pos, n_words, starts, freqs, m):
    """One symbol of an adaptive stream (§7.2), range [start, start + f) of 2^15: the decoder
    takes it from the state (``slot``: the state's low bits, which found the symbol) and
    refills; the encoder records it for rans_flush.  Returns (x, pos, m)."""
    if decoding:
        x = _rans_take(x, f, start, slot, S.ADAPTIVE_BITS)
        x, pos = _renorm(x, wpad, pos, n_words)
    else:
        starts[m] = start
        freqs[m] = f
        m += 1
    return x, pos, m


@_jit()
def _rule(strength, young):
    """A rebuild rule of §7.2 as _rebuild takes it: (strength, halve at 2^16, step 1,024, young)."""
    return np.array([strength, S.HALVE_AT, S.REBUILD_STEP, young], dtype=np.int64)




@_jit(i64(i32[::1], i32[::1], i64, u32[::1]))
def rans_flush(starts, freqs, n, words):
    """Encode recorded symbols (over 2^15) in reverse from x = 2^31; returns the word count,
    words in decoding order (the final state first, high word first)."""
    x = RANS_L
    count = 0
    for i in range(n - 1, -1, -1):
        x, count = _rans_put(x, freqs[i], starts[i], S.ADAPTIVE_BITS, words, count)
    count = _put_state(x, words, count)
    _reverse(words, count)
    return count


@_jit()
def _stream_open(words, decoding):
    """(wpad, x, pos, n_words) to start the adaptive decoder on ``words``: the words plus one
    zero (see _renorm), the initial state (the first two words, high first), the next word and
    the word count; pos = n_words + 1 (past the stream, which the decoder's loop and end checks
    reject) if the stream cannot start.  An encoder starts at x = 2^31 and needs no words."""
    n_words = words.shape[0]
    wpad = np.zeros(n_words + 1 if decoding else 0, dtype=np.uint32)
    if not decoding:
        return wpad, RANS_L, 0, n_words
    if n_words < 2:
        return wpad, RANS_L, n_words + 1, n_words
    for i in range(n_words):  # a loop: a slice assignment compiles numba's string-formatting error path
        wpad[i] = words[i]
    x = (np.uint64(words[0]) << np.uint64(32)) | np.uint64(words[1])
    if x < RANS_L or x >= (np.uint64(1) << np.uint64(63)):
        return wpad, x, n_words + 1, n_words
    return wpad, x, 2, n_words


@_jit()
def _stream_close(decoding, x, pos, n_words, m, sizes):
    """A model kernel's end: sizes[0] <- the words used (decoding) or the symbols recorded
    (encoding); whether a decoded stream ended in the initial state with every word used."""
    sizes[0] = pos if decoding else m
    return not decoding or (x == RANS_L and pos == n_words)


@_jit()
def _folder_step(ends, f, at, v, i):
    """Entry i (skip v) lies at ``at + v``; move f to its folder.  Returns (whether entry i >= 1
    is in another folder than entry i - 1, f, the entry + 1).  ``ends[j]`` is the end of folder
    ``f0 + j`` (f0: the folder of the block's base); an entry at or past the last end (a bad
    stream) stays in the last folder."""
    x = at + v
    moved = False
    while f + 1 < ends.shape[0] and np.uint64(ends[f]) <= x:
        f += 1
        moved = True
    return moved and i > 0, f, x + np.uint64(1)


@_jit()
def _jump(i, v, window_sum):
    """Entry i (skip v) is a jump: v > 4 x the mean of the previous 16 skips + 8 (entries >= 16)."""
    return i >= S.GAP_WINDOW and v > np.uint64(S.BOUNDARY_FACTOR) * (window_sum // np.uint64(S.GAP_WINDOW)) + np.uint64(S.BOUNDARY_SLACK)


# --- gaps (FORMAT.md §5.2, §5.3) --------------------------------------------------------------
# A skip v becomes a token: v itself below GAP_EXACT, else its octave and the GAP_SUB bits below
# its top bit, with the bits under those sent raw.  The token is coded in context (density
# level, previous token's magnitude), whose prior is the level's parent, whose prior mixes a
# grandparent with the geometric law of the level's density.

GAP_CONTEXTS = S.GAP_LEVELS * S.GAP_MAG1_LEVELS


@_jit()
def _gap_mag(tok):
    if tok < S.GAP_EXACT:
        return tok
    return S.GAP_EXACT + (tok - S.GAP_EXACT) // (1 << S.GAP_SUB)


@_jit()
def _gap_level(window_sum):
    """The half-octave of S + 1 (S: the sum of the last 16 skips), capped."""
    s = window_sum + np.uint64(1)
    b = _bitlen(s)
    level = 2 * b
    if b >= 2:
        level += np.int64((s >> np.uint64(b - 2)) & np.uint64(1))
    return min(level, S.GAP_LEVELS - 1)


@_jit()
def _run_level(run_sum, run_n):
    """The half-octave of 16·S'/n + 1, from u = floor(4·(16·S' + n) / n) (no rounding of S')."""
    u = ((run_sum * np.uint64(S.GAP_WINDOW) + np.uint64(run_n)) << np.uint64(2)) // np.uint64(run_n)
    b = _bitlen(u)
    level = 2 * b + np.int64((u >> np.uint64(b - 2)) & np.uint64(1)) - 4
    return min(level, S.GAP_LEVELS - 1)


@_jit()
def _gap_token(v):
    if v < np.uint64(S.GAP_EXACT):
        return np.int64(v)
    e = _bitlen(v) - 1
    return S.GAP_EXACT + (e - 3) * (1 << S.GAP_SUB) + np.int64((v >> np.uint64(e - S.GAP_SUB)) & np.uint64((1 << S.GAP_SUB) - 1))


@_jit(i64(u64[::1]))
def gap_tokens_needed(skips):
    """1 + the largest token among ``skips`` (1 for no skips)."""
    top = np.uint64(0)
    for i in range(skips.shape[0]):
        if skips[i] > top:
            top = skips[i]
    return _gap_token(top) + 1


@_jit()
def _geo_survival(a, qpow):
    """q^a in Q31 as the truncated product of q^(2^j) over the set bits j of a (lowest first)."""
    result = np.int64(1) << S.GEO_ONE_BITS
    j = 0
    while a != 0:
        if a & 1:
            result = (result * qpow[j]) >> S.GEO_ONE_BITS
        a >>= 1
        j += 1
    return result


@_jit(nb.types.UniTuple(i64[:, ::1], 2)())
def geo_survivals():
    """surv(lo_t) and surv(lo_t + w_t) in Q31 for every level and token (§5.2), integers only;
    computed once per process (see pladacodec._context)."""
    lo_surv = np.empty((S.GAP_LEVELS, S.GAP_TOKENS), dtype=np.int64)
    hi_surv = np.empty((S.GAP_LEVELS, S.GAP_TOKENS), dtype=np.int64)
    qpow = np.empty(S.GAP_MAX_EXP + 2, dtype=np.int64)
    for level in range(S.GAP_LEVELS):
        b = level >> 1
        r8 = 12 if b < 2 else (1 << (b + 2)) + (2 * (level & 1) + 1) * (1 << b)
        num = np.int64(5 * (r8 - 8) + 32)
        qpow[0] = (num << np.int64(S.GEO_ONE_BITS)) // (num + S.GEO_DEN)
        for j in range(1, S.GAP_MAX_EXP + 2):
            qpow[j] = (qpow[j - 1] * qpow[j - 1]) >> S.GEO_ONE_BITS
        for t in range(S.GAP_TOKENS):
            if t < S.GAP_EXACT:
                lo = np.int64(t)
                width = np.int64(1)
            else:
                e = (t - S.GAP_EXACT) // (1 << S.GAP_SUB) + 3
                width = np.int64(1) << np.int64(e - S.GAP_SUB)
                lo = (np.int64(1) << np.int64(e)) + np.int64((t - S.GAP_EXACT) % (1 << S.GAP_SUB)) * width
            lo_surv[level, t] = _geo_survival(lo, qpow)
            hi_surv[level, t] = _geo_survival(lo + width, qpow)
    return lo_surv, hi_surv


@_jit()
def _geo_row(level, n_tok, lo_surv, hi_surv, geo, weights, cum):
    """geo[level] <- the level's geometric skip law over n_tok tokens quantised to 2^15 (the last
    token takes the tail) by §7.1's rule; built when the level's parent is first used
    (``weights``, ``cum``: work space of n_tok and n_tok + 1)."""
    for t in range(n_tok):
        weights[t] = max(lo_surv[level, t] - (hi_surv[level, t] if t < n_tok - 1 else 0), 0)
    _static_table(weights, S.ADAPTIVE_BITS, geo[level], cum)


@_jit()
def _parent_prior(level, n_tok, geo, g_freq, prior):
    """prior[level] <- floor((g + 3·G[level]) / 4): the grandparent's table and the level's law."""
    for t in range(n_tok):
        prior[level, t] = ((4 - S.GAP_GEO_SHARE) * g_freq[0, t] + S.GAP_GEO_SHARE * geo[level, t]) >> 2


@_jit()
def _gaps_run(skips, n_tok, decoding, words, raw, starts, freqs, sizes, lo_surv, hi_surv, ends, base):
    """The gap model of index methods 2 and 3 (FORMAT.md §5.2, §5.3), shared by encoder and
    decoder.  ``ends`` empty: method 2, run boundaries at jumps; else method 3, run boundaries at
    the folder changes (``ends``: the end of the folder holding ``base`` and of every later one).
    sizes <- [symbols recorded (encoding) or words used (decoding), raw bits used]; False on a
    stream that is inconsistent in any way."""
    yes, no = np.bool_(True), np.bool_(False)  # non-literal arguments: one compiled helper per signature
    zero, one, none = np.int64(0), np.int64(1), np.int64(-1)
    rule_obs = _rule(S.OBSERVATION_WEIGHT, 1)
    rule_parent = _rule(S.PRIOR_STRENGTH, S.PARENT_FIRST_REBUILD)
    rule_child = _rule(S.PRIOR_STRENGTH, 1)
    n = skips.shape[0]
    folders = ends.shape[0] > 0
    fold = 0  # with folders: the folder of the previous entry, as a position in ends
    fold_at = np.uint64(base)  # ... and that entry + 1 (the block's base before the first)
    fresh_min = S.GAP_FRESH_MIN_FOLDERS if folders else S.GAP_FRESH_MIN
    counts, seen, nxt, freq, cum, lut = _model_new(np.int64(GAP_CONTEXTS), n_tok, np.int64(S.CHILD_MIN), yes)
    p_counts, p_seen, p_nxt, p_freq, p_cum, p_lut = _model_new(np.int64(S.GAP_LEVELS), n_tok, zero, yes)
    g_counts, g_seen, g_nxt, g_freq, g_cum, g_lut = _model_new(one, n_tok, zero, no)
    geo = np.empty((S.GAP_LEVELS, n_tok), dtype=np.int32)  # filled per level on first use
    geo_weights, geo_cum = np.empty(n_tok, dtype=np.int64), np.empty(n_tok + 1, dtype=np.int32)
    prior = np.empty((S.GAP_LEVELS, n_tok), dtype=np.int32)  # a parent's prior, per level
    ring = np.zeros(S.GAP_WINDOW, dtype=np.uint64)
    window_sum = np.uint64(0)
    since = 0  # skips since the last run boundary (up to GAP_RUN_CAP), and their sum
    since_sum = np.uint64(0)
    mag1 = 0
    bitpos = 0
    raw_bits = raw.shape[0] * 8
    m = 0
    wpad, x, pos, n_words = _stream_open(words, decoding)
    for i in range(n):
        if pos > n_words:  # a refill read past the stream: it is inconsistent, stop early
            return False
        level = _gap_level(window_sum)
        if since >= fresh_min:  # the whole run's density, unless it drifted from the last 16 skips'
            run_level = _run_level(since_sum, since)
            if since < S.GAP_WINDOW or abs(run_level - level) < S.GAP_DRIFT:
                level = run_level
            else:
                since = S.GAP_WINDOW
                since_sum = window_sum
        c = level * S.GAP_MAG1_LEVELS + min(mag1, S.GAP_MAG1_LEVELS - 1)
        tok = 0
        v = np.uint64(0)
        if not decoding:
            v = skips[i]
            tok = _gap_token(v)
            if tok >= n_tok:
                return False
        # the parent chain exists; a young child codes with its parent's table
        if p_nxt[level] == 0:
            if g_nxt[0] == 0:
                _rebuild(g_counts, g_seen, g_nxt, g_freq, g_cum, g_lut, zero, g_freq, none, no, n_tok, rule_obs)
            _geo_row(level, n_tok, lo_surv, hi_surv, geo, geo_weights, geo_cum)
            _parent_prior(level, n_tok, geo, g_freq, prior)
            _rebuild(p_counts, p_seen, p_nxt, p_freq, p_cum, p_lut, level, prior, level, yes, n_tok, rule_parent)
        own = seen[c] >= S.CHILD_MIN
        slot = np.int64(x & ADAPTIVE_MASK)
        if decoding:
            tok = _find(cum, lut, c, slot) if own else _find(p_cum, p_lut, level, slot)
        if own:
            x, pos, m = _code_step(decoding, x, freq[c, tok], cum[c, tok], slot, wpad, pos, n_words, starts, freqs, m)
        else:
            x, pos, m = _code_step(decoding, x, p_freq[level, tok], p_cum[level, tok], slot, wpad, pos, n_words, starts, freqs, m)
        # adapt: child, grandparent, parent, then rebuild the child if due
        counts[c, tok] += 1
        seen[c] += 1
        g_counts[0, tok] += 1
        g_seen[0] += 1
        if g_seen[0] >= g_nxt[0]:
            _rebuild(g_counts, g_seen, g_nxt, g_freq, g_cum, g_lut, zero, g_freq, none, no, n_tok, rule_obs)
        p_counts[level, tok] += 1
        p_seen[level] += 1
        if p_seen[level] >= p_nxt[level]:
            _parent_prior(level, n_tok, geo, g_freq, prior)
            _rebuild(p_counts, p_seen, p_nxt, p_freq, p_cum, p_lut, level, prior, level, yes, n_tok, rule_parent)
        if seen[c] >= nxt[c]:
            _rebuild(counts, seen, nxt, freq, cum, lut, c, p_freq, level, yes, n_tok, rule_child)
        # the raw low bits
        if tok >= S.GAP_EXACT:
            e = (tok - S.GAP_EXACT) // (1 << S.GAP_SUB) + 3
            nraw = e - S.GAP_SUB
            if decoding:
                if bitpos + nraw > raw_bits:
                    return False
                low, bitpos = _raw_take(raw, bitpos, nraw)
                top = (tok - S.GAP_EXACT) % (1 << S.GAP_SUB)
                v = (np.uint64(1) << np.uint64(e)) | (np.uint64(top) << np.uint64(nraw)) | low
            else:
                bitpos = _raw_put(raw, bitpos, v, nraw)
        elif decoding:
            v = np.uint64(tok)
        if decoding:
            skips[i] = v
        mag1 = _gap_mag(tok)
        if folders:
            boundary, fold, fold_at = _folder_step(ends, fold, fold_at, v, i)
        else:
            boundary = _jump(i, v, window_sum)
        if boundary:
            since = 0
            since_sum = np.uint64(0)
        elif since < S.GAP_RUN_CAP:
            since += 1
            since_sum += v
        slot_w = i % S.GAP_WINDOW
        window_sum = window_sum - ring[slot_w] + v
        ring[slot_w] = v
    sizes[1] = bitpos
    return _stream_close(decoding, x, pos, n_words, m, sizes)


@_jit(nb.boolean(u64[::1], i64, nb.boolean, u32[::1], u8[::1], i32[::1], i32[::1], i64[::1], i64[:, ::1], i64[:, ::1],
                 i64[::1], i64))
def gaps_code(skips, n_tok, decoding, words, raw, starts, freqs, sizes, lo_surv, hi_surv, ends, base):
    """Index method 2 (``ends`` empty) or 3, either way (see _gaps_run): one compiled kernel
    serves the encoder (then rans_flush) and the decoder."""
    return _gaps_run(skips, n_tok, decoding, words, raw, starts, freqs, sizes, lo_surv, hi_surv, ends, base)


# --- labels (FORMAT.md §6.3, §6.4) ------------------------------------------------------------
# Per entry a candidate rank r: 0 = the mode D of the last 8 labels, 1 / 2 = the most / second
# most recent distinct labels other than D, 3 = another label, coded as a literal.  r is coded
# in a context of the entry's skip magnitude, D's strength and the previous entry's state,
# whose parent sees the skip coarsely.


@_jit()
def _labels_run(labels, skips, n_classes, decoding, words, starts, freqs, sizes, ends, base):
    """The label model of label methods 3 and 4, shared by encoder and decoder; ``ends`` empty:
    method 3 (the window empties at jumps), else method 4 (at folder changes, see _gaps_run).
    False on a bad stream."""
    yes, no = np.bool_(True), np.bool_(False)  # non-literal arguments: one compiled helper per signature
    zero, one, none = np.int64(0), np.int64(1), np.int64(-1)
    rule_obs = _rule(S.OBSERVATION_WEIGHT, 1)
    rule_rank = _rule(S.LABEL_CHILD_STRENGTH, 1)
    rule_literal = _rule(S.LABEL_LITERAL_WEIGHT, 1)
    n = labels.shape[0]
    folders = ends.shape[0] > 0
    fold = 0
    fold_at = np.uint64(base)
    split = n_classes > S.LABEL_SPLIT
    exclude = n_classes <= S.LABEL_EXCLUDE_MAX
    n_hi = (n_classes + 255) // 256 if split else 1
    n_lo = 256 if split else n_classes
    r_sym = S.LABEL_CANDIDATES + 1
    per_coarse = S.LABEL_STRENGTH_LEVELS * S.LABEL_PREV_STATES
    r_counts, r_seen, r_nxt, r_freq, r_cum, r_lut = _model_new(np.int64(S.LABEL_MAG_LEVELS * per_coarse), r_sym, zero, no)
    q_counts, q_seen, q_nxt, q_freq, q_cum, q_lut = _model_new(np.int64(per_coarse * S.LABEL_COARSE), r_sym, zero, no)
    h_counts, h_seen, h_nxt, h_freq, h_cum, h_lut = _model_new(one, n_hi, zero, yes)
    l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut = _model_new(n_hi, n_lo, zero, yes)
    x_freq = np.zeros(n_lo, dtype=np.int32)  # the literal table with the candidates excluded
    x_cum = np.zeros(n_lo + 1, dtype=np.int32)
    window = np.full(S.LABEL_WINDOW, -1, dtype=np.int64)
    in_window = np.zeros(n_classes, dtype=np.int32)
    recent = np.full(S.LABEL_RECENT, -1, dtype=np.int64)
    cand = np.full(S.LABEL_CANDIDATES, -1, dtype=np.int64)
    mode = -1
    mode_count = 0
    prev_hit = 0
    prev_label = -1  # the block's previous label, and whether it equals the one before
    prev_same = False
    gap_ring = np.zeros(S.GAP_WINDOW, dtype=np.uint64)
    gap_sum = np.uint64(0)
    m = 0
    wpad, x, pos, n_words = _stream_open(words, decoding)
    for i in range(n):
        if pos > n_words:  # a refill read past the stream: it is inconsistent, stop early
            return False
        cand[0] = mode
        j = 1
        for t in range(S.LABEL_RECENT):
            if j < S.LABEL_CANDIDATES and recent[t] >= 0 and recent[t] != mode:
                cand[j] = recent[t]
                j += 1
        v = skips[i]
        if folders:
            boundary, fold, fold_at = _folder_step(ends, fold, fold_at, v, i)
        else:
            boundary = _jump(i, v, gap_sum)
        if boundary:  # a new run (likely a new folder): forget the window
            for q in range(S.LABEL_WINDOW):
                if window[q] >= 0:
                    in_window[window[q]] -= 1
                window[q] = -1
            mode = -1
            mode_count = 0
            if folders:  # a new folder's first label has contexts of its own
                prev_hit = 0
        gap_sum = gap_sum - gap_ring[i % S.GAP_WINDOW] + v
        gap_ring[i % S.GAP_WINDOW] = v
        if v < np.uint64(S.GAP_EXACT):
            mag = np.int64(v)
        else:
            mag = S.GAP_EXACT + _bitlen(v) - 4
        mag = min(mag, S.LABEL_MAG_LEVELS - 1)
        strength = (mode_count - 1) * S.LABEL_STRENGTH_LEVELS // S.LABEL_WINDOW if mode_count > 0 else 0
        state = prev_hit
        if prev_hit == 0 and prev_same and mode >= 0 and prev_label != mode:
            state = 2  # the last two labels agree on another label than D
        pc = strength * S.LABEL_PREV_STATES + state
        c = mag * per_coarse + pc
        coarse = 0 if mag < S.LABEL_MAG_SMALL else (1 if mag < S.LABEL_MAG_MEDIUM else 2)
        pc += coarse * per_coarse
        label = -1
        r = S.LABEL_CANDIDATES
        if not decoding:
            label = labels[i]
            for t in range(S.LABEL_CANDIDATES):
                if cand[t] == label:
                    r = t
                    break
        # code r in context c (parent pc)
        if r_nxt[c] == 0:
            if q_nxt[pc] == 0:
                _rebuild_inline(q_counts, q_seen, q_nxt, q_freq, q_cum, pc, q_freq, none, r_sym, rule_obs)
            _rebuild_inline(r_counts, r_seen, r_nxt, r_freq, r_cum, c, q_freq, pc, r_sym, rule_rank)
        slot = np.int64(x & ADAPTIVE_MASK)
        if decoding:
            # r = how many of the (increasing) bounds cum[c, 1..3] lie at or below the slot
            r = np.int64(r_cum[c, 1] <= slot) + np.int64(r_cum[c, 2] <= slot) + np.int64(r_cum[c, 3] <= slot)
        x, pos, m = _code_step(decoding, x, r_freq[c, r], r_cum[c, r], slot, wpad, pos, n_words, starts, freqs, m)
        r_counts[c, r] += 1
        r_seen[c] += 1
        q_counts[pc, r] += 1
        q_seen[pc] += 1
        if q_seen[pc] >= q_nxt[pc]:
            _rebuild_inline(q_counts, q_seen, q_nxt, q_freq, q_cum, pc, q_freq, none, r_sym, rule_obs)
        if r_seen[c] >= r_nxt[c]:
            _rebuild_inline(r_counts, r_seen, r_nxt, r_freq, r_cum, c, q_freq, pc, r_sym, rule_rank)
        if r < S.LABEL_CANDIDATES:
            label = cand[r]
            if label < 0:
                return False
        elif exclude:
            # the literal, from the adaptive table with the candidates' share removed
            if l_nxt[0] == 0:
                _rebuild(l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut, zero, l_freq, none, no, n_lo, rule_literal)
            gone = 0
            for t in range(S.LABEL_CANDIDATES):
                if cand[t] >= 0:
                    gone += l_freq[0, cand[t]]
            left = ADAPTIVE_M - gone
            if left <= 0:
                return False
            scale = (np.int64(ADAPTIVE_M) << 16) // left  # >= 2^16: a kept symbol's frequency only grows
            used = 0
            best = -1
            for s in range(n_lo):
                x_freq[s] = (np.int64(l_freq[0, s]) * scale) >> 16
            for t in range(S.LABEL_CANDIDATES):
                if cand[t] >= 0:
                    x_freq[cand[t]] = 0
            for s in range(n_lo):
                used += x_freq[s]
                if best < 0 or x_freq[s] > x_freq[best]:
                    best = s
            x_freq[best] += ADAPTIVE_M - used
            _cumulate(x_freq, x_cum, n_lo)
            slot = np.int64(x & ADAPTIVE_MASK)
            lo = label
            if decoding:
                lo = 0
                while x_cum[lo + 1] <= slot:
                    lo += 1
                label = lo
            elif x_freq[lo] == 0:
                return False
            x, pos, m = _code_step(decoding, x, x_freq[lo], x_cum[lo], slot, wpad, pos, n_words, starts, freqs, m)
            l_counts[0, lo] += 1
            l_seen[0] += 1
            if l_seen[0] >= l_nxt[0]:
                _rebuild(l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut, zero, l_freq, none, no, n_lo, rule_literal)
        else:
            hi = 0
            lo = 0
            if not decoding:
                hi = label >> 8 if split else 0
                lo = label & 255 if split else label
            if split:
                # the high part (one context, no parent)
                if h_nxt[0] == 0:
                    _rebuild(h_counts, h_seen, h_nxt, h_freq, h_cum, h_lut, zero, h_freq, none, yes, n_hi, rule_literal)
                if decoding:
                    slot = np.int64(x & ADAPTIVE_MASK)
                    hi = _find(h_cum, h_lut, zero, slot)
                    x = _rans_take(x, h_freq[0, hi], h_cum[0, hi], slot, S.ADAPTIVE_BITS)
                    x, pos = _renorm(x, wpad, pos, n_words)
                else:
                    starts[m] = h_cum[0, hi]
                    freqs[m] = h_freq[0, hi]
                    m += 1
                h_counts[0, hi] += 1
                h_seen[0] += 1
                if h_seen[0] >= h_nxt[0]:
                    _rebuild(h_counts, h_seen, h_nxt, h_freq, h_cum, h_lut, zero, h_freq, none, yes, n_hi, rule_literal)
            # the low part, in the context of the high part
            if l_nxt[hi] == 0:
                _rebuild(l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut, hi, l_freq, none, yes, n_lo, rule_literal)
            if decoding:
                slot = np.int64(x & ADAPTIVE_MASK)
                lo = _find(l_cum, l_lut, hi, slot)
                x = _rans_take(x, l_freq[hi, lo], l_cum[hi, lo], slot, S.ADAPTIVE_BITS)
                x, pos = _renorm(x, wpad, pos, n_words)
            else:
                starts[m] = l_cum[hi, lo]
                freqs[m] = l_freq[hi, lo]
                m += 1
            l_counts[hi, lo] += 1
            l_seen[hi] += 1
            if l_seen[hi] >= l_nxt[hi]:
                _rebuild(l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut, hi, l_freq, none, yes, n_lo, rule_literal)
            label = (hi << 8) + lo
        if label >= n_classes:
            return False
        if decoding:
            labels[i] = label
        prev_hit = 1 if r == 0 else 0
        prev_same = label == prev_label
        prev_label = label
        if recent[0] != label:
            t = S.LABEL_RECENT - 1
            for q in range(S.LABEL_RECENT):
                if recent[q] == label:
                    t = q
                    break
            while t > 0:
                recent[t] = recent[t - 1]
                t -= 1
            recent[0] = label
        slot_w = i % S.LABEL_WINDOW
        old = window[slot_w]
        if old >= 0:
            in_window[old] -= 1
        window[slot_w] = label
        in_window[label] += 1
        if label == mode:
            mode_count = in_window[label]
        elif in_window[label] >= mode_count:
            mode = label
            mode_count = in_window[label]
        elif old == mode:
            mode_count = 0
            for q in range(S.LABEL_WINDOW):
                lab = window[(i - q) % S.LABEL_WINDOW]
                if lab >= 0 and in_window[lab] > mode_count:
                    mode = lab
                    mode_count = in_window[lab]
    return _stream_close(decoding, x, pos, n_words, m, sizes)


@_jit(nb.boolean(i64[::1], u64[::1], i64, nb.boolean, u32[::1], i32[::1], i32[::1], i64[::1], i64[::1], i64))
def labels_code(labels, skips, n_classes, decoding, words, starts, freqs, sizes, ends, base):
    """Label method 3 (``ends`` empty) or 4, either way (see _labels_run)."""
    return _labels_run(labels, skips, n_classes, decoding, words, starts, freqs, sizes, ends, base)


# --- label method 2 (FORMAT.md §6.2): order 0 with forgetting ---------------------------------
# One adaptive table over the labels (or the high part, then the low part in the high part's
# context, for C > 256) whose counts halve whenever they sum to 2^h: the table follows the
# class mix of the last few hundred labels.




@_jit()
def _drift_run(labels, n_classes, halve_bits, decoding, words, starts, freqs, sizes):
    """Label method 2's model, shared by encoder and decoder; False on a bad stream."""
    n = labels.shape[0]
    split = n_classes > S.LABEL_SPLIT
    n_hi = (n_classes + 255) // 256 if split else 1
    n_lo = 256 if split else n_classes
    step = np.int64(1) << max(halve_bits - S.DRIFT_STEP_SHIFT, 0)
    with_lut = step >= DRIFT_LUT_STEP
    # the rebuild rule (FORMAT.md §6.2): w = 2·count + 1, halve at 2^h, points doubling up to 2^(h - 5)
    rule = np.array([S.DRIFT_WEIGHT, np.int64(1) << halve_bits, step, 1], dtype=np.int64)
    zero, one, none = np.int64(0), np.int64(1), np.int64(-1)
    h_counts, h_seen, h_nxt, h_freq, h_cum, h_lut = _model_new(one, n_hi, zero, with_lut)
    l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut = _model_new(n_hi, n_lo, zero, with_lut)
    m = 0
    wpad, x, pos, n_words = _stream_open(words, decoding)
    for i in range(n):
        if pos > n_words:
            return False
        # The literal coding below repeats label method 3's (its high part, then its low byte):
        # written once as a helper it decodes 1.5-13x slower, as numba reference-counts the
        # helper's twelve table arrays at every symbol (measured on the bench rows, both as an
        # inlined and as a called function).
        label = 0 if decoding else labels[i]
        hi = 0
        if split:  # the high part, in one context
            if h_nxt[0] == 0:
                _rebuild(h_counts, h_seen, h_nxt, h_freq, h_cum, h_lut, zero, h_freq, none, with_lut, n_hi, rule)
            if decoding:
                slot = np.int64(x & ADAPTIVE_MASK)
                hi = _find(h_cum, h_lut, zero, slot) if with_lut else _search(h_cum, zero, n_hi, slot)
                x = _rans_take(x, h_freq[0, hi], h_cum[0, hi], slot, S.ADAPTIVE_BITS)
                x, pos = _renorm(x, wpad, pos, n_words)
            else:
                hi = label >> 8
                starts[m] = h_cum[0, hi]
                freqs[m] = h_freq[0, hi]
                m += 1
            h_counts[0, hi] += 1
            h_seen[0] += 1
            if h_seen[0] >= h_nxt[0]:
                _rebuild(h_counts, h_seen, h_nxt, h_freq, h_cum, h_lut, zero, h_freq, none, with_lut, n_hi, rule)
        # the label, or its low part in the high part's context
        if l_nxt[hi] == 0:
            _rebuild(l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut, hi, l_freq, none, with_lut, n_lo, rule)
        if decoding:
            slot = np.int64(x & ADAPTIVE_MASK)
            lo = _find(l_cum, l_lut, hi, slot) if with_lut else _search(l_cum, hi, n_lo, slot)
            x = _rans_take(x, l_freq[hi, lo], l_cum[hi, lo], slot, S.ADAPTIVE_BITS)
            x, pos = _renorm(x, wpad, pos, n_words)
        else:
            lo = label & 255 if split else label
            starts[m] = l_cum[hi, lo]
            freqs[m] = l_freq[hi, lo]
            m += 1
        l_counts[hi, lo] += 1
        l_seen[hi] += 1
        if l_seen[hi] >= l_nxt[hi]:
            _rebuild(l_counts, l_seen, l_nxt, l_freq, l_cum, l_lut, hi, l_freq, none, with_lut, n_lo, rule)
        label = (hi << 8) + lo
        if label >= n_classes:
            return False
        if decoding:
            labels[i] = label
    return _stream_close(decoding, x, pos, n_words, m, sizes)


@_jit(nb.boolean(i64[::1], i64, i64, nb.boolean, u32[::1], i32[::1], i32[::1], i64[::1]))
def drift_code(labels, n_classes, halve_bits, decoding, words, starts, freqs, sizes):
    """Label method 2 with halving exponent ``halve_bits``, either way (see _drift_run)."""
    return _drift_run(labels, n_classes, halve_bits, decoding, words, starts, freqs, sizes)


# --- label method 5 (FORMAT.md §6.5): order 0 and order 1, mixed ---------------------------
# Two estimates of the next label: order 0 (counts halving at 2^h0) and order 1 (counts in the
# previous label's context halving at 2^h1, with the order-0 estimate as a prior worth
# MIX_PRIOR observations), mixed with the weight w of the order-1 estimate, which follows its
# posterior.  The table is computed per label in integers; the decoder stops at the symbol.


@_jit()
def _mix_run(labels, n_classes, h0, h1, decoding, words, starts, freqs, sizes):
    """Label method 5's model, shared by encoder and decoder; False on a bad stream."""
    n = labels.shape[0]
    big_c = np.int64(n_classes)
    spread = np.int64(ADAPTIVE_M) - big_c
    one_w = np.int64(1) << S.MIX_WEIGHT_BITS
    prior = np.int64(S.MIX_PRIOR)
    c0 = np.zeros(n_classes, dtype=np.int64)
    c1 = np.zeros((n_classes + 1, n_classes), dtype=np.int64)  # context n_classes: the block's start
    t1 = np.zeros(n_classes + 1, dtype=np.int64)
    t0 = np.int64(0)
    w = one_w >> 1
    ctx, m = n_classes, 0
    wpad, x, pos, n_words = _stream_open(words, decoding)
    for i in range(n):
        if pos > n_words:
            return False
        big_a = 2 * t0 + big_c  # order 0: (2 c0_s + 1) / A
        t1s = t1[ctx] + prior  # order 1: (c1_s A + P (2 c0_s + 1)) / ((T1 + P) A)
        total = (t1s * big_a) << S.MIX_WEIGHT_BITS  # the sum of the numerators below
        shift = max(_bitlen(np.uint64(total)) - S.MIX_SCALE_BITS, 0)
        scale = (spread << 32) // (total >> shift)
        slot = np.int64(x & ADAPTIVE_MASK) if decoding else np.int64(0)
        label = np.int64(-1) if decoding else labels[i]
        if not decoding and not 0 <= label < n_classes:
            return False
        start = np.int64(0)
        f = np.int64(0)
        num = np.int64(0)
        b = np.int64(0)
        for s in range(n_classes):
            a = 2 * c0[s] + 1
            b = c1[ctx, s] * big_a + prior * a
            num = (one_w - w) * t1s * a + w * b
            f = ADAPTIVE_M - start if s == n_classes - 1 else 1 + (((num >> shift) * scale) >> 32)
            if (slot < start + f) if decoding else (s == label):
                label = s
                break
            start += f
        x, pos, m = _code_step(decoding, x, f, start, slot, wpad, pos, n_words, starts, freqs, m)
        if decoding:
            labels[i] = label
        # the order-1 weight follows its posterior share of the label's probability
        post = ((w * b) << S.MIX_WEIGHT_BITS) // num
        w = post - (post >> S.MIX_RATE_SHIFT) + ((one_w >> 1) >> S.MIX_RATE_SHIFT)
        c0[label] += 1
        t0 += 1
        if t0 >= np.int64(1) << h0:
            t0 = _halve(c0, n_classes)
        c1[ctx, label] += 1
        t1[ctx] += 1
        if t1[ctx] >= np.int64(1) << h1:
            t1[ctx] = _halve(c1[ctx], n_classes)
        ctx = label
    return _stream_close(decoding, x, pos, n_words, m, sizes)


@_jit(nb.boolean(i64[::1], i64, i64, i64, nb.boolean, u32[::1], i32[::1], i32[::1], i64[::1]))
def mix_code(labels, n_classes, h0, h1, decoding, words, starts, freqs, sizes):
    """Label method 5 with halving exponents h0, h1, either way (see _mix_run)."""
    return _mix_run(labels, n_classes, h0, h1, decoding, words, starts, freqs, sizes)


# --- static rANS (FORMAT.md §7.1): index method 1, label method 1 -----------------------------
# A fixed table per stream, two interleaved states from STATIC_TWO_STATES_MIN symbols (entry i
# uses state i mod 2) so that the decoder's two dependency chains overlap.


@_jit(i64(i64[::1], i64, i32[::1], i32[::1]))
def static_table(weights, bits, freq, cum):
    """Quantise positive integer weights to frequencies summing to 2^bits (§7.1); 0, or -1 if
    the alphabet does not fit (every symbol needs a frequency of at least 1)."""
    return _static_table(weights, bits, freq, cum)


@_jit()
def _static_table(weights, bits, freq, cum):
    """static_table, for kernels (and the gap model's geometric rows, §5.2)."""
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


@_jit(i64(i32[::1], i32[::1], i32[::1], i64, u32[::1]))
def static_rans_encode(symbols, freq, cum, bits, words):
    """Encode symbols (each < len(freq)); returns the word count (0 for no symbol), words in
    decoding order: state 0 (high, low), [state 1 (high, low)], ..."""
    n = symbols.shape[0]
    if n == 0:
        return 0
    two = n >= S.STATIC_TWO_STATES_MIN
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


@_jit()
def _static_step(x, freq, cum, lut, shift, mask, bits):
    """Decode one symbol from state x: (symbol, state before refill)."""
    slot = np.int64(x & mask)
    s = np.int64(lut[slot >> shift])
    while cum[s + 1] <= slot:
        s += 1
    return s, _rans_take(x, freq[s], cum[s], slot, bits)


@_jit(i64(u32[::1], i32[::1], i32[::1], i64, i32[::1]))
def static_rans_decode(words, freq, cum, bits, out):
    """Inverse of static_rans_encode (the table from static_table); 0, or -1 on a bad stream."""
    n = out.shape[0]
    n_words = words.shape[0]
    if n == 0:
        return 0 if n_words == 0 else -1
    two = n >= S.STATIC_TWO_STATES_MIN
    pos = 4 if two else 2
    if n_words < pos:
        return -1
    shift = bits - STATIC_LUT_BITS
    bucket = (np.int64(1) << shift) - 1
    lut = np.empty(1 << STATIC_LUT_BITS, dtype=np.int32)
    for s in range(freq.shape[0]):
        for j in range((np.int64(cum[s]) + bucket) >> shift, (np.int64(cum[s + 1]) + bucket) >> shift):
            lut[j] = s
    wpad = np.zeros(n_words + 1, dtype=np.uint32)
    for i in range(n_words):
        wpad[i] = words[i]
    top = np.uint64(1) << np.uint64(63)
    x0 = (np.uint64(words[0]) << np.uint64(32)) | np.uint64(words[1])
    x1 = RANS_L
    if two:
        x1 = (np.uint64(words[2]) << np.uint64(32)) | np.uint64(words[3])
    if x0 < RANS_L or x0 >= top or x1 < RANS_L or x1 >= top:
        return -1
    mask = np.uint64((np.int64(1) << bits) - 1)
    if not two:
        for i in range(n):
            s0, x0 = _static_step(x0, freq, cum, lut, shift, mask, bits)
            x0, pos = _renorm(x0, wpad, pos, n_words)
            out[i] = s0
    for i in range(0, n - 1 if two else 0, 2):
        if pos > n_words:  # a refill read past the stream: it is inconsistent, stop early
            return -1
        s0, x0 = _static_step(x0, freq, cum, lut, shift, mask, bits)
        x0, pos = _renorm(x0, wpad, pos, n_words)
        s1, x1 = _static_step(x1, freq, cum, lut, shift, mask, bits)
        x1, pos = _renorm(x1, wpad, pos, n_words)
        out[i] = s0
        out[i + 1] = s1
    if two and n & 1:
        s0, x0 = _static_step(x0, freq, cum, lut, shift, mask, bits)
        x0, pos = _renorm(x0, wpad, pos, n_words)
        out[n - 1] = s0
    if x0 != RANS_L or x1 != RANS_L or pos != n_words:
        return -1
    return 0
