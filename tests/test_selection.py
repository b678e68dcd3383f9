"""Selection strategies, Safety-Net invariants, budget search, scores directory, `select` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import pladacodec
from pladacodec.selection import (
    SCORE_ARRAYS,
    SCORES_FORMAT,
    SCORES_VERSION,
    PladaSelectionError,
    load_scores,
    parse_keep,
    parse_size,
    safety_net_quotas,
    select,
    select_budget,
    shard_done_path,
    shard_path,
)


# ----------------------------------------------------------------- strategies


def test_lowest_and_highest_energy_with_ties_by_index():
    energy = np.array([1.0, 0.0, 1.0, 0.0, 2.0, 1.0])
    labels = np.zeros(6, dtype=np.int64)
    assert select(energy, labels, count=3).indices.tolist() == [0, 1, 3]  # sorted output
    assert select(energy, labels, count=4).indices.tolist() == [0, 1, 2, 3]
    assert select(energy, labels, count=2, strategy="highest-energy").indices.tolist() == [0, 4]


def test_entropy_and_random_strategies():
    energy = np.zeros(5)
    entropy = np.array([0.3, 0.1, 0.2, 0.0, 0.9])
    labels = np.array([0, 1, 0, 1, 0])
    sel = select(energy, labels, count=2, strategy="entropy", entropy=entropy)
    assert sel.indices.tolist() == [1, 3] and sel.labels.tolist() == [1, 1]
    with pytest.raises(PladaSelectionError, match="entropy"):
        select(energy, labels, count=2, strategy="entropy")
    a = select(np.zeros(1000), np.zeros(1000, dtype=np.int64), count=10, strategy="random", seed=3)
    b = select(np.zeros(1000), np.zeros(1000, dtype=np.int64), count=10, strategy="random", seed=3)
    c = select(np.zeros(1000), np.zeros(1000, dtype=np.int64), count=10, strategy="random", seed=4)
    assert a.indices.tolist() == b.indices.tolist() != c.indices.tolist()
    assert a.metadata()["seed"] == 3
    with pytest.raises(PladaSelectionError, match="unknown strategy"):
        select(energy, labels, count=1, strategy="best")


def test_keep_fraction_rounds_half_up():
    labels = np.zeros(10, dtype=np.int64)
    assert select(np.arange(10.0), labels, keep=0.25).count == 3  # 2.5 -> 3
    assert select(np.arange(10.0), labels, keep=0.0).count == 0
    assert select(np.arange(10.0), labels, keep=1.0).count == 10
    with pytest.raises(PladaSelectionError, match="exactly one"):
        select(np.arange(10.0), labels, keep=0.1, count=1)


def test_nan_never_selected_and_inf_ordered():
    energy = np.array([np.nan, -np.inf, 0.0, np.inf, np.nan, -1.0])
    labels = np.array([7, 0, 1, 2, 9, 1])  # labels of NaN rows are ignored (even out of range)
    sel = select(energy, labels, count=4, n_classes=3)
    assert sel.indices.tolist() == [1, 2, 3, 5]
    assert select(energy, labels, count=1, n_classes=3, strategy="highest-energy").indices.tolist() == [3]
    with pytest.raises(PladaSelectionError, match="4 of the 6 reference images are eligible"):
        select(energy, labels, count=5, n_classes=3)
    sn = select(energy, labels, count=4, n_classes=3, safety_net=1.0)
    assert sn.class_counts.tolist() == [1, 2, 1]
    assert sorted(sn.indices.tolist()) == [1, 2, 3, 5]


def test_bad_inputs():
    with pytest.raises(PladaSelectionError, match="integers"):
        select(np.zeros(3), np.zeros(3), count=1)
    with pytest.raises(PladaSelectionError, match="out of range"):
        select(np.zeros(3), np.array([0, 1, 5]), count=1, n_classes=3)
    with pytest.raises(PladaSelectionError, match="shapes"):
        select(np.zeros(3), np.zeros(2, dtype=int), count=1)
    with pytest.raises(PladaSelectionError, match="safety_net"):
        select(np.zeros(3), np.zeros(3, dtype=int), count=1, safety_net=1.5)


# ----------------------------------------------------------------- Safety-Net


def test_quota_examples():
    # R >= C+: one each, then the rest by N_c^alpha with largest remainders
    assert safety_net_quotas([1000, 10, 0, 1], 6, alpha=0.5).tolist() == [4, 1, 0, 1]
    # R < C+: the classes with the largest weights (rarest for alpha < 0)
    assert safety_net_quotas([1000, 10, 0, 1], 2, alpha=-0.2).tolist() == [0, 1, 0, 1]
    assert safety_net_quotas([1000, 10, 0, 1], 2, alpha=0.5).tolist() == [1, 1, 0, 0]
    # ties in weight go to the smaller class index
    assert safety_net_quotas([5, 5, 5], 1, alpha=-0.2).tolist() == [1, 0, 0]
    assert safety_net_quotas([5, 5, 5], 5, alpha=0.5).tolist() == [2, 2, 1]
    # caps at N_c with the surplus redistributed
    assert safety_net_quotas([1000, 1, 0, 1], 20, alpha=-1.0).tolist() == [18, 1, 0, 1]
    assert safety_net_quotas([3, 2, 0], 5, alpha=-0.2).tolist() == [3, 2, 0]
    # N_c = 0 never gets a quota, for any alpha
    for alpha in (-0.2, 0.0, 0.5):
        assert safety_net_quotas([0, 4, 0], 3, alpha=alpha).tolist() == [0, 3, 0]
    with pytest.raises(PladaSelectionError, match="only 4 images"):
        safety_net_quotas([0, 4], 5, alpha=0.5)


@st.composite
def _scores(draw):
    n_classes = draw(st.integers(1, 12))
    n = draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    skew = rng.dirichlet(np.full(n_classes, draw(st.sampled_from([0.1, 1.0, 10.0]))))
    labels = rng.choice(n_classes, size=n, p=skew)
    energy = np.round(rng.normal(size=n), 1)  # rounding makes ties
    energy[rng.random(n) < draw(st.sampled_from([0.0, 0.1]))] = np.nan
    return energy, labels, n_classes


@settings(max_examples=150, deadline=None)
@given(scores=_scores(), data=st.data())
def test_safety_net_invariants(scores, data):
    energy, labels, n_classes = scores
    eligible = ~np.isnan(energy)
    count = data.draw(st.integers(0, int(eligible.sum())))
    s = data.draw(st.sampled_from([0.1, 0.25, 0.5, 1.0]))
    alpha = data.draw(st.sampled_from([-0.2, 0.0, 0.5, 1.0]))
    strategy = data.draw(st.sampled_from(["lowest-energy", "highest-energy"]))
    sel = select(energy, labels, count=count, safety_net=s, alpha=alpha, n_classes=n_classes, strategy=strategy)

    n_c = np.bincount(labels[eligible], minlength=n_classes)
    reserved = int(np.floor(s * count + 0.5))
    assert sel.count == count  # total equals the budget
    assert len(np.unique(sel.indices)) == count  # no image twice
    assert np.all(np.diff(sel.indices) > 0)
    assert eligible[sel.indices].all()  # NaN never selected
    np.testing.assert_array_equal(sel.labels, labels[sel.indices])
    np.testing.assert_array_equal(sel.class_counts, n_c)
    q = sel.quotas
    assert q.sum() == reserved and (q <= n_c).all() and (q[n_c == 0] == 0).all()
    per_class = np.bincount(sel.labels, minlength=n_classes)
    assert (per_class >= q).all()  # every quota is filled
    present = n_c > 0
    if reserved >= present.sum():  # every predicted class appears when the budget allows
        assert (per_class[present] >= 1).all()
        # quotas as documented: 1 + Hamilton share of the rest, capped at N_c
        if present.any() and (q < n_c)[present].all():
            w = np.zeros(n_classes)
            w[present] = n_c[present].astype(float) ** alpha
            exact = 1 + (reserved - present.sum()) * w / w.sum()
            assert (np.abs(q - exact)[present] < 1 + 1e-9).all()
    else:
        assert q.sum() == reserved and (q <= 1).all()
    # each class quota is filled with that class's best images
    key = energy if strategy == "lowest-energy" else -energy
    quota_picks = []
    for c in np.flatnonzero(q):
        cls = np.flatnonzero((labels == c) & eligible)
        quota_picks += cls[np.argsort(key[cls], kind="stable")][: q[c]].tolist()
    assert np.isin(quota_picks, sel.indices).all()
    # the rest of the budget goes by global rank among the images not yet picked
    others = np.setdiff1d(np.flatnonzero(eligible), quota_picks)
    rest = others[np.argsort(key[others], kind="stable")][: count - reserved]
    assert sorted(quota_picks + rest.tolist()) == sel.indices.tolist()


@settings(max_examples=60, deadline=None)
@given(scores=_scores(), data=st.data())
def test_without_safety_net_takes_global_best(scores, data):
    energy, labels, n_classes = scores
    eligible = np.flatnonzero(~np.isnan(energy))
    count = data.draw(st.integers(0, len(eligible)))
    sel = select(energy, labels, count=count, n_classes=n_classes)
    order = eligible[np.lexsort((eligible, energy[eligible]))]
    assert sel.indices.tolist() == sorted(order[:count].tolist())
    assert sel.quotas is None


# ----------------------------------------------------------------- budget


def test_budget_search_with_the_real_encoder():
    rng = np.random.default_rng(0)
    n, c = 20_000, 10
    energy = rng.normal(size=n).astype(np.float32)
    labels = rng.integers(0, c, size=n)

    def size(sel):
        return len(pladacodec.encode(sel.indices, sel.labels, n, n_classes=c))

    for budget in (200, 1000, 3000):
        sel = select_budget(energy, labels, budget, size_of=size, safety_net=0.2, alpha=-0.2, n_classes=c)
        assert size(sel) <= budget
        bigger = select(energy, labels, count=sel.count + 1, safety_net=0.2, alpha=-0.2, n_classes=c)
        assert size(bigger) > budget
    full = select_budget(energy, labels, 10**7, size_of=size)
    assert full.count == n
    with pytest.raises(PladaSelectionError, match="too small"):
        select_budget(energy, labels, 5, size_of=size)


def test_parse_size_and_keep():
    assert parse_size("100KB") == 100_000
    assert parse_size("64KiB") == 65_536
    assert parse_size("1.5MB") == 1_500_000
    assert parse_size("900") == 900
    assert parse_keep("1%") == 0.01
    assert parse_keep("0.25") == 0.25
    for bad in ("12 parsecs", "KB", ""):
        with pytest.raises(PladaSelectionError):
            parse_size(bad)
    for bad in ("150%", "-1", "lots"):
        with pytest.raises(PladaSelectionError):
            parse_keep(bad)


# ----------------------------------------------------------------- scores directory + CLI


def _write_scores(path, energy, labels, entropy, shard_size, n_classes, class_names=None, fp=None, done=None):
    path.mkdir(parents=True, exist_ok=True)
    n = len(energy)
    n_shards = (n + shard_size - 1) // shard_size
    meta = {"format": SCORES_FORMAT, "version": SCORES_VERSION, "n": n, "shard_size": shard_size,
            "n_shards": n_shards, "reference_fingerprint": fp.hex() if fp else None, "teacher": "test",
            "temperature": 1.0, "n_classes": n_classes, "class_names": class_names}
    (path / "meta.json").write_text(json.dumps(meta))
    arrays = {"energy": energy, "label": labels, "entropy": entropy}
    for s in range(n_shards):
        for kind, dtype in SCORE_ARRAYS.items():
            np.save(shard_path(path, kind, s), arrays[kind][s * shard_size:(s + 1) * shard_size].astype(dtype))
        if done is None or s in done:
            shard_done_path(path, s).touch()


@pytest.fixture
def scores_dir(tmp_path):
    rng = np.random.default_rng(1)
    n = 1000
    energy = rng.normal(size=n).astype(np.float32)
    labels = rng.choice(4, size=n, p=[0.7, 0.2, 0.1, 0.0])
    entropy = rng.random(n).astype(np.float32)
    _write_scores(tmp_path / "scores", energy, labels, entropy, 300, 4, ["w", "x", "y", "z"], fp=bytes(range(32)))
    return tmp_path / "scores", energy, labels


def test_load_scores(scores_dir, tmp_path):
    path, energy, labels = scores_dir
    scores = load_scores(path)
    np.testing.assert_array_equal(scores.energy, energy)
    np.testing.assert_array_equal(scores.label, labels)
    assert scores.n == 1000 and scores.n_classes == 4 and scores.class_names == ("w", "x", "y", "z")
    assert scores.reference_fingerprint == bytes(range(32))
    _write_scores(tmp_path / "part", energy, labels, energy, 300, 4, done={0, 2})
    with pytest.raises(PladaSelectionError, match="2 of 4 shards are complete"):
        load_scores(tmp_path / "part")
    with pytest.raises(PladaSelectionError, match="not a scores directory"):
        load_scores(tmp_path)


def test_select_command_writes_a_task(scores_dir, tmp_path):
    from pladacodec_cli.server import select as select_cmd

    path, energy, labels = scores_dir
    out = tmp_path / "task.plada"
    args = [str(path), "--keep", "5%", "--safety-net", "0.5", "--alpha", "-0.2", "-o", str(out)]
    result = CliRunner().invoke(select_cmd, args)
    assert result.exit_code == 0, result.output
    task = pladacodec.read(out)
    expected = select(energy, labels, count=50, safety_net=0.5, alpha=-0.2, n_classes=4)
    np.testing.assert_array_equal(task.indices, expected.indices)
    np.testing.assert_array_equal(task.labels, expected.labels)
    assert task.n_reference == 1000 and task.n_classes == 4 and task.class_names == ("w", "x", "y", "z")
    assert task.reference_fingerprint == bytes(range(32))
    assert task.metadata["strategy"] == "lowest-energy" and task.metadata["safety_net"] == 0.5
    assert set(np.unique(task.labels)) == {0, 1, 2}  # class 3 has N_c = 0

    result = CliRunner().invoke(select_cmd, [str(path), "--budget", "300B", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size <= 300

    # --format-version: a task a 2.0 reader decodes, the same selection
    result = CliRunner().invoke(select_cmd, [str(path), "--budget", "300B", "--format-version", "2.0", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size <= 300 and pladacodec.read_header(out.read_bytes()).version == (2, 0)
    result = CliRunner().invoke(select_cmd, [str(path), "--count", "5", "--format-version", "1.5", "-o", str(out)])
    assert result.exit_code != 0 and "--format-version: this writer writes format versions 2.0 to" in result.output

    result = CliRunner().invoke(select_cmd, [str(path), "--count", "5", "--keep", "1%", "-o", str(out)])
    assert result.exit_code != 0 and "exactly one" in result.output
    result = CliRunner().invoke(select_cmd, [str(path), "--count", "5000", "-o", str(out)])
    assert result.exit_code != 0 and "asked for 5,000 images" in result.output


def test_select_to_selection_file_then_pack(scores_dir, tmp_path):
    from pladacodec_cli.codec import pack
    from pladacodec_cli.server import select as select_cmd

    path, energy, labels = scores_dir
    direct, packed, sel = tmp_path / "direct.plada", tmp_path / "packed.plada", tmp_path / "sel.npz"
    base = [str(path), "--count", "40", "--strategy", "highest-energy"]
    assert CliRunner().invoke(select_cmd, base + ["-o", str(direct)]).exit_code == 0
    result = CliRunner().invoke(select_cmd, base + ["-o", str(sel)])
    assert result.exit_code == 0, result.output
    task = pladacodec.read(direct)
    result = CliRunner().invoke(pack, [str(sel), "-o", str(packed), "--fingerprint", bytes(range(32)).hex()])
    assert result.exit_code == 0, result.output
    again = pladacodec.read(packed)
    np.testing.assert_array_equal(again.indices, task.indices)
    np.testing.assert_array_equal(again.labels, task.labels)
    assert (again.n_reference, again.class_names, again.reference_fingerprint) == (
        1000, ("w", "x", "y", "z"), bytes(range(32)))


def test_select_with_the_reference_folder_layout(tmp_path):
    """select --folders: a teacher that likes a few neighbouring folders, each with its own class;
    the task names the reference's layout and decodes with it."""
    from pladacodec_cli.server import select as select_cmd

    root = tmp_path / "ref"
    for f in range(60):
        (root / f"s{f:02d}").mkdir(parents=True)
        for i in range(100):
            (root / f"s{f:02d}" / f"{i:02d}.png").write_bytes(b"")
    ref = pladacodec.Reference.from_dir(root)
    rng = np.random.default_rng(3)
    folder = np.repeat(np.arange(60), 100)
    energy = (rng.normal(size=6000) + np.where((folder >= 10) & (folder < 34), -1.5, 0.0)).astype(np.float32)
    labels = np.where(rng.random(6000) < 0.9, folder % 4, rng.integers(0, 4, 6000))
    _write_scores(tmp_path / "scores", energy, labels, energy, 2500, 4, fp=ref.fingerprint)
    out, plain = tmp_path / "task.plada", tmp_path / "plain.plada"
    base = [str(tmp_path / "scores"), "--keep", "10%", "--reference", str(root)]
    result = CliRunner().invoke(select_cmd, base + ["--folders", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(select_cmd, base + ["-o", str(plain)]).exit_code == 0
    assert out.stat().st_size < plain.stat().st_size
    assert pladacodec.read_header(out.read_bytes()).folders == (60, ref.folder_layout().digest)
    task, expected = pladacodec.read(out, folders=ref), pladacodec.read(plain)
    np.testing.assert_array_equal(task.indices, expected.indices)
    np.testing.assert_array_equal(task.labels, expected.labels)
    result = CliRunner().invoke(select_cmd, [str(tmp_path / "scores"), "--keep", "1%", "--folders", "-o", str(out)])
    assert result.exit_code != 0 and "--folders needs --reference" in result.output
