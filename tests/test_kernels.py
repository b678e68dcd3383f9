"""The numba kernels of pladacodec._kernels against plain numpy references.

The same tests run twice more in subprocesses: with ``NUMBA_BOUNDSCHECK=1`` (an
out-of-bounds access raises IndexError instead of reading memory; a fresh
``NUMBA_CACHE_DIR`` so nothing compiled without the checks is reused) and with
``NUMBA_DISABLE_JIT=1`` (the kernels run as plain Python).  Under bounds checks
a short fuzz run also feeds hostile sections (checksums fixed up) to every
registered decoder, so a kernel reading past a buffer on bad input is caught.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pladacodec import _kernels, _methods
from pladacodec.errors import PladaEncodeError
from pladacodec import _spec as S
from pladacodec._bytes import Reader
from common import synthetic_folders

NO_FOLDERS = (np.zeros(0, dtype=np.int64), 0)  # the kernels' folder arguments without a layout
NO_SYMBOLS = np.zeros(0, dtype=np.int32)

HERE = Path(__file__).resolve().parent
IN_SUBPROCESS = os.environ.get("PLADA_KERNEL_SUBPROCESS") == "1"


def _sorted_unique(rng, n, span, base=0):
    picks = rng.choice(span, size=min(n, span), replace=False) if span < 1 << 40 else np.unique(rng.integers(0, span, n))
    return np.sort(picks).astype(np.uint64) + np.uint64(base)


# --- references ------------------------------------------------------------------------


def ref_pack(values, width):
    total = 0
    for i, v in enumerate(values.tolist()):
        total |= (v & ((1 << width) - 1)) << (i * width)
    n_bytes = (len(values) * width + 7) // 8
    return np.frombuffer(total.to_bytes(n_bytes, "little"), dtype=np.uint8)


# --- bit packing ----------------------------------------------------------------------------


@pytest.mark.parametrize("width", range(1, 57))
def test_pack_unpack_every_width(width):
    rng = np.random.default_rng(width)
    for n in (0, 1, 7, 8, 9, 63, 200):
        values = rng.integers(0, 1 << width, n, dtype=np.uint64) if width < 64 else rng.integers(0, 2**63, n, dtype=np.uint64)
        if n:
            values[0] = (1 << width) - 1  # all ones
        packed = np.zeros((n * width + 7) // 8, dtype=np.uint8)
        _kernels.pack_bits(values, width, packed)
        assert np.array_equal(packed, ref_pack(values, width)), (width, n)
        # golomb_combine reads the remainders back (quotient q sits above them)
        quotients = rng.integers(0, 3, n).astype(np.int32)
        back = np.empty(n, dtype=np.uint64)
        assert _kernels.golomb_combine(quotients, packed, width, 2, back) == int((quotients == 2).sum())
        assert np.array_equal(back & np.uint64((1 << width) - 1), values)
        assert np.array_equal(back >> np.uint64(width), quotients.astype(np.uint64))


def test_pack_bits_keeps_only_the_low_bits():
    values = np.array([2**64 - 1, 2**40 + 5, 3], dtype=np.uint64)
    packed = np.zeros((3 * 5 + 7) // 8, dtype=np.uint8)
    _kernels.pack_bits(values, 5, packed)
    assert np.array_equal(packed, ref_pack(values, 5))
    back = np.empty(3, dtype=np.uint64)
    assert _kernels.golomb_combine(np.zeros(3, np.int32), packed, 5, 9, back) == 0
    assert back.tolist() == [31, 5, 3]


def test_ranks_to_symbols_checks_the_histogram():
    used, counts = np.array([3, 7, 9], np.int64), np.array([2, 1, 1], np.int64)
    out = np.empty(4, np.int64)
    assert _kernels.ranks_to_symbols(np.array([0, 2, 1, 0], np.int32), used, counts, out) == 0
    assert out.tolist() == [3, 9, 7, 3]
    assert _kernels.ranks_to_symbols(np.array([0, 2, 1, 1], np.int32), used, counts, out) == -1


# --- gaps -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, span, base", [(0, 10, 0), (1, 1, 0), (50, 60, 0), (500, 10**6, 123), (40, 2**40 - 2**30, 2**30)])
def test_gaps_round_trip(n, span, base):
    rng = np.random.default_rng(n)
    indices = _sorted_unique(rng, n, span, base)
    gaps = np.empty(len(indices), dtype=np.uint64)
    _kernels.gaps_from_indices(indices, np.uint64(base), gaps)
    prev = np.concatenate([[np.uint64(base)], indices[:-1] + np.uint64(1)]) if len(indices) else indices
    assert np.array_equal(gaps, indices - prev)
    out = np.empty(len(gaps), dtype=np.uint64)
    limit = base + span
    assert _kernels.indices_from_gaps(gaps, np.uint64(base), np.uint64(limit), out) == 0
    assert np.array_equal(out, indices)


def test_indices_from_gaps_stops_at_the_limit_without_overflow():
    out = np.empty(3, dtype=np.uint64)
    gaps = np.array([0, 0, 0], dtype=np.uint64)
    assert _kernels.indices_from_gaps(gaps, np.uint64(0), np.uint64(3), out) == 0
    assert _kernels.indices_from_gaps(gaps, np.uint64(0), np.uint64(2), out) == -3  # entry 2 would be index 2
    assert _kernels.indices_from_gaps(gaps, np.uint64(5), np.uint64(5), out) == -1  # base already at the limit
    huge = np.array([1, 2**64 - 1, 0], dtype=np.uint64)  # would wrap around 2**64
    assert _kernels.indices_from_gaps(huge, np.uint64(10), np.uint64(2**40), out) == -2
    huge = np.array([2**64 - 2**39, 0, 0], dtype=np.uint64)
    assert _kernels.indices_from_gaps(huge, np.uint64(2**39), np.uint64(2**40), out) == -1


# --- every registered coder through its kernels ------------------------------------------------


@pytest.mark.parametrize("method", [m for m in _methods.METHODS if m.kind == "index"], ids=lambda m: m.name)
def test_index_coders_round_trip(method):
    rng = np.random.default_rng(method.id)
    for n, span, base in [(1, 1, 0), (300, 400, 10), (500, 10**6, 0), (64, 2**40 - 10**9, 10**9)]:
        indices = _sorted_unique(rng, n, span, base)
        folders = synthetic_folders(base + span) if method.folders else None
        section = method.encode(indices, base, folders)
        assert np.array_equal(method.decode(Reader(section), len(indices), base, base + span, folders), indices)


@pytest.mark.parametrize("method", [m for m in _methods.METHODS if m.kind == "label"], ids=lambda m: m.name)
def test_label_coders_round_trip(method):
    rng = np.random.default_rng(method.id)
    for n, c in [(1, 1), (200, 2), (1000, 37), (300, 65535)]:
        indices = _sorted_unique(rng, n, 10**6)
        labels = rng.integers(0, c, n).astype(np.int64)
        folders = synthetic_folders(10**6) if method.folders else None
        if c > method.max_classes:  # the encoder never tries it; asked directly, it refuses
            with pytest.raises(PladaEncodeError, match="classes"):
                method.encode(labels, c, indices, 0, folders)
            continue
        section = method.encode(labels, c, indices, 0, folders)
        assert np.array_equal(method.decode(Reader(section), n, c, indices, 0, folders), labels)


def test_hostile_sections_stay_in_bounds():
    """Mutated sections with fixed checksums, decoded by every method: only PladaError escapes.

    Meaningful mostly in the NUMBA_BOUNDSCHECK=1 run, where a kernel indexing
    past an array raises IndexError (reported as a finding).
    """
    sys.path.insert(0, str(HERE / "fuzzers"))
    import fuzz_decode

    seeds = fuzz_decode.load_seeds(None)  # built in memory: covers every registered method
    stats = fuzz_decode.mutation_loop(seeds, 1500, seed=11, modes=("structured", "fixed"), cli_every=0)
    assert stats["unique_findings"] == {}, stats


# --- the same tests under NUMBA_BOUNDSCHECK=1 and NUMBA_DISABLE_JIT=1 ---------------------------


@pytest.mark.skipif(IN_SUBPROCESS, reason="already in the subprocess")
@pytest.mark.parametrize("variable", ["NUMBA_BOUNDSCHECK", "NUMBA_DISABLE_JIT"])
def test_kernels_in_subprocess(variable, tmp_path):
    env = dict(os.environ, PLADA_KERNEL_SUBPROCESS="1", NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    env[variable] = "1"
    # the golden files too: pure-Python integer arithmetic must decode exactly what the JIT encoded
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__)), str(HERE / "test_golden.py"), "-x"]
    if variable == "NUMBA_DISABLE_JIT":
        # plain-Python kernels are ~100x slower: keep the fuzz run and big widths out
        args += ["-k", "not hostile_sections"]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{variable}=1:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"


# --- context models on clustered selections (every path: young and mature contexts, bucket
# tables, literals with and without excluded candidates, split labels) ---------------------


def _clustered(rng, n_runs, n_classes):
    """Dense runs with a dominant label each, sparse scattered picks between them."""
    indices, labels, pos = [], [], 0
    for _ in range(n_runs):
        pos += int(rng.geometric(1e-4))
        length = int(rng.integers(1, 400))
        density = rng.uniform(0.05, 1.0)
        run = pos + np.flatnonzero(rng.random(length) < density)
        dominant = int(rng.integers(0, n_classes))
        noisy = rng.random(run.size) < 0.15
        labels.append(np.where(noisy, rng.integers(0, n_classes, run.size), dominant))
        indices.append(run)
        pos += length
    return np.concatenate(indices).astype(np.uint64), np.concatenate(labels).astype(np.int64)


@pytest.mark.parametrize("n_classes", [1, 2, 3, 4, 10, 32, 33, 256, 257, 1000])
def test_adaptive_coders_round_trip_on_clustered_selections(n_classes):
    rng = np.random.default_rng(n_classes)
    indices, labels = _clustered(rng, 40, n_classes)
    n = int(indices[-1]) + 1
    for method in _methods.METHODS:
        if method.static:
            continue
        folders = synthetic_folders(n) if method.folders else None
        if method.kind == "index":
            section = method.encode(indices, 0, folders)
            assert np.array_equal(method.decode(Reader(section), len(indices), 0, n, folders), indices)
        elif n_classes <= method.max_classes:
            section = method.encode(labels, n_classes, indices, 0, folders)
            assert np.array_equal(method.decode(Reader(section), len(labels), n_classes, indices, 0, folders), labels)


def test_gap_token_alphabet_is_enforced():
    """The gap model codes only tokens below its declared alphabet; a smaller declaration fails cleanly."""
    indices = np.array([0, 1, 2, 1000, 1001, 10**6], dtype=np.uint64)
    skips = np.empty(indices.size, dtype=np.uint64)
    _kernels.gaps_from_indices(indices, np.uint64(0), skips)
    n_tokens = _kernels.gap_tokens_needed(skips)
    geo = _kernels.geo_survivals()
    words, raw, sizes = np.empty(16, np.uint32), np.zeros(64, np.uint8), np.zeros(2, np.int64)
    starts, freqs = np.empty(16, np.int32), np.empty(16, np.int32)
    assert not _kernels.gaps_code(skips, n_tokens - 1, False, words, raw, starts, freqs, sizes, *geo, *NO_FOLDERS)
    raw[:] = 0
    assert _kernels.gaps_code(skips, n_tokens, False, words, raw, starts, freqs, sizes, *geo, *NO_FOLDERS)
    n_words = _kernels.rans_flush(starts, freqs, int(sizes[0]), words)
    out = np.empty(indices.size, np.uint64)
    good_words, good_raw = words[:n_words].copy(), raw[: (sizes[1] + 7) // 8].copy()
    decoded = np.zeros(2, np.int64)
    assert _kernels.gaps_code(out, n_tokens, True, good_words, good_raw, NO_SYMBOLS, NO_SYMBOLS, decoded, *geo, *NO_FOLDERS)
    assert decoded[1] == sizes[1] and np.array_equal(out, skips)
    assert _kernels.gap_tokens_needed(np.zeros(0, np.uint64)) == 1
    assert _kernels.gap_tokens_needed(np.array([7], np.uint64)) == 8
    assert _kernels.gap_tokens_needed(np.array([2**39 + 2**38 + 2**37], np.uint64)) == 156  # 8 + 4 * (39 - 3) + 3, + 1
    assert _kernels.gap_tokens_needed(np.array([2**41 - 1], np.uint64)) == S.GAP_TOKENS


# --- static rANS (FORMAT.md §7.1) -----------------------------------------------


def _static_table(weights, bits):
    freq = np.empty(len(weights), np.int32)
    cum = np.empty(len(weights) + 1, np.int32)
    assert _kernels.static_table(np.asarray(weights, np.int64), bits, freq, cum) == 0
    return freq, cum


@pytest.mark.parametrize("n_symbols, bits", [(2, 16), (3, 16), (60, 16), (4097, 16), (4098, 20), (65_535, 20)])
@pytest.mark.parametrize("count", [1, 2, 3, 1001, S.STATIC_TWO_STATES_MIN - 1, S.STATIC_TWO_STATES_MIN, S.STATIC_TWO_STATES_MIN + 1])
def test_static_rans_round_trip(n_symbols, bits, count):
    rng = np.random.default_rng(n_symbols * 7 + count)
    weights = rng.integers(1, 1 << 20, n_symbols)
    freq, cum = _static_table(weights, bits)
    assert freq.min() >= 1 and cum[-1] == 1 << bits and np.array_equal(np.diff(cum), freq)
    # the quantisation of §7.1, in Python integers
    spread, total = (1 << bits) - n_symbols, int(weights.sum())
    expect = [1 + int(w) * spread // total for w in weights]
    expect[int(np.argmax(expect))] += (1 << bits) - sum(expect)
    assert freq.tolist() == expect
    symbols = rng.integers(0, n_symbols, count).astype(np.int32)
    words = np.empty(count + 4, np.uint32)
    n_words = _kernels.static_rans_encode(symbols, freq, cum, bits, words)
    out = np.empty(count, np.int32)
    assert _kernels.static_rans_decode(words[:n_words].copy(), freq, cum, bits, out) == 0
    assert np.array_equal(out, symbols)
    # one symbol too many or too few, or a word missing: rejected, never out of bounds
    assert _kernels.static_rans_decode(words[:n_words].copy(), freq, cum, bits, np.empty(count + 1, np.int32)) == -1
    if count > 1:
        assert _kernels.static_rans_decode(words[:n_words].copy(), freq, cum, bits, np.empty(count - 1, np.int32)) == -1
    assert _kernels.static_rans_decode(words[: n_words - 1].copy(), freq, cum, bits, out) == -1


def test_static_table_refuses_an_alphabet_that_does_not_fit():
    freq, cum = np.empty(1 << 16, np.int32), np.empty((1 << 16) + 1, np.int32)
    assert _kernels.static_table(np.ones(1 << 16, np.int64), 16, freq, cum) == -1
    assert _kernels.static_table(np.ones(0, np.int64), 16, freq, cum) == -1


def test_static_rans_empty_stream():
    freq, cum = _static_table([1, 1], 16)
    words = np.empty(4, np.uint32)
    assert _kernels.static_rans_encode(np.zeros(0, np.int32), freq, cum, 16, words) == 0
    assert _kernels.static_rans_decode(np.zeros(0, np.uint32), freq, cum, 16, np.empty(0, np.int32)) == 0
    assert _kernels.static_rans_decode(np.zeros(4, np.uint32), freq, cum, 16, np.empty(0, np.int32)) == -1


def test_golomb_escaped_quotients_round_trip_and_are_bounded():
    """Quotients beyond the table (§5.1) travel as varints after the remainders; a varint
    that would put a value past MAX_N_REFERENCE is refused."""
    from pladacodec._coders import golomb_decode, golomb_encode, golomb_weights
    from pladacodec.errors import PladaFormatError

    rng = np.random.default_rng(5)
    x = rng.geometric(1 / 100, 20_000).astype(np.uint64)
    x[[3, 777, 19_999]] = [10**6, 2 * 10**6, 5 * 10**6]
    record = golomb_encode(x)
    b, a = struct.unpack_from(S.GOLOMB_PARAMS_FORMAT, record)
    escape = len(golomb_weights(a)) - 1
    assert int(((x >> np.uint64(b)) >= escape).sum()) >= 3
    reader = Reader(record)
    assert np.array_equal(golomb_decode(reader, len(x), "values"), x)
    assert reader.remaining == 0
    # the last varint, replaced by one that overflows the reference: a clean error
    bad = bytearray(record)
    last = len(bad) - 1
    while last > 0 and bad[last - 1] & 0x80:
        last -= 1
    huge = (S.MAX_N_REFERENCE >> b) + 1
    varint = bytearray()
    while True:
        byte, huge = huge & 0x7F, huge >> 7
        varint.append(byte | (0x80 if huge else 0))
        if not huge:
            break
    with pytest.raises(PladaFormatError):
        golomb_decode(Reader(bytes(bad[:last]) + bytes(varint)), len(x), "values")


def test_decoders_stop_at_the_first_read_past_their_stream():
    """A stream far too short for its symbol count fails at once, not after decoding every
    entry from zero words (amplification of hostile input stays small)."""
    n = 1 << 16
    words = np.array([0, 1 << 31], np.uint32)  # a valid initial state (2^31), then nothing
    geo = _kernels.geo_survivals()
    skips = np.full(n, 7, np.uint64)
    sizes = np.zeros(2, np.int64)
    assert not _kernels.gaps_code(skips, 100, True, words, np.zeros(8, np.uint8), NO_SYMBOLS, NO_SYMBOLS, sizes, *geo, *NO_FOLDERS)
    assert (skips[64:] == 7).all()
    labels = np.full(n, -5, np.int64)
    assert not _kernels.labels_code(labels, np.zeros(n, np.uint64), 10, True, words, NO_SYMBOLS, NO_SYMBOLS, sizes, *NO_FOLDERS)
    assert (labels[64:] == -5).all()
    labels = np.full(n, -5, np.int64)
    assert not _kernels.drift_code(labels, 10, 8, True, words, NO_SYMBOLS, NO_SYMBOLS, sizes)
    assert (labels[64:] == -5).all()
    freq, cum = _static_table([1, 2, 3], 16)
    out = np.full(n, -5, np.int32)
    assert _kernels.static_rans_decode(np.array([0, 1 << 31, 0, 1 << 31], np.uint32), freq, cum, 16, out) == -1
    assert (out[64:] == -5).all()


_PARALLEL_COLD_DECODE = """
import sys, numpy as np, pladacodec
k = 3 * 70_000  # three blocks, decoded on threads: their first calls compile the same kernels at once
indices = np.arange(0, 2 * k, 2, dtype=np.uint64)
labels = np.arange(k) % 7
blob = pladacodec.encode(indices, labels, 2 * k, block_entries=70_000, index_methods=[1], label_methods=[1])
from pladacodec import _kernels
for kernel in _kernels._ENTRY_POINTS:  # forget what encode compiled: decode compiles on its threads
    kernel._dispatcher = None
