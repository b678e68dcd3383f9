"""Tar-shard references: canonical order, manifest without extraction, cached member index,
images read in place; and a tar-shard reference run end to end through the CLI
(manifest -> score -> select -> unpack, export and PladaDataset)."""

from __future__ import annotations

import csv
import io
import os
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import pladacodec
from pladacodec.errors import PladaReferenceError
from pladacodec.reference import Reference, list_reference
from pladacodec.shards import default_cache_dir

sys.path.insert(0, str(Path(__file__).parent))
import _tiny_teacher  # noqa: E402

SPEC = f"{Path(_tiny_teacher.__file__).resolve()}:make"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PLADACODEC_CACHE", str(tmp_path / "cache"))


def _png(value: int, size: int = 8) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((size, size), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _folder_to_class_tars(folder: Path, shards: Path, shuffle: bool = True) -> None:
    """One tar per class folder, members in a scrambled order, with a ./ prefix on some."""
    shards.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for cls in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(cls.iterdir())
        if shuffle:
            files = [files[i] for i in rng.permutation(len(files))]
        with tarfile.open(shards / f"{cls.name}.tar", "w") as tar:
            for i, f in enumerate(files):
                _add(tar, ("./" if i % 2 else "") + f.name, f.read_bytes())


def test_per_class_tars_have_the_fingerprint_of_their_extraction(tmp_path):
    folder = tmp_path / "folder"
    _tiny_teacher.write_digit_folder(folder, 40)
    shards = tmp_path / "shards"
    _folder_to_class_tars(folder, shards)
    (shards / "README.txt").write_text("not an archive")
    ref = Reference.from_dir(shards)
    plain = Reference.from_dir(folder)
    assert ref.kind == "tar" and plain.kind == "folder"
    assert list(ref.paths) == list(plain.paths) and ref.fingerprint == plain.fingerprint
    assert ref.folder_layout() == plain.folder_layout()
    for i in (0, 7, ref.n - 1):  # read in place, byte for byte the extracted file
        assert ref.read_bytes(i) == (folder / ref.paths[i]).read_bytes()
        with ref.open(i) as f:
            assert f.read() == plain.path(i).read_bytes()
    with pytest.raises(PladaReferenceError, match="member of archive"):
        ref.path(0)
    assert list_reference(shards) == list(plain.paths)


def test_webdataset_shards_canonical_order(tmp_path):
    shards = tmp_path / "wds"
    shards.mkdir()
    with tarfile.open(shards / "shard-000001.tar", "w") as tar:
        for key in ("b", "a"):
            _add(tar, f"{key}.jpg", _png(1))
            _add(tar, f"{key}.cls", b"3")  # not an image: ignored
        _add(tar, "._a.jpg", b"AppleDouble")  # hidden: ignored
        link = tarfile.TarInfo("c.png")
        link.type, link.linkname = tarfile.LNKTYPE, "a.jpg"  # a hard link reads as its target
        tar.addfile(link)
    with tarfile.open(shards / "shard-000000.tar", "w") as tar:
        _add(tar, "z/0.png", _png(2))
    ref = Reference.from_dir(shards)
    assert list(ref.paths) == ["shard-000000/z/0.png", "shard-000001/a.jpg", "shard-000001/b.jpg",
                               "shard-000001/c.png"]
    assert ref.read_bytes(3) == ref.read_bytes(1) == _png(1)


def test_member_index_is_cached_and_rebuilt_when_an_archive_changes(tmp_path, monkeypatch):
    shards = tmp_path / "s"
    shards.mkdir()
    with tarfile.open(shards / "a.tar", "w") as tar:
        _add(tar, "1.png", _png(1))
    first = Reference.from_dir(shards)
    cached = list((default_cache_dir() / "tar-index").iterdir())
    assert len(cached) == 1 and (cached[0] / "index.json").exists()

    import pladacodec.shards as shards_mod

    def no_rebuild(*a, **k):
        raise AssertionError("the index was rebuilt although nothing changed")

    monkeypatch.setattr(shards_mod, "build_index", no_rebuild)
    again = Reference.from_dir(shards)
    assert again.fingerprint == first.fingerprint and again.read_bytes(0) == _png(1)
    monkeypatch.undo()
    monkeypatch.setenv("PLADACODEC_CACHE", str(tmp_path / "cache"))
    with tarfile.open(shards / "a.tar", "w") as tar:  # rewritten with another member
        _add(tar, "1.png", _png(1))
        _add(tar, "2.png", _png(2))
    os.utime(shards / "a.tar", ns=(1, 1))
    changed = Reference.from_dir(shards)
    assert changed.n == 2 and changed.read_bytes(1) == _png(2)


def test_references_without_images_are_errors(tmp_path):
    from pladacodec_cli.server import manifest

    empty_tars = tmp_path / "t"
    empty_tars.mkdir()
    with tarfile.open(empty_tars / "a.tar", "w") as tar:
        _add(tar, "notes.txt", b"x")
    with pytest.raises(PladaReferenceError, match="no tar archive holding images"):
        Reference.from_dir(empty_tars)
    result = CliRunner().invoke(manifest, [str(empty_tars), "-o", str(tmp_path / "m")])
    assert result.exit_code == 1 and "error:" in result.output and "no tar archive holding images" in result.output
    gz = tmp_path / "gz"
    gz.mkdir()
    (gz / "a.tar.gz").write_bytes(b"")
    with pytest.raises(PladaReferenceError, match="compressed tar.*decompress"):
        Reference.from_dir(gz)
    with pytest.raises(PladaReferenceError, match="no image"):
        Reference.from_dir(tmp_path / "gz", kind="folder")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "x.png").write_bytes(_png(0))
    (mixed / "b.tar").write_bytes((empty_tars / "a.tar").read_bytes())
    with pytest.warns(pladacodec.PladaReferenceWarning, match="both image files .* ignoring the archives"):
        assert Reference.from_dir(mixed).kind == "folder"  # as before: a folder's tars were never listed
    assert Reference.from_dir(mixed, kind="folder").n == 1
    with pytest.raises(PladaReferenceError, match="no tar archive holding images"):
        Reference.from_dir(mixed, kind="tar")


