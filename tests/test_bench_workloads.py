"""Benchmark workloads are deterministic and well-formed; every baseline round-trips."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

pytest.importorskip("zstandard")
pytest.importorskip("brotli")
pytest.importorskip("pyarrow")
pytest.importorskip("pyroaring")

from pladacodec_bench.baselines import BASELINES, iid_bound_bits, smallest_uint  # noqa: E402
from pladacodec_bench.oracle import _folder_log_probs, _threshold, folder_oracle_bits, generative_oracle_bits  # noqa: E402
from pladacodec_bench.workloads import PROFILES, Selection, folder_starts, make_selection  # noqa: E402

SMALL_PROFILES = ["in1k-c10", "in1k-c100", "in1k-c1000", "uniform-in1k-c100"]


def _assert_well_formed(sel: Selection, keep: float) -> None:
    params = PROFILES[sel.name.split("@")[0]]
    assert sel.n_reference == params.n_reference
    assert sel.n_classes == params.n_classes
    assert sel.indices.dtype == np.uint64 and sel.labels.dtype == np.int64
    assert sel.k == sel.labels.size == round(keep * sel.n_reference)
    assert np.all(sel.indices[1:] > sel.indices[:-1]), "indices must be sorted and unique"
    assert int(sel.indices[-1]) < sel.n_reference
    assert sel.labels.min() >= 0 and sel.labels.max() < sel.n_classes


@pytest.mark.parametrize("profile", SMALL_PROFILES)
@pytest.mark.parametrize("keep", [0.001, 0.01, 0.25])
def test_selection_is_well_formed(profile, keep):
    _assert_well_formed(make_selection(profile, keep, seed=3), keep)


def test_in21k_selection_is_well_formed():
    _assert_well_formed(make_selection("in21k-c200", 0.001), 0.001)


@pytest.mark.parametrize("profile", ["in1k-c100", "uniform-in1k-c100"])
def test_selection_is_deterministic(profile):
    first, again = make_selection(profile, 0.02, seed=7), make_selection(profile, 0.02, seed=7)
    assert np.array_equal(first.indices, again.indices)
    assert np.array_equal(first.labels, again.labels)
    other = make_selection(profile, 0.02, seed=8)
    assert not np.array_equal(first.indices, other.indices)


def test_structured_selection_is_clustered_and_mostly_pure():
    sel = make_selection("in1k-c100", 0.05)
    gaps = np.diff(sel.indices)
    # Dense runs: far more small gaps than a uniform selection of the same size has.
    uniform = np.diff(make_selection("uniform-in1k-c100", 0.05).indices)
    assert np.median(gaps) < np.median(uniform) / 3
    # Labels repeat along the index order far more often than chance (1 / C).
    assert np.mean(sel.labels[1:] == sel.labels[:-1]) > 0.5


def test_main_selection_nests_as_keep_grows():
    small, large = make_selection("in1k-c10", 0.01), make_selection("in1k-c10", 0.05)
    assert np.isin(small.indices, large.indices).mean() > 0.9


def test_unknown_profile_and_bad_keep_are_rejected():
    with pytest.raises(ValueError, match="unknown profile"):
        make_selection("in22k", 0.01)
    with pytest.raises(ValueError, match="keep"):
        make_selection("in1k-c10", 0.0)


@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("profile", ["in1k-c10", "in1k-c1000", "uniform-in1k-c100"])
def test_baseline_round_trips(name, profile):
    sel = make_selection(profile, 0.005, seed=1)
    baseline = BASELINES[name]
    blob = baseline.encode(sel)
    assert isinstance(blob, bytes) and 0 < len(blob) < sel.k * 16
    indices, labels = baseline.decode(blob, sel.n_reference, sel.n_classes)
    assert np.array_equal(np.asarray(indices, dtype=np.uint64), sel.indices)
    assert np.array_equal(np.asarray(labels, dtype=np.int64), sel.labels)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_round_trips_a_single_index(name):
    sel = Selection(np.array([5], dtype=np.uint64), np.array([2], dtype=np.int64), 100, 3, "one")
    indices, labels = BASELINES[name].decode(BASELINES[name].encode(sel), 100, 3)
    assert list(indices) == [5] and list(labels) == [2]


@pytest.mark.parametrize("name", ["ppmd-shuffled", "zpaq5-shuffled"])
def test_general_purpose_baselines_round_trip(name):
    """PPMd and ZPAQ-5 get the same bytes as brotli / xz and give them back exactly."""
    pytest.importorskip({"ppmd-shuffled": "pyppmd", "zpaq5-shuffled": "zpaq"}[name])
    from pladacodec_bench import baselines as B
    from pladacodec_bench.workloads import REAL_DIR, load_real_task

    assert name in B.GENERAL_PURPOSE and name in BASELINES
    for sel in (load_real_task(REAL_DIR / "random-1pct.npz").selection, make_selection("in1k-c100", 0.002, seed=2)):
        payload = B._encode_list_shuffled_payload(sel)
        blob = BASELINES[name].encode(sel)
        if name == "zpaq5-shuffled":
            import zpaq

            assert zpaq.decompress(zpaq.compress(payload, level=B.ZPAQ_LEVEL, threads=1)) == payload
            assert blob == zpaq.compress(payload, level=B.ZPAQ_LEVEL, threads=1, hints=False, verify=False)
        else:  # one tag byte (variant, order), LEB128 length, the smallest stream of the grid
            import pyppmd

            variant, order = ("I" if blob[0] & 0x80 else "H"), blob[0] & 0x7F
            assert order in B.PPMD_ORDERS and B._read_uleb128(blob[1:])[0] == len(payload)
            memory = B._ppmd_memory(len(payload))
            streams = [
                pyppmd.compress(payload, max_order=o, mem_size=memory, variant=v) for v in B.PPMD_VARIANTS for o in B.PPMD_ORDERS
            ]
            body = blob[1 + B._read_uleb128(blob[1:])[1]:]
            assert len(body) == min(map(len, streams))
            assert B._ppmd_raw_decode(body, variant, order, len(payload)) == payload
        indices, labels = BASELINES[name].decode(blob, sel.n_reference, sel.n_classes)
        assert np.array_equal(indices, sel.indices) and np.array_equal(labels, sel.labels)


def test_real_tasks_name_rows_by_scenario_and_read_folder_layouts(tmp_path):
    """Every .npz under the roots, recursively: real-<stem> at a root, real-<scenario>-<stem> below."""
    from pladacodec_bench.workloads import REAL_DIR, real_tasks

    source = np.load(REAL_DIR / "random-1pct.npz")
    fields = {key: source[key] for key in source.files}
    (tmp_path / "demo" / "generic").mkdir(parents=True)
    np.savez(tmp_path / "top.npz", **fields)
    starts = np.array([0, 1000, 50_000], dtype=np.int64)  # without the closing N: added on load
    np.savez(tmp_path / "demo" / "generic" / "lowest-1pct.npz", folder_starts=starts, **fields)
    tasks = real_tasks(tmp_path)
    assert [t.profile for t in tasks] == ["real-demo-generic-lowest-1pct", "real-top"]
    assert [t.panel for t in tasks] == ["real-demo-generic", tmp_path.name]
    assert tasks[1].folder_starts is None
    assert tasks[0].folder_starts.tolist() == [0, 1000, 50_000, int(fields["n_reference"])]
    assert np.array_equal(tasks[0].selection.indices, fields["indices"]) and tasks[0].metadata["strategy"] == "random"


def test_iid_bound_matches_exact_binomials():
    indices = np.array([0, 3, 4, 9], dtype=np.uint64)
    labels = np.array([0, 0, 1, 1], dtype=np.int64)
    sel = Selection(indices, labels, 10, 3, "tiny")
    expected = math.log2(math.comb(10, 4)) + 4 * 1.0 + math.log2(math.comb(4 + 3 - 1, 3 - 1))
    assert iid_bound_bits(sel) == pytest.approx(expected, rel=1e-12)


def test_iid_bound_is_near_uniform_baseline_floor():
    # On a uniform selection nothing beats the bound by much: the best baseline stays above it.
    sel = make_selection("uniform-in1k-c100", 0.01)
    best = min(len(b.encode(sel)) for b in BASELINES.values())
    assert best * 8 > 0.98 * iid_bound_bits(sel)


def test_smallest_uint():
    assert smallest_uint(255) == np.uint8 and smallest_uint(256) == np.uint16
    assert smallest_uint(2**32) == np.uint64


def test_real_selections_load():
    """The teacher's selections on real images (bench/data/real) load as sorted, in-range selections."""
    from pladacodec_bench.workloads import REAL_DIR, real_selections

    rows = real_selections(REAL_DIR)
    assert len(rows) == 8
    for profile, keep, sel in rows:
        assert profile.startswith("real-") and sel.n_reference == 69_098 and sel.n_classes == 10
        assert sel.k in (691, 6_910) and abs(keep - sel.k / sel.n_reference) < 1e-12
        assert bool((sel.indices[1:] > sel.indices[:-1]).all()) and int(sel.indices[-1]) < sel.n_reference
        assert int(sel.labels.min()) >= 0 and int(sel.labels.max()) < 10