payload = pladacodec.decode(blob)
assert np.array_equal(payload.indices, indices) and np.array_equal(payload.labels, labels)
print("ok")
"""


@pytest.mark.skipif(IN_SUBPROCESS or os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="needs the JIT, in a fresh process")
def test_threads_that_first_call_a_kernel_together_compile_it_once(tmp_path):
    """Blocks decode on threads; two threads compiling one lazy kernel at once crashed numba."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), PLADACODEC_AOT="0")  # really compile
    result = subprocess.run([sys.executable, "-c", _PARALLEL_COLD_DECODE], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


# --- ahead-of-time kernels ---------------------------------------------------------------------


@pytest.mark.skipif(IN_SUBPROCESS, reason="the compiled kernels are checked in the main process")
def test_a_module_built_ahead_of_time_codes_exactly_as_the_jit(tmp_path):
    """build_aot (here for a generic CPU, as a portable wheel would) exports every entry point,
    and its functions code and decode exactly as the kernels this process uses."""
    import importlib.util

    path = _kernels.build_aot(tmp_path, cpu="")
    stamp = json.loads((tmp_path / _kernels.AOT_STAMP).read_text())
    assert stamp["digest"] == _kernels.source_digest() and stamp["cpu"] == ""
    spec = importlib.util.spec_from_file_location(_kernels.AOT_MODULE, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert all(callable(getattr(module, k.py_func.__name__)) for k in _kernels._ENTRY_POINTS)
    rng = np.random.default_rng(5)
    indices, labels = _clustered(rng, 40, 300)
    skips = np.empty(len(indices), dtype=np.uint64)
    _kernels.gaps_from_indices(indices, np.uint64(0), skips)
    import numba

    jit = numba.njit(_kernels.labels_code._signature, nogil=True, cache=True)(_kernels.labels_code.py_func)
    words = {}
    for name, fn in (("jit", jit), ("aot", module.labels_code)):
        out = np.zeros(3 * len(labels) + 2, dtype=np.uint32)
        starts, freqs = np.zeros(3 * len(labels), dtype=np.int32), np.zeros(3 * len(labels), dtype=np.int32)
        sizes = np.zeros(1, dtype=np.int64)
        assert fn(labels, skips, 300, False, out, starts, freqs, sizes, *NO_FOLDERS)
        n = int(sizes[0])
        words[name] = (starts[:n].copy(), freqs[:n].copy())
    assert all(np.array_equal(a, b) for a, b in zip(words["jit"], words["aot"]))


def test_a_stale_or_disabled_ahead_of_time_module_is_not_used(monkeypatch):
    monkeypatch.setattr(_kernels, "source_digest", lambda: "0" * 64)  # built from other sources
    assert _kernels._load_aot() is None
    monkeypatch.undo()
    monkeypatch.setenv("PLADACODEC_AOT", "0")
    assert _kernels._load_aot() is None


@pytest.mark.skipif(IN_SUBPROCESS, reason="checked and pure-Python kernels never load it")
def test_the_installed_ahead_of_time_module_serves_every_entry_point():
    """Where scripts/setup.sh built it (as in CI) and it is current, no entry point compiles."""
    stamp = Path(_kernels.__file__).with_name(_kernels.AOT_STAMP)
    if os.environ.get("PLADACODEC_AOT") == "0" or not stamp.exists():
        pytest.skip("no ahead-of-time module here (scripts/setup.sh builds it)")
    if json.loads(stamp.read_text())["digest"] != _kernels.source_digest():
        pytest.skip("the ahead-of-time module is stale (the kernels changed since it was built): they compile")
    module = _kernels._aot_module()
    assert module is not None
    for kernel in _kernels._ENTRY_POINTS:
        assert kernel.compile() is getattr(module, kernel.py_func.__name__), kernel.py_func.__name__


def test_mix_on_a_block_larger_than_its_search_sample():
    """Label method 5 picks (h0, h1) on a block's first MIX_SEARCH_LABELS labels, then codes the
    whole block with them: the section still decodes exactly, and names the chosen exponents."""
    from pladacodec import _context
    from pladacodec._bytes import Reader

    rng = np.random.default_rng(5)
    n = _context.MIX_SEARCH_LABELS + 4_321
    labels = rng.integers(0, 7, n).astype(np.int64)
    labels = np.where(rng.random(n) < 0.6, np.roll(labels, 1), labels)  # an order-1 structure
    section = _context.labels_mix_encode(labels, 7)
    h0, h1 = (section[0] >> 4) + 4, (section[0] & 15) + 4
    assert 4 <= min(h0, h1) and max(h0, h1) <= 12
    assert np.array_equal(_context.labels_mix_decode(Reader(section), n, 7), labels)