def test_hostile_member_names_are_refused(tmp_path):
    shards = tmp_path / "s"
    shards.mkdir()
    with tarfile.open(shards / "a.tar", "w") as tar:
        _add(tar, "../escape.png", _png(0))
    with pytest.raises(PladaReferenceError, match=r"climbs out"):
        Reference.from_dir(shards)


def test_manifest_of_shards_opens_with_the_archives(tmp_path):
    shards = tmp_path / "s"
    shards.mkdir()
    with tarfile.open(shards / "a.tar", "w") as tar:
        _add(tar, "1.png", _png(5))
    ref = Reference.from_dir(shards)
    ref.write_manifest(tmp_path / "m.txt")
    again = Reference.from_manifest(tmp_path / "m.txt", root=shards)
    assert again.kind == "tar" and again.read_bytes(0) == _png(5)
    (tmp_path / "other.txt").write_text("a/2.png\n")
    with pytest.raises(PladaReferenceError, match="not the canonical listing"):
        Reference.from_manifest(tmp_path / "other.txt", root=shards)
    (shards / "a").mkdir()
    (shards / "a" / "2.png").write_bytes(_png(6))  # a folder that also holds a tar: its files count
    loose = Reference.from_manifest(tmp_path / "other.txt", root=shards)
    assert loose.kind == "folder" and loose.path(0).read_bytes() == _png(6)


