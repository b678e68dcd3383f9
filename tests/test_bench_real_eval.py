"""``bench/real_eval.py``: one table row per real selection, checked against a fresh encode; reruns read the cache."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("zstandard")
pytest.importorskip("brotli")
pytest.importorskip("pyarrow")
pytest.importorskip("pyroaring")

import pladacodec  # noqa: E402
from pladacodec_bench import real_eval  # noqa: E402
from pladacodec_bench.baselines import BASELINES  # noqa: E402
from pladacodec_bench.run import GENERAL, GENERIC  # noqa: E402
from pladacodec_bench.workloads import REAL_DIR, load_real_task  # noqa: E402


def test_real_eval_one_file(tmp_path, capsys):
    folder = tmp_path / "real"
    folder.mkdir()
    shutil.copy(REAL_DIR / "lowest-energy-1pct.npz", folder)
    cache, out = tmp_path / "cache.json", tmp_path / "rows.json"
    argv = ["--dirs", str(folder), "--cache", str(cache), "--json", str(out)]
    assert real_eval.main(argv) == 0
    printed = capsys.readouterr().out
    document = json.loads(out.read_text())
    (row,) = document["rows"]
    sel = load_real_task(folder / "lowest-energy-1pct.npz").selection
    blob = pladacodec.encode(sel.indices, sel.labels, sel.n_reference, n_classes=sel.n_classes)
    sections = pladacodec.inspect(blob).section_bytes()
    assert (row["profile"], row["k"], row["plada"]) == ("real-lowest-energy-1pct", 691, len(blob))
    assert (row["index_bytes"], row["label_bytes"]) == (sections["indices"], sections["labels"])
    assert row["plada_folders"] is None  # the file carries no folder layout
    assert set(row["general"]) == set(GENERAL)
    for name in GENERAL:
        assert row["general"][name] == len(BASELINES[name].encode(sel)), name
    assert row["vs_generic"] == pytest.approx(len(blob) / min(row["general"][name] for name in GENERIC))
    assert row["vs_general"] == pytest.approx(len(blob) / min(row["general"].values()))
    assert "| real-lowest-energy-1pct | 691 |" in printed and "geometric mean (1 files)" in printed
    assert "files larger than some general-purpose compressor's output:" in printed
    # a rerun reads every baseline from the cache; --methods restricts the .plada encode
    assert real_eval.main([*argv, "--methods", ":1"]) == 0
    (again,) = json.loads(out.read_text())["rows"]
    assert again["baselines_cached"] and again["general"] == row["general"]
    forced = pladacodec.encode(sel.indices, sel.labels, sel.n_reference, n_classes=sel.n_classes, label_methods=[1])
    assert again["plada"] == len(forced)


def test_real_eval_uses_a_folder_layout_when_the_file_has_one(tmp_path):
    source = np.load(REAL_DIR / "random-1pct.npz")
    fields = {key: source[key] for key in source.files}
    n = int(fields["n_reference"])
    starts = np.arange(0, n, 6_000, dtype=np.int64)
    np.savez(tmp_path / "with-folders.npz", folder_starts=starts, **fields)
    task = load_real_task(tmp_path / "with-folders.npz")
    cache = real_eval.BaselineCache(tmp_path / "cache.json", enabled=True)
    row = real_eval.evaluate_task(task, cache)
    layout = pladacodec.FolderLayout(starts, n)
    sel = task.selection
    expected = pladacodec.encode(sel.indices, sel.labels, n, n_classes=sel.n_classes, folders=layout)
    assert row["plada_folders"] == len(expected)
    assert "given the folder layout (1 files)" in "\n".join(real_eval.summary_lines([row]))


def test_parse_methods():
    assert real_eval.parse_methods("2,3:1") == real_eval.Methods([2, 3], [1])
    assert real_eval.parse_methods(":3") == real_eval.Methods(None, [3])
    assert real_eval.parse_methods(None) == real_eval.Methods()
    for bad in ("2,3", "a:1", "1:2:3"):
        with pytest.raises(ValueError):
            real_eval.parse_methods(bad)


def test_section_references_and_the_bits_table(tmp_path, capsys):
    """--bits: the i.i.d. reference is log2 C(N, k); a selection dense in one half and empty in
    the other costs far less under the windowed reference; labels cost k * H(histogram)."""
    import math

    n, k = 4096, 256
    spread = np.sort(np.random.default_rng(1).choice(n, k, replace=False))
    half = np.sort(np.random.default_rng(1).choice(n // 2, k, replace=False))
    labels = np.repeat([0, 1], k // 2)
    refs = real_eval.section_references(spread, labels, n, 3)
    iid = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)) / math.log(2) / 8
    assert refs["index_iid"] == pytest.approx(iid)
    assert refs["index_windowed"] <= iid and refs["label_entropy"] == pytest.approx(k / 8)
    clustered = real_eval.section_references(half, labels, n, 3)
    assert clustered["index_windowed"] < 0.9 * iid
    folder = tmp_path / "real"
    folder.mkdir()
    shutil.copy(REAL_DIR / "random-1pct.npz", folder)
    assert real_eval.main(["--dirs", str(folder), "--cache", str(tmp_path / "c.json"), "--bits"]) == 0
    printed = capsys.readouterr().out
    assert "| index/windowed |" in printed and "| real-random-1pct | " in printed
