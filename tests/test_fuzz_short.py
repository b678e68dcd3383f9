"""A short, bounded fuzz run in CI (no atheris): only PladaError escapes, every input is fast.

The full campaign (>= 1,000,000 executions, coverage-guided) is
``python bench/fuzz_campaign.py``; this runs the same oracle
(``tests/fuzzers/fuzz_decode.check_input``) on a fixed-seed mutation loop for a
few seconds, plus hypothesis over arbitrary and preamble-prefixed bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pladacodec
from pladacodec import _spec as S

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "fuzzers"))
import fuzz_decode  # noqa: E402

SEEDS = fuzz_decode.load_seeds(None)  # built in memory: every registered coding method


def _assert_clean(findings):
    assert not findings, "\n\n".join(f"{f.kind}: {f.key}\n{f.detail}" for f in findings)


def test_fixed_seed_mutation_loop():
    stats = fuzz_decode.mutation_loop(SEEDS, 20_000, seed=20240601, time_budget_s=8.0, cli_every=211)
    assert stats["unique_findings"] == {}, stats
    assert stats["executions"] >= 1_000  # the budget is not eaten by warm-up
    assert stats["max_time_s"] < fuzz_decode.TIME_LIMIT_S


def test_seeds_decode_and_checksum_fixup_is_identity():
    for seed in SEEDS:
        assert fuzz_decode.fix_checksums(seed) == seed
        assert fuzz_decode.Structure.parse(seed).serialize() == seed
        _assert_clean(fuzz_decode.check_input(seed, cli=False))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data):
    _assert_clean(fuzz_decode.check_input(data, cli=False))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.integers(0, 2**32), st.binary(max_size=24), st.integers(0, 3))
def test_seed_with_spliced_bytes_and_fixed_checksums(seed, at, patch, mode):
    at %= len(seed)
    if mode == 0:  # overwrite
        data = seed[:at] + patch + seed[at + len(patch) :]
    elif mode == 1:  # insert
        data = seed[:at] + patch + seed[at:]
    elif mode == 2:  # delete
        data = seed[:at] + seed[at + len(patch) + 1 :]
    else:  # truncate
        data = seed[:at]
    _assert_clean(fuzz_decode.check_input(data, fix=True, cli=False))


# --- regression tests for findings ------------------------------------------------------------


def test_forced_method_that_declines_a_block_is_an_encode_error():
    """Finding: encode(index_methods=[bitmap]) on a block wider than a bitmap may span raised TypeError."""
    with pytest.raises(pladacodec.PladaEncodeError, match="can code this block"):
        pladacodec.encode([0, 2**39], [0, 1], 2**40, index_methods=[S.INDEX_BITMAP_ANS])