def test_tar_shard_reference_end_to_end(tmp_path):
    """manifest -> score -> select -> unpack, export and PladaDataset on per-class tars."""
    torch = pytest.importorskip("torch")
    from pladacodec_cli.codec import unpack
    from pladacodec_cli.export import export
    from pladacodec_cli.server import manifest, score, select

    folder = tmp_path / "folder"
    _tiny_teacher.write_digit_folder(folder, 60)
    shards = tmp_path / "shards"
    _folder_to_class_tars(folder, shards)
    runner = CliRunner()

    result = runner.invoke(manifest, [str(shards), "-o", str(tmp_path / "ref.manifest")])
    assert result.exit_code == 0, result.output
    assert "60 images in 10 folders in 10 tar archives" in result.output
    fp = Reference.from_dir(folder).fingerprint
    assert fp.hex() in result.output

    scores = tmp_path / "scores"
    result = runner.invoke(score, ["--teacher", SPEC, "--reference", str(shards), "--out", str(scores),
                                   "--img-size", "16", "--crop-pct", "1.0", "--mean", "0.5", "--std", "0.5",
                                   "--interpolation", "bilinear", "--batch-size", "32", "--workers", "0",
                                   "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "scored 60 images" in result.output
    # the same scores as on the extracted folder
    from pladacodec.selection import load_scores

    folder_scores = tmp_path / "folder-scores"
    result = runner.invoke(score, ["--teacher", SPEC, "--reference", str(folder), "--out", str(folder_scores),
                                   "--img-size", "16", "--crop-pct", "1.0", "--mean", "0.5", "--std", "0.5",
                                   "--interpolation", "bilinear", "--batch-size", "32", "--workers", "0",
                                   "--no-progress"])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(load_scores(scores).energy, load_scores(folder_scores).energy)

    task = tmp_path / "task.plada"
    result = runner.invoke(select, [str(scores), "--count", "12", "--reference", str(shards), "-o", str(task)])
    assert result.exit_code == 0, result.output
    payload = pladacodec.read(task)
    assert payload.reference_fingerprint == fp and len(payload.indices) == 12

    result = runner.invoke(unpack, [str(task), "-o", str(tmp_path / "sel.csv")])
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "sel.csv").read_text().splitlines()
    assert len([r for r in rows if r and r[0].isdigit()]) == 12

    out = tmp_path / "export"
    result = runner.invoke(export, [str(task), "--reference", str(shards), "--to", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported 12 images" in result.output and "extracted from tar archives" in result.output
    with open(out / "labels.csv", newline="") as f:
        table = list(csv.DictReader(f))
    ref = Reference.from_dir(shards)
    for row, index, label in zip(table, payload.indices.tolist(), payload.labels.tolist(), strict=True):
        assert int(row["label"]) == label and row["class"] == payload.class_names[label]
        assert (out / row["path"]).read_bytes() == ref.read_bytes(index)
        assert not (out / row["path"]).is_symlink()

    from pladacodec.data import PladaDataset

    ds = PladaDataset(shards, task, transform=lambda im: torch.from_numpy(np.asarray(im).copy()))
    assert len(ds) == 12 and ds.targets == payload.labels.tolist()
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2)
    images = torch.cat([x for x, _ in loader])
    from PIL import Image

    expected = np.stack([np.asarray(Image.open(folder / ref.paths[i]).convert("RGB"))
                         for i in payload.indices.tolist()])
    np.testing.assert_array_equal(images.numpy(), expected)


@pytest.mark.parametrize("name", ["pladacodec.shards", "pladacodec._manifest", "pladacodec.reference"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_unwritable_cache_still_opens(tmp_path):
    shards = tmp_path / "s"
    shards.mkdir()
    with tarfile.open(shards / "a.tar", "w") as tar:
        _add(tar, "1.png", _png(3))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.warns(UserWarning, match="could not cache the tar member index"):
        ref = Reference.from_dir(shards, cache_dir=blocker)
    assert ref.read_bytes(0) == _png(3)


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("long_names", [False, True])
def test_direct_header_reader_agrees_with_tarfile(tmp_path, monkeypatch, fmt, long_names):
    import pladacodec.shards as S

    names = ["a.png", "./b/c.jpg", "é/ü.png", "d/e.txt"] + (["x" * 90 + "/" + "y" * 70 + ".png"] if long_names else [])
    path = tmp_path / "a.tar"
    with tarfile.open(path, "w", format=fmt) as tar:
        for k, name in enumerate(names):
            _add(tar, name, bytes(range(256))[: 37 * (k + 1)])
        folder = tarfile.TarInfo("somedir")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for kind, link_name in ((tarfile.LNKTYPE, "hard.png"), (tarfile.SYMTYPE, "soft.png")):
            link = tarfile.TarInfo(link_name)
            link.type, link.linkname = kind, "a.png"
            tar.addfile(link)
    direct = S.list_archive(path, "a.tar")
    monkeypatch.setattr(S, "_headers_direct", lambda p: None)  # tarfile only
    assert direct == S.list_archive(path, "a.tar")
    with open(path, "rb") as f:
        for parts, offset, size in direct:
            f.seek(offset)
            assert f.read(size) == bytes(range(256))[: size]
    assert [p for p, _, _ in direct][:3] == [("a.png",), ("b", "c.jpg"), ("hard.png",)]
