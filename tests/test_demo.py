"""The end-to-end demo (``pladacodec demo --quick``) and the data it builds."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest

from pladacodec.demo.data import FASHION_MNIST_DIR, OPENCLIPART_DIR, SOURCES, build_demo_data

needs_packages = pytest.mark.skipif(
    not (FASHION_MNIST_DIR.is_dir() and OPENCLIPART_DIR.is_dir()),
    reason="Debian packages dataset-fashion-mnist and openclipart-png (scripts/setup.sh)",
)


def _row_hashes(images: np.ndarray) -> set[bytes]:
    return {hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in images}


@needs_packages
def test_demo_split_keeps_target_images_out_of_the_pool(tmp_path, monkeypatch):
    monkeypatch.setenv("PLADACODEC_CACHE", str(tmp_path / "cache"))
    data = build_demo_data(quick=True, n_train=500, n_test=300, n_pool_fashion=2000)
    assert data.train_x.shape == (500, 28, 28) and data.test_x.shape == (300, 28, 28)
    assert np.bincount(data.train_y).tolist() == [50] * 10
    assert data.pool_x.dtype == np.uint8 and data.pool_x.shape[1:] == (28, 28)
    counts = data.source_counts()
    assert list(counts) == list(SOURCES) and counts["fashion-mnist"] == 2000
    assert all(counts[name] > 0 for name in SOURCES)
    fashion = data.pool_source == 0
    assert (data.pool_true_label[fashion] >= 0).all() and (data.pool_true_label[~fashion] == -1).all()
    pool = _row_hashes(data.pool_x[fashion])
    assert not pool & _row_hashes(data.train_x)
    assert not pool & _row_hashes(data.test_x)
    again = build_demo_data(quick=True, n_train=500, n_test=300, n_pool_fashion=2000)  # from cache
    assert np.array_equal(again.pool_x, data.pool_x)


@needs_packages
def test_demo_quick_end_to_end(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    from click.testing import CliRunner

    import pladacodec
    from pladacodec_cli.client import demo

    out = tmp_path / "demo"
    start = time.perf_counter()
    result = CliRunner().invoke(demo, ["--quick", "--out", str(out), "--device", "cpu", "--quiet"])
    seconds = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    assert "| keep | strategy |" in result.output and "true labels" in result.output

    report = json.loads((out / "report.json").read_text())
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "report.md").read_text().count("\n| ") >= 10
    rows = report["rows"]
    assert [(r["keep"], r["strategy"]) for r in rows] == [
        (k, s) for k in (0.01, 0.1) for s in ("lowest-energy", "safety-net", "highest-energy", "random")]
    n_pool = report["pool"]["n"]
    for r in rows:
        task = pladacodec.read(out / "tasks" / f"{r['strategy']}-{100 * r['keep']:g}pct.plada")
        assert len(task) == r["images"] == round(r["keep"] * n_pool)
        assert task.n_reference == n_pool and task.reference_fingerprint.hex() == report["pool"]["fingerprint"]
        assert 0.0 <= r["student_accuracy"] <= 1.0
    assert 0.0 <= report["teacher"]["accuracy"] <= 1.0
    # Safety-Net reserves slots for every class the teacher predicts
    safety = [r for r in rows if r["strategy"] == "safety-net"]
    assert all(r["classes_present"] == 10 for r in safety)
    print(f"demo --quick took {seconds:.1f} s")
