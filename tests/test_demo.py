"""The end-to-end demo (``pladacodec demo --quick``) and the data it builds."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest

from pladacodec.demo.data import (
    FASHION_MNIST_DIR,
    FONT_DIRS,
    ICON_DIRS,
    NEAR_SOURCES,
    OPENCLIPART_DIR,
    SOURCES,
    SPRITE_DIRS,
    build_demo_data,
)

needs_packages = pytest.mark.skipif(
    not (FASHION_MNIST_DIR.is_dir() and OPENCLIPART_DIR.is_dir() and any(d.is_dir() for d in ICON_DIRS)
         and any(d.is_dir() for d in FONT_DIRS) and any(d.is_dir() for d in SPRITE_DIRS)),
    reason="the demo's Debian image packages (scripts/setup.sh)",
)


@pytest.fixture(scope="module", autouse=True)
def _demo_cache(tmp_path_factory):
    """One fresh image cache for this module's tests (built once, then read)."""
    import os

    old = os.environ.get("PLADACODEC_CACHE")
    os.environ["PLADACODEC_CACHE"] = str(tmp_path_factory.mktemp("demo-cache"))
    yield
    if old is None:
        del os.environ["PLADACODEC_CACHE"]
    else:
        os.environ["PLADACODEC_CACHE"] = old


def _row_hashes(images: np.ndarray) -> set[bytes]:
    return {hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in images}


@needs_packages
def test_demo_split_keeps_target_images_out_of_the_pool():
    data = build_demo_data(scenario="near-domain", quick=True, n_train=500, n_val=200, n_test=300,
                           n_pool_fashion=2000)
    assert data.train_x.shape == (500, 28, 28) and data.test_x.shape == (300, 28, 28)
    assert np.bincount(data.train_y).tolist() == [50] * 10
    assert np.bincount(data.val_y).tolist() == [20] * 10
    assert data.pool_x.dtype == np.uint8 and data.pool_x.shape[1:] == (28, 28)
    counts = data.source_counts()
    assert list(counts) == list(NEAR_SOURCES) and counts["fashion-mnist"] == 2000
    fashion = data.pool_source == 0
    assert (data.pool_true_label[fashion] >= 0).all() and (data.pool_true_label[~fashion] == -1).all()
    pool = _row_hashes(data.pool_x[fashion])
    assert not pool & _row_hashes(data.train_x)
    assert not pool & _row_hashes(data.val_x)
    assert not pool & _row_hashes(data.test_x)
    assert not _row_hashes(data.val_x) & _row_hashes(data.train_x)
    again = build_demo_data(scenario="near-domain", quick=True, n_train=500, n_val=200, n_test=300,
                            n_pool_fashion=2000)  # from cache
    assert np.array_equal(again.pool_x, data.pool_x)


@needs_packages
def test_demo_scenarios_fix_the_in_domain_share():
    generic = build_demo_data(scenario="generic", quick=True, n_train=500, n_val=200, n_test=300)
    counts = generic.source_counts()
    assert list(counts) == list(SOURCES) and all(c > 0 for c in counts.values())
    share = counts["fashion-mnist"] / generic.n_pool
    assert 0.045 <= share <= 0.055  # the paper's premise: the target a small minority (<= 10 %)
    far = build_demo_data(scenario="far-ood", quick=True, n_train=500, n_val=200, n_test=300)
    assert "fashion-mnist" not in far.source_counts() and (far.pool_true_label == -1).all()
    assert far.n_pool == generic.n_pool - counts["fashion-mnist"]
    near = build_demo_data(scenario="near-domain", quick=True, n_train=500, n_val=200, n_test=300)
    assert abs(near.n_pool - (generic.n_pool - counts["fashion-mnist"]) / 0.95) <= 1  # same size as generic
    assert (near.pool_true_label >= 0).mean() > 0.5


@needs_packages
def test_demo_quick_end_to_end(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    from click.testing import CliRunner

    import pladacodec
    from pladacodec_cli.client import demo

    out = tmp_path / "demo"
    start = time.perf_counter()
    result = CliRunner().invoke(demo, ["--quick", "--out", str(out), "--device", "cpu", "--quiet", "--threads", "1",
                                       "--save-selections", str(tmp_path / "sel")])
    seconds = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    assert "| keep | strategy |" in result.output and "true labels" in result.output

    report = json.loads((out / "report.json").read_text())
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "report.md").read_text().count("\n| ") >= 10
    rows = report["rows"]
    names = ("lowest-energy", "safety-net a=-0.2", "safety-net a=0.5", "highest-energy", "random", "auto")
    assert [(r["keep"], r["strategy"]) for r in rows] == [
        (k, s) for k in (0.01, 0.1) for s in names] + [(1.0, "no pruning")]
    n_pool = report["pool"]["n"]
    for r in rows:
        name = r["strategy"].replace(" ", "-").replace("=", "") + ("" if r["keep"] == 1 else f"-{100 * r['keep']:g}pct")
        task = pladacodec.read(out / "tasks" / f"{name}.plada")
        assert len(task) == r["images"] == round(r["keep"] * n_pool)
        assert task.n_reference == n_pool and task.reference_fingerprint.hex() == report["pool"]["fingerprint"]
        assert 0.0 <= r["student_accuracy"] <= 1.0
        if r["strategy"] == "auto":  # the choice and every candidate's proxy score travel in the file
            assert task.metadata["auto"]["chosen"] == r["auto"]["chosen"]
            assert len(task.metadata["auto"]["candidates"]) == 5
            twin = next(x for x in rows if x["keep"] == r["keep"] and x["strategy"] != "auto"
                        and x["strategy"].replace("safety-net a=", "safety-net(alpha=") in r["auto"]["chosen"])
            assert twin["student_accuracy"] == r["student_accuracy"]
    assert 0.0 <= report["teacher"]["accuracy"] <= 1.0
    # the format-independent copies of every selection
    saved = sorted(p.name for p in (tmp_path / "sel" / "generic").glob("*.npz"))
    assert len(saved) == 13 and "no-pruning.npz" in saved
    with np.load(tmp_path / "sel" / "generic" / "random-1pct.npz") as z:
        assert z["indices"].dtype == np.uint64 and z["labels"].dtype == np.int64
        assert int(z["n_reference"]) == n_pool and int(z["n_classes"]) == 10 and len(z["class_names"]) == 10
        assert json.loads(str(z["metadata"]))["scenario"] == "generic"
    print(f"demo --quick took {seconds:.1f} s")


def test_demo_channels_last_changes_speed_only():
    """The demo's networks run channels-last for speed; the values are those of the
    default layout (and the frozen prefix is in eval mode, as a cached activation assumes)."""
    import copy

    torch = pytest.importorskip("torch")
    pytest.importorskip("timm")
    from pladacodec.demo.pretrained import Lite0Parts, Student

    parts = Lite0Parts(32, 5)
    ref = copy.deepcopy(parts).to(memory_format=torch.contiguous_format)
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        a = parts.prefix(x)
        h = ref.prefix[0](x).contiguous()
        for module in ref.prefix[1:]:
            h = module(h)
        assert a.is_contiguous(memory_format=torch.channels_last) and h.is_contiguous()
        assert not parts.prefix.training
        torch.testing.assert_close(a, h, atol=1e-4, rtol=1e-4)
        student = Student(parts, 10, seed=0).eval()
        twin = copy.deepcopy(student).to(memory_format=torch.contiguous_format)
        torch.testing.assert_close(student(a), twin.head(twin.suffix(h)), atol=1e-4, rtol=1e-4)
