"""A short, bounded fuzz run in CI (no atheris): only PladaError escapes, every input is fast.

The full campaign (>= 1,000,000 executions, coverage-guided) is
``python bench/fuzz_campaign.py``; this runs the same oracle
(``tests/fuzzers/fuzz_decode.check_input``) on a fixed-seed mutation loop for a
few seconds, plus hypothesis over arbitrary and preamble-prefixed bytes, and checks
the fuzzer's own tools: the 2.0 checksum fix-up and structure parser, the seeds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pladacodec
from pladacodec import _methods
from pladacodec import _spec as S

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "fuzzers"))
import fuzz_decode  # noqa: E402
import make_corpus  # noqa: E402

SEEDS = fuzz_decode.load_seeds(None)  # built in memory: every pair of coding methods


def _assert_clean(findings):
    assert not findings, "\n\n".join(f"{f.kind}: {f.key}\n{f.detail}" for f in findings)


def test_fixed_seed_mutation_loop():
    stats = fuzz_decode.mutation_loop(SEEDS, 20_000, seed=20240601, time_budget_s=8.0, cli_every=211)
    assert stats["unique_findings"] == {}, stats
    assert stats["executions"] >= 1_000  # the budget is not eaten by warm-up
    assert stats["max_time_s"] < fuzz_decode.TIME_LIMIT_S


# --- the seeds ----------------------------------------------------------------------------------


def test_in_memory_seeds_cover_every_method_pair():
    """Every (index method, label method) pair of _methods has seeds, and the blocks of each
    pair's seeds really use that pair."""
    corpus = make_corpus.build_corpus()
    assert len(SEEDS) == len(corpus)
    pairs = {(i.id, c.id) for i in _methods.METHODS if i.kind == "index" for c in _methods.METHODS if c.kind == "label"}
    assert set(make_corpus.method_pairs()) == pairs
    for index_method, label_method in pairs:
        names = [make_corpus.seed_name(index_method, label_method, shape[0]) for shape in make_corpus._shapes()]
        names = [name for name in names if name in corpus]
        assert len(names) >= 5, (index_method, label_method, names)
        for name in names:
            data = corpus[name]
            blocks = pladacodec.inspect(data, folders=make_corpus.folders_for(data)).layout.blocks
            assert {(b.index.method, b.label.method) for b in blocks} <= {(index_method, label_method)}, name


def test_committed_seed_set_is_small_and_valid():
    """Only a small seed set is committed (the rest is built in memory): one file per method pair
    and the special shapes, each under 4 KB, the names make_corpus gives it, every method pair, each a valid 2.0 file that the
    fuzzer's parser round-trips.  (Byte identity with today's encoder is not required: a seed is
    a starting point; ``make_corpus.py --check`` tells when it is stale.)"""
    on_disk = {p.name: p.read_bytes() for p in make_corpus.CORPUS_DIR.glob("*.plada")}
    assert sorted(on_disk) == sorted(make_corpus.seed_set()), "run: python tests/fuzzers/make_corpus.py"
    assert sorted(p.name for p in make_corpus.CORPUS_DIR.iterdir()) == sorted(on_disk)  # nothing else there
    assert len(on_disk) == len(make_corpus.method_pairs()) + len(make_corpus.SEED_SPECIAL)  # 15 + 7
    assert max(len(d) for d in on_disk.values()) < make_corpus.SEED_MAX_BYTES
    pairs_on_disk = set()
    for data in on_disk.values():
        assert fuzz_decode.Structure.parse(data).serialize() == data
        blocks = pladacodec.inspect(data, folders=make_corpus.folders_for(data)).layout.blocks
        pairs_on_disk |= {(b.index.method, b.label.method) for b in blocks}
    assert pairs_on_disk == set(make_corpus.method_pairs())
    assert fuzz_decode.load_seeds(make_corpus.CORPUS_DIR) == [on_disk[n] for n in sorted(on_disk)]


# --- the fuzzer's tools -------------------------------------------------------------------------


def test_seeds_decode_and_checksum_fixup_is_identity():
    for seed in SEEDS:
        assert fuzz_decode.fix_checksums(seed) == seed
        assert fuzz_decode.Structure.parse(seed).serialize() == seed
        _assert_clean(fuzz_decode.check_input(seed, cli=False))


