"""``strategy="auto"``: the proxy student, the candidates, the metadata, the CLI and the
features that ``pladacodec.teacher.score`` records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import pladacodec
from pladacodec.selection import (
    AUTO_CANDIDATES,
    FEATURE_DTYPE,
    Candidate,
    PladaSelectionError,
    load_scores,
    proxy_accuracy,
    select,
    select_budget,
    shard_path,
)


def _task(seed: int = 0, n: int = 3000, d: int = 16, n_classes: int = 5):
    """A pool whose *confident* (low-energy) images are noise with arbitrary labels and whose
    high-energy images are the target's: auto must see that highest-energy teaches best.
    (Noise labels are a fixed wrong function of the features, so that no lucky draw of
    random labels lines up with the target's clusters.)"""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(n_classes, d))
    in_domain = rng.random(n) < 0.3
    labels = rng.integers(0, n_classes, size=n)
    features = rng.normal(size=(n, d))
    features[in_domain] += centres[labels[in_domain]]
    labels[~in_domain] = (features[~in_domain, :n_classes].argmax(1) + 1) % n_classes
    energy = np.where(in_domain, 0.0, -5.0) + rng.normal(scale=0.1, size=n)
    val_y = rng.integers(0, n_classes, size=300)
    val_x = rng.normal(size=(300, d)) + centres[val_y]
    return energy, labels, features.astype(np.float32), (val_x, val_y)


def test_auto_chooses_what_the_proxy_prefers_and_records_every_candidate():
    energy, labels, features, validation = _task()
    sel = select(energy, labels, keep=0.05, strategy="auto", features=features, validation=validation)
    assert sel.strategy == "highest-energy"
    again = select(energy, labels, keep=0.05, strategy="highest-energy")
    assert np.array_equal(sel.indices, again.indices) and np.array_equal(sel.labels, again.labels)
    meta = sel.metadata()
    assert meta["auto"]["chosen"] == "highest-energy"
    assert list(meta["auto"]["candidates"]) == [c.name for c in AUTO_CANDIDATES]
    assert meta["auto"]["proxy_accuracy"] == max(meta["auto"]["candidates"].values()) > 0.9
    assert meta["auto"]["candidates"]["lowest-energy"] < 0.6
    assert meta["auto"]["validation_images"] == 300
    # it travels in the file
    blob = pladacodec.encode(sel.indices, sel.labels, len(energy), n_classes=5, metadata=meta)
    assert pladacodec.decode(blob).metadata["auto"] == json.loads(json.dumps(meta["auto"]))


def test_auto_over_keep_rates_and_own_candidates():
    energy, labels, features, validation = _task(1)
    cands = [Candidate("lowest-energy"), Candidate("lowest-energy", 0.5, -0.2)]
    sel = select(energy, labels, keep=[0.01, 0.1], strategy="auto", features=features,
                 validation=validation, candidates=cands, entropy=np.zeros_like(energy))
    keys = list(sel.auto["candidates"])
    assert keys == ["lowest-energy@0.01", "safety-net(alpha=-0.2)@0.01",
                    "lowest-energy@0.1", "safety-net(alpha=-0.2)@0.1"]
    assert sel.count in (30, 300)
    # entropy joins the default candidates when entropies are given
    sel = select(energy, labels, keep=0.05, strategy="auto", features=features, validation=validation,
                 entropy=np.zeros_like(energy))
    assert "entropy" in sel.auto["candidates"]


def test_auto_under_a_budget():
    energy, labels, features, validation = _task(2)
    sel = select_budget(energy, labels, 210, size_of=lambda s: 10 + s.count, strategy="auto",
                        features=features, validation=validation)
    assert sel.count == 200 and sel.auto["budget"] == 210 and sel.strategy == "highest-energy"


def test_auto_errors():
    energy, labels, features, validation = _task()
    with pytest.raises(PladaSelectionError, match="features="):
        select(energy, labels, keep=0.05, strategy="auto")
    with pytest.raises(PladaSelectionError, match="one feature row per reference image"):
        select(energy, labels, keep=0.05, strategy="auto", features=features[:10], validation=validation)
    with pytest.raises(PladaSelectionError, match="dimensions"):
        select(energy, labels, keep=0.05, strategy="auto", features=features,
               validation=(validation[0][:, :3], validation[1]))
    with pytest.raises(PladaSelectionError, match="for strategy='auto'"):
        select(energy, labels, keep=0.05, validation=validation)
    with pytest.raises(PladaSelectionError, match="unknown candidate"):
        select(energy, labels, keep=0.05, strategy="auto", features=features, validation=validation,
               candidates=[Candidate("nope")])


def test_proxy_accuracy_is_deterministic_and_subsamples():
    energy, labels, features, (vx, vy) = _task()
    idx = np.flatnonzero(energy > -2.5)
    a = proxy_accuracy(features, idx, labels[idx], vx, vy, 5, max_train=100, seed=3)
    b = proxy_accuracy(features.astype(FEATURE_DTYPE), idx, labels[idx], vx, vy, 5, max_train=100, seed=3)
    assert a == proxy_accuracy(features, idx, labels[idx], vx, vy, 5, max_train=100, seed=3)
    assert abs(a - b) < 0.05 and a > 0.9
    assert proxy_accuracy(features, idx[:0], labels[:0], vx, vy, 5) == 0.0


def _scores_with_features(path, energy, labels, features, shard_size=1000):
    from pladacodec.selection import SCORE_ARRAYS, SCORES_FORMAT, SCORES_VERSION, shard_done_path

    path.mkdir(parents=True)
    n = len(energy)
    n_shards = -(-n // shard_size)
    meta = {"format": SCORES_FORMAT, "version": SCORES_VERSION, "n": n, "shard_size": shard_size,
            "n_shards": n_shards, "reference_fingerprint": None, "teacher": "test", "temperature": 1.0,
            "n_classes": 5, "class_names": None, "feature_dim": features.shape[1]}
    (path / "meta.json").write_text(json.dumps(meta))
    arrays = {"energy": energy, "label": labels, "entropy": np.zeros_like(energy)}
    for s in range(n_shards):
        part = slice(s * shard_size, (s + 1) * shard_size)
        for kind, dtype in SCORE_ARRAYS.items():
            np.save(shard_path(path, kind, s), arrays[kind][part].astype(dtype))
        np.save(shard_path(path, "feature", s), features[part].astype(FEATURE_DTYPE))
        shard_done_path(path, s).touch()


def test_select_cli_auto(tmp_path):
    from pladacodec_cli.server import select as select_cmd

    energy, labels, features, (vx, vy) = _task()
    _scores_with_features(tmp_path / "scores", energy, labels, features)
    scores = load_scores(tmp_path / "scores")
    assert scores.features.shape == features.shape and scores.features.dtype == FEATURE_DTYPE
    np.savez(tmp_path / "val.npz", features=vx, labels=vy)
    out = tmp_path / "task.plada"
    result = CliRunner().invoke(select_cmd, [str(tmp_path / "scores"), "--keep", "2%,5%", "--strategy", "auto",
                                             "--validation", str(tmp_path / "val.npz"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    task = pladacodec.read(out)
    chosen = task.metadata["auto"]["chosen"]
    assert chosen.startswith("highest-energy@") and f"auto: chose {chosen}" in result.output
    assert len(task) == {"highest-energy@0.02": 60, "highest-energy@0.05": 150}[chosen]
    assert len(task.metadata["auto"]["candidates"]) == 12  # six candidates (entropy too) x two keeps
    result = CliRunner().invoke(select_cmd, [str(tmp_path / "scores"), "--keep", "1%", "--strategy", "auto",
                                             "-o", str(out)])
    assert result.exit_code != 0 and "--validation" in result.output


def test_score_records_projected_features(tmp_path):
    torch = pytest.importorskip("torch")
    from pladacodec.teacher import feature_projection, score

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    data = torch.utils.data.TensorDataset(torch.randn(10, 3, 2, 2))
    full = score(model, data, batch_size=4, progress=False, feature_module=model[2])
    with torch.no_grad():
        expected = model[:3](data.tensors[0])
    assert full.features.shape == (10, 16) and full.features.dtype == FEATURE_DTYPE
    np.testing.assert_allclose(full.features, expected.numpy(), rtol=1e-2, atol=1e-3)
    projected = score(model, data, batch_size=4, progress=False, feature_module=model[2], feature_dim=4)
    np.testing.assert_allclose(projected.features, (expected @ feature_projection(16, 4)).numpy(), rtol=1e-2, atol=1e-2)
    sharded = score(model, data, batch_size=4, progress=False, feature_module=model[2], feature_dim=4,
                    out_dir=tmp_path / "s", shard_size=4, reference_fingerprint=bytes(32))
    assert np.array_equal(sharded.features, projected.features)
    assert load_scores(tmp_path / "s").meta["feature_dim"] == 4
    assert not model[2]._forward_hooks  # the hook is removed
