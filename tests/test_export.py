"""pladacodec export: a task's images as an ImageFolder tree plus labels.csv, without torch."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap

import pytest

import pladacodec
from pladacodec.client import class_dir_name
from pladacodec.reference import PladaReferenceWarning, Reference

from common import write_reference_images

CLASSES = ("cat", "dog/wolf", ".hidden", "tab\tbed")


@pytest.fixture
def reference_dir(tmp_path):
    return write_reference_images(tmp_path / "ref", 6)


def _task(ref, tmp_path, indices=(1, 4, 7, 11), labels=(2, 0, 1, 0), **kw):
    path = tmp_path / "task.plada"
    pladacodec.write(path, list(indices), list(labels), ref.n, class_names=CLASSES,
                     reference_fingerprint=ref.fingerprint, **kw)
    return path


def _rows(root):
    with open(root / "labels.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_export_symlinks_and_copies(reference_dir, tmp_path):
    ref = Reference.from_dir(reference_dir)
    task = _task(ref, tmp_path)
    result = pladacodec.export(task, reference_dir, tmp_path / "out")
    assert result.mode == "symlink" and result.n_images == 4
    rows = _rows(tmp_path / "out")
    assert [r["label"] for r in rows] == ["2", "0", "1", "0"]
    assert [r["class"] for r in rows] == [".hidden", "cat", "dog/wolf", "cat"]
    assert rows[0]["path"] == "_.hidden/01-img01.png" and rows[2]["path"] == "dog_wolf/07-img07.png"
    for r, index in zip(rows, (1, 4, 7, 11)):
        p = tmp_path / "out" / r["path"]
        assert p.is_symlink() and os.path.isabs(os.readlink(p))
        assert p.read_bytes() == ref.path(index).read_bytes()
    assert sorted(os.listdir(tmp_path / "out")) == ["_.hidden", "cat", "dog_wolf", "labels.csv"]
    copied = pladacodec.export(task, ref, tmp_path / "copied", copy=True)
    assert copied.mode == "copy"
    for r in _rows(tmp_path / "copied"):
        assert not (tmp_path / "copied" / r["path"]).is_symlink()
    with pytest.raises(FileExistsError):
        pladacodec.export(task, ref, tmp_path / "out")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".out.partial")]


def test_export_refuses_another_reference_and_warns_without_fingerprint(reference_dir, tmp_path):
    ref = Reference.from_dir(reference_dir)
    other = pladacodec.encode([1], [0], ref.n, reference_fingerprint=bytes(32))
    with pytest.raises(pladacodec.PladaReferenceError, match="fingerprint"):
        pladacodec.export(other, ref, tmp_path / "x")
    bare = pladacodec.encode([1, 2], [0, 1], ref.n)
    with pytest.warns(PladaReferenceWarning, match="no reference fingerprint"):
        pladacodec.export(bare, ref, tmp_path / "y")
    assert [r["class"] for r in _rows(tmp_path / "y")] == ["0", "1"]


def test_class_dir_names_are_safe():
    assert class_dir_name("a/b") == "a_b" and class_dir_name("..") == "_.." and class_dir_name("") == "_"
    assert class_dir_name("x\ny\x1b") == "x_y_" and class_dir_name("T-shirt") == "T-shirt"


def test_export_read_without_torch(reference_dir, tmp_path):
    """The CLI export, then a reader that trains nothing but needs no torch: labels.csv + PIL."""
    ref = Reference.from_dir(reference_dir)
    task = _task(ref, tmp_path, indices=range(12), labels=[i % 2 for i in range(12)])
    code = textwrap.dedent(f"""
        import csv, sys
        import numpy as np
        from PIL import Image
        from pladacodec_cli.app import main
        try:
            main(["export", {str(task)!r}, "--reference", {str(reference_dir)!r}, "--to", {str(tmp_path / "e")!r}])
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
        with open({str(tmp_path / "e" / "labels.csv")!r}, newline="") as f:
            rows = list(csv.DictReader(f))
        xs = np.stack([np.asarray(Image.open({str(tmp_path / "e")!r} + "/" + r["path"])) for r in rows])
        ys = np.array([int(r["label"]) for r in rows])
        assert "torch" not in sys.modules, "torch imported"
        print(xs.shape, xs[:, 0, 0].tolist(), ys.tolist())
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "exported 12 images in 2 class folders" in res.stdout
    assert res.stdout.strip().splitlines()[-1] == (
        f"(12, 6, 6) {[10 * i for i in range(12)]} {[i % 2 for i in range(12)]}")