# --- the folder-aware oracle ------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["in1k-c10", "in21k-c200"])
def test_folder_starts_are_the_generators_layout(profile):
    params = PROFILES[profile]
    starts = folder_starts(profile)
    assert len(starts) == params.n_folders + 1 and starts[0] == 0 and starts[-1] == params.n_reference
    assert (np.diff(starts) >= 1).all()
    # the layout the selection was drawn from: relevant folders are dense, so a handful of
    # folders holds most of a small selection
    sel = make_selection(profile, 0.001)
    folder = np.searchsorted(starts, sel.indices.astype(np.int64), side="right") - 1
    k_f = np.bincount(folder, minlength=params.n_folders)
    assert np.sort(k_f)[::-1][: params.n_relevant_folders].sum() > 0.7 * sel.k
    assert folder_starts("uniform-" + profile) is None


def test_folder_oracle_matches_its_formula():
    starts = np.array([0, 10, 20], dtype=np.int64)
    sel = Selection(np.array([0, 1, 2, 15], np.uint64), np.array([0, 0, 1, 1], np.int64), 20, 2, "hand-made")
    index_bits, label_bits = folder_oracle_bits(sel, starts)
    lc = lambda n, k: math.log2(math.comb(n, k))  # noqa: E731
    assert index_bits == pytest.approx(lc(2, 2) + 2 * math.log2(10) + lc(10, 3) + lc(10, 1))

    def folder(hits, n):
        return min(-(hits * math.log2(p + (1 - p) / 2) + (n - hits) * math.log2((1 - p) / 2)) for p in (0.9, 0.7, 0.5))

    assert label_bits == pytest.approx(2 * (1 + math.log2(3)) + folder(2, 3) + folder(1, 1))