def _damage_label_section(seed: bytes) -> tuple[bytes, pladacodec.TaskInfo] | None:
    info = pladacodec.inspect(seed, folders=make_corpus.folders_for(seed))
    section = info.layout.blocks[-1].label if info.layout.blocks else None
    if section is None or section.size == 0:
        return None
    damaged = bytearray(seed)
    damaged[section.offset + section.size // 2] ^= 0x5A
    return bytes(damaged), info


def test_checksum_fixup_lets_damage_reach_the_coders():
    """A damaged section is caught by its block CRC as given; with the CRCs fixed up, the
    coders see it (never a checksum error), and fix_checksums agrees with common's repair."""
    from common import repair_checksums

    reached = 0
    for seed in SEEDS:
        got = _damage_label_section(seed)
        if got is None:
            continue
        damaged, info = got
        with pytest.raises(pladacodec.PladaChecksumError):
            pladacodec.decode(damaged, folders=make_corpus.folders_for(damaged))
        fixed = fuzz_decode.fix_checksums(damaged)
        assert fixed == repair_checksums(damaged, info.layout)
        try:
            pladacodec.decode(fixed, folders=make_corpus.folders_for(fixed))
        except pladacodec.PladaChecksumError as exc:
            raise AssertionError(f"checksum fix-up missed a CRC: {exc}") from None
        except pladacodec.PladaError:
            reached += 1
    assert reached >= len(SEEDS) // 2


def test_structured_mutations_reach_every_layer():
    """The structure-aware mutator's files pass the CRCs and fail (or decode) in the header
    checks, the block framing and the coders of every method."""
    rng = np.random.default_rng(7)
    layers = {"header": 0, "framing": 0, "coders": 0, "decoded": 0}
    for i in range(1500):
        data = fuzz_decode.mutate_structured(rng, SEEDS[i % len(SEEDS)], SEEDS)
        try:
            pladacodec.decode(data, folders=make_corpus.folders_for(data))
            layers["decoded"] += 1
        except pladacodec.PladaChecksumError as exc:
            raise AssertionError(f"a structured mutation left a wrong checksum: {exc}") from None
        except pladacodec.PladaError as exc:
            message = str(exc)
            if message.startswith(("index stream", "label stream", "label histogram", "index section:",
                                   "label section:", "label method")):
                layers["coders"] += 1
            elif "block" in message or "section" in message:
                layers["framing"] += 1
            else:
                layers["header"] += 1
    assert all(count >= 50 for count in layers.values()), layers


def test_structure_edits_round_trip():
    """Parse, edit, serialise: the 2.0 framing written back is what the decoder expects."""
    seed = make_corpus.build_corpus()[make_corpus.seed_name(S.INDEX_CONTEXT, S.LABEL_DRIFT, "blocks")]
    st = fuzz_decode.Structure.parse(seed)
    assert (st.major, st.minor) == (S.VERSION_MAJOR, S.VERSION_MINOR)
    assert st.values[3] == 64 and len(st.blocks) == 5 and st.tail == b""
    assert all((b.index_method, b.label_method) == (S.INDEX_CONTEXT, S.LABEL_DRIFT) for b in st.blocks)
    expected = pladacodec.decode(seed)
    assert [b.base for b in st.blocks[1:]] == [int(expected.indices[64 * j - 1]) + 1 for j in range(1, 5)]
    st.fields.append((9, b"optional"))
    assert pladacodec.decode(st.serialize()) == expected
    st.tail = b"\x00"
    with pytest.raises(pladacodec.PladaFormatError, match="unused bytes"):
        pladacodec.decode(st.serialize())


# --- hypothesis ----------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data):
    _assert_clean(fuzz_decode.check_input(data, cli=False))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_bytes_after_a_valid_preamble(data):
    _assert_clean(fuzz_decode.check_input(S.MAGIC + bytes([S.VERSION_MAJOR, S.VERSION_MINOR]) + data, cli=False))


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


def test_forced_method_that_cannot_be_used_is_an_encode_error():
    """Finding (1.x): a forced method that could not code a block raised TypeError.  In 2.0 the
    one method that cannot always be used is a folder method without a layout."""
    with pytest.raises(pladacodec.PladaEncodeError, match="folder layout"):
        pladacodec.encode([0, 2**39], [0, 1], 2**40, index_methods=[S.INDEX_CONTEXT_FOLDERS])
    with pytest.raises(pladacodec.PladaEncodeError, match="folder layout"):
        pladacodec.encode([0, 2**39], [0, 1], 2**40, label_methods=[S.LABEL_CONTEXT_FOLDERS])