# --- the generative oracle -----------------------------------------------------------------------

_TINY = dataclasses.replace(
    PROFILES["in1k-c10"], n_reference=6, n_classes=2, n_folders=2, n_relevant_folders=1, relevance_mean=1.5
)


@pytest.mark.parametrize("n_safety", [0, 2])
@pytest.mark.parametrize("t", [-1.0, 0.7, 3.0])
def test_generative_oracle_is_a_proper_code(t, n_safety):
    """Its probabilities over every selection of a tiny reference (two folders of 3 images, C = 2)
    and every labelling sum to 1: it is a code, not an estimate that could undercut any coder."""
    n_f = np.array([3.0, 3.0])
    total = 0.0
    for picked in itertools.product([0, 1], repeat=6):
        chosen = [i for i in range(6) if picked[i]]
        folder = np.array([i // 3 for i in chosen], dtype=np.int64)
        k_f = np.bincount(folder, minlength=2).astype(np.float64)
        for labels in itertools.product(range(2), repeat=len(chosen)):
            keys, counts = np.unique(folder * 2 + np.array(labels, dtype=np.int64), return_counts=True)
            log_p = _folder_log_probs(n_f, k_f, keys // 2, counts.astype(np.float64), _TINY, t, n_safety)
            total += math.exp(log_p.sum())
    assert total == pytest.approx(1.0, abs=1e-9)


def test_generative_oracle_threshold_gives_the_expected_count():
    params = PROFILES["in21k-c200"]
    t = _threshold(params, 141_971)
    pi_rel = params.n_relevant_folders / params.n_folders
    expected = params.n_reference * sum(
        w * 0.5 * math.erfc((t - mean) / math.hypot(sd, params.image_noise_sd) / math.sqrt(2))
        for w, mean, sd in ((pi_rel, params.relevance_mean, params.relevance_sd), (1 - pi_rel, 0.0, params.background_sd))
    )
    assert expected == pytest.approx(141_971, rel=1e-9)


@pytest.mark.parametrize("profile", ["in1k-c10", "in1k-c100", "in1k-c1000"])
def test_generative_oracle_knows_the_process(profile):
    """Shorter than the two-part folder oracle, and shorter with the generator's own parameters
    than with wrong ones (label purity, number of relevant folders): it is the generator's model."""
    sel, starts, params = make_selection(profile, 0.01), folder_starts(profile), PROFILES[profile]
    bits = generative_oracle_bits(sel, starts, params)
    assert bits < sum(folder_oracle_bits(sel, starts))
    for wrong in (
        dataclasses.replace(params, label_purity=0.6),
        dataclasses.replace(params, label_purity=0.95),
        dataclasses.replace(params, n_relevant_folders=params.n_relevant_folders // 2),
        dataclasses.replace(params, n_relevant_folders=params.n_relevant_folders * 3),
    ):
        assert bits < generative_oracle_bits(sel, starts, wrong)
