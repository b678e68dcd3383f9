"""Reference identity: canonical folder order, manifest, fingerprint."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from pladacodec.errors import PladaReferenceError
from pladacodec.reference import (
    IMAGE_EXTENSIONS,
    PladaReferenceWarning,
    Reference,
    dataset_fingerprint,
    fingerprint,
    list_reference,
    manifest_bytes,
)


def _touch(root, *paths):
    for p in paths:
        f = root / p
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"")


def test_fingerprint_is_pinned():
    # Changing this value breaks every .plada file made so far: bump the domain tag instead.
    assert fingerprint([]).hex() == hashlib.sha256(b"pladacodec-reference-v1\0" + bytes(8)).hexdigest()
    paths = ["cat/1.png", "dog/2.png"]
    expected = hashlib.sha256(
        b"pladacodec-reference-v1\0" + struct.pack("<Q", 2) + b"cat/1.png\ndog/2.png\n"
    ).hexdigest()
    assert fingerprint(paths).hex() == expected
    assert expected.startswith("9c99f432073bab1c")


def test_fingerprint_depends_on_order_count_and_names():
    base = fingerprint(["a.png", "b.png"])
    assert fingerprint(["b.png", "a.png"]) != base
    assert fingerprint(["a.png"]) != base
    assert fingerprint(["a.png", "b.PNG"]) != base
    assert len(base) == 32


def test_canonical_order_rules(tmp_path):
    _touch(
        tmp_path,
        "b/2.png", "b/10.png", "a/x.JPEG", "a/y.webp", "a/notes.txt", "a/data.npy",
        "B/1.png",  # upper case sorts before lower case (code point order)
        "top.png",  # images at the root are included
        ".git/z.png", "a/.DS_Store", "a/.x.png",  # hidden entries are skipped
        "a/sub/deeper/q.bmp", "ä/1.png",
    )
    assert list_reference(tmp_path) == [
        "B/1.png", "a/sub/deeper/q.bmp", "a/x.JPEG", "a/y.webp", "b/10.png", "b/2.png", "top.png", "ä/1.png",
    ]


def test_symlinks_followed_with_cycle_protection(tmp_path):
    _touch(tmp_path, "real/a.png", "other/b.png")
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "real", target_is_directory=True)  # cycle
    (tmp_path / "linked").symlink_to(tmp_path / "other", target_is_directory=True)  # folder link
    (tmp_path / "real" / "c.png").symlink_to(tmp_path / "other" / "b.png")  # file link
    assert list_reference(tmp_path) == ["linked/b.png", "other/b.png", "real/a.png", "real/c.png"]
    # A broken link is an entry that cannot be examined: an error unless skip_unreadable=True,
    # which leaves it out and says so (issue 19, item 5).
    (tmp_path / "real" / "broken.png").symlink_to(tmp_path / "missing.png")
    with pytest.raises(PladaReferenceError, match="real/broken.png.*broken symbolic link.*skip_unreadable"):
        list_reference(tmp_path)
    with pytest.warns(PladaReferenceWarning, match="left out 1 entry.*real/broken.png"):
        assert list_reference(tmp_path, skip_unreadable=True) == [
            "linked/b.png", "other/b.png", "real/a.png", "real/c.png"]


def test_equals_torchvision_imagefolder(tmp_path):
    datasets = pytest.importorskip("torchvision.datasets")
    from PIL import Image

    for p in ["zebra/1.png", "ant/b.png", "ant/a10.png", "ant/a9.png", "Bee/x.jpg", "ant/readme.txt"]:
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        if p.endswith(".txt"):
            (tmp_path / p).write_text("x")
        else:
            Image.new("RGB", (2, 2)).save(tmp_path / p)
    folder = datasets.ImageFolder(str(tmp_path))
    expected = [os.path.relpath(p, tmp_path).replace(os.sep, "/") for p, _ in folder.samples]
    assert list_reference(tmp_path) == expected
    assert dataset_fingerprint(folder) == Reference.from_dir(tmp_path).fingerprint


def test_manifest_round_trip(tmp_path):
    _touch(tmp_path / "imgs", "a/1.png", "b/2.png", "b/3.png")
    ref = Reference.from_dir(tmp_path / "imgs")
    assert ref.n == len(ref) == 3
    ref.write_manifest(tmp_path / "m.txt")
    assert (tmp_path / "m.txt").read_bytes() == b"a/1.png\nb/2.png\nb/3.png\n" == manifest_bytes(ref.paths)
    again = Reference.from_manifest(tmp_path / "m.txt", root=tmp_path / "imgs")
    assert again == ref
    assert again.path(2) == tmp_path / "imgs" / "b" / "3.png"
    # A manifest keeps its own order.
    (tmp_path / "m2.txt").write_text("b/3.png\na/1.png")
    custom = Reference.from_manifest(tmp_path / "m2.txt")
    assert custom.paths == ("b/3.png", "a/1.png") and custom.fingerprint != ref.fingerprint
    with pytest.raises(PladaReferenceError, match="no root"):
        custom.path(0)


@pytest.mark.parametrize(
    "text, message",
    [("a.png\n\nb.png\n", "empty path"), ("/abs.png\n", "relative"), ("a/../b.png\n", "relative"),
     ("a.png\na.png\n", "twice")],
)
def test_bad_manifests_rejected(tmp_path, text, message):
    (tmp_path / "m.txt").write_text(text)
    with pytest.raises(PladaReferenceError, match=message):
        Reference.from_manifest(tmp_path / "m.txt")


def test_reference_check(tmp_path):
    ref = Reference.from_paths(["a.png", "b.png"])
    ref.check(2, ref.fingerprint)
    ref.check(2, None)
    with pytest.raises(PladaReferenceError, match="expects 3 reference images"):
        ref.check(3, ref.fingerprint)
    with pytest.raises(PladaReferenceError, match="fingerprint"):
        ref.check(2, bytes(32))
    with pytest.raises(ValueError):  # PladaReferenceError is also a ValueError
        ref.check(2, bytes(32))


def test_errors_for_bad_folders(tmp_path):
    with pytest.raises(PladaReferenceError, match="cannot be read"):
        list_reference(tmp_path / "missing")
    (tmp_path / "f.png").write_bytes(b"")
    with pytest.raises(PladaReferenceError, match="not a folder"):
        list_reference(tmp_path / "f.png")
    with pytest.raises(PladaReferenceError, match="line break"):
        fingerprint(["a\nb.png"])


def test_dataset_fingerprint_rules():
    class Arrays:
        def __init__(self, data):
            self.data = data

        def __len__(self):
            return len(self.data)

    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    fa = dataset_fingerprint(Arrays(a))
    assert fa == dataset_fingerprint(Arrays(a.copy()))
    b = a.copy()
    b[1, 2, 3] += 1
    assert dataset_fingerprint(Arrays(b)) != fa  # pixel contents are hashed
    assert dataset_fingerprint(Arrays(a.astype(np.int16))) != fa

    class Plain:
        def __len__(self):
            return 5

    assert len(dataset_fingerprint(Plain())) == 32
    assert dataset_fingerprint(Plain()) != dataset_fingerprint(Arrays(np.zeros(5)))

    class WithPaths:
        paths = ["x/1.png", "y/2.png"]

        def __len__(self):
            return 2

    assert dataset_fingerprint(WithPaths()) == fingerprint(WithPaths.paths)

    class WithReference:
        reference = Reference.from_paths(["q.png"])

        def __len__(self):
            return 1

    assert dataset_fingerprint(WithReference()) == WithReference.reference.fingerprint


def test_image_extensions():
    assert {".png", ".jpg", ".jpeg", ".webp", ".tiff"} <= IMAGE_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in IMAGE_EXTENSIONS)


def test_server_modules_do_not_import_torch():
    code = (
        "import sys, pladacodec, pladacodec.reference, pladacodec.selection, pladacodec_cli.server\n"
        "assert 'torch' not in sys.modules and 'timm' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_manifest_command(tmp_path):
    from pladacodec_cli.server import manifest

    _touch(tmp_path / "ref", "a/1.png", "b/2.png")
    out = tmp_path / "ref.manifest"
    result = CliRunner().invoke(manifest, [str(tmp_path / "ref"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    ref = Reference.from_dir(tmp_path / "ref")
    assert ref.fingerprint.hex() in result.output
    assert "2 images in 2 folders" in result.output and ref.folder_layout().digest.hex() in result.output
    assert out.read_text() == "a/1.png\nb/2.png\n"
    assert (tmp_path / "ref.manifest.sha256").read_text() == f"{ref.fingerprint.hex()}  2\n"
    # default output name: beside the folder
    result = CliRunner().invoke(manifest, [str(tmp_path / "ref")])
    assert result.exit_code == 0 and out.exists()


# --- issue 18: compact paths, hardened list APIs; issue 19.5: identity of the reference ---------


@pytest.mark.parametrize("bad", ["reference/", b"reference/", None])
def test_single_path_where_a_list_is_expected_is_refused(bad, tmp_path):
    from pladacodec.folders import FolderLayout

    bad = tmp_path if bad is None else bad
    for call in (fingerprint, manifest_bytes, Reference.from_paths, FolderLayout.from_paths):
        with pytest.raises(TypeError, match="list of relative image paths.*Reference.from_dir"):
            call(bad)
    with pytest.raises(TypeError, match="not a str"):
        fingerprint(["a.png", b"b.png"])


def _manifest_lines(n_folders=40, per=37):
    return [f"n{f:08d}/n{f:08d}_{i}.JPEG" for f in range(n_folders) for i in range(per)] + ["top.png"]


@pytest.mark.parametrize("in_memory", [True, False])
def test_path_table_from_manifest_file(tmp_path, monkeypatch, in_memory):
    import pickle

    import pladacodec._manifest as M
    from pladacodec.folders import FolderLayout

    monkeypatch.setattr(M, "_CHUNK", 257)  # many chunks, lines cut at every boundary
    if not in_memory:
        monkeypatch.setattr(M, "IN_MEMORY_LIMIT", 0)  # read from the file on demand
    paths = _manifest_lines()
    (tmp_path / "m.txt").write_text("".join(p + "\n" for p in paths))
    ref = Reference.from_manifest(tmp_path / "m.txt", root=tmp_path)
    assert ref.paths.in_memory == in_memory
    assert ref.fingerprint == fingerprint(paths) and ref.n == len(paths)
    assert ref.paths == paths and ref.paths[5] == paths[5] and ref.paths[-1] == "top.png"
    assert ref.paths[3:6] == tuple(paths[3:6])
    assert list(ref.paths.take([7, 0, len(paths) - 1])) == [paths[7], paths[0], paths[-1]]
    assert ref.folder_layout() == FolderLayout.from_paths(paths)
    assert np.array_equal(ref.paths.parent_starts(chunk_lines=10), FolderLayout.from_paths(paths).starts)
    again = pickle.loads(pickle.dumps(ref))
    assert again.paths[100] == paths[100] and again == ref
    ref.write_manifest(tmp_path / "copy.txt")
    assert (tmp_path / "copy.txt").read_bytes() == (tmp_path / "m.txt").read_bytes()
    (tmp_path / "nonl.txt").write_text("\n".join(paths))  # no final newline
    nonl = Reference.from_manifest(tmp_path / "nonl.txt")
    assert nonl.fingerprint == ref.fingerprint and nonl.paths[-1] == "top.png" and list(nonl.paths) == paths
    # CRLF and a missing final newline: the same reference
    (tmp_path / "crlf.txt").write_bytes("\r\n".join(paths).encode())
    assert Reference.from_manifest(tmp_path / "crlf.txt").fingerprint == ref.fingerprint
    # a duplicate far apart (other chunks) is found and named
    (tmp_path / "dup.txt").write_text("".join(p + "\n" for p in paths + [paths[3]]))
    with pytest.raises(PladaReferenceError, match=f"line {len(paths) + 1:,}: path '{paths[3]}' is listed twice"):
        Reference.from_manifest(tmp_path / "dup.txt")
    bad = paths[:500] + ["a/./b.png"] + paths[500:]
    (tmp_path / "bad.txt").write_text("".join(p + "\n" for p in bad))
    with pytest.raises(PladaReferenceError, match="line 501: expected a relative POSIX path"):
        Reference.from_manifest(tmp_path / "bad.txt")


def test_manifest_changed_on_disk_is_noticed(tmp_path, monkeypatch):
    import pladacodec._manifest as M

    monkeypatch.setattr(M, "IN_MEMORY_LIMIT", 0)
    (tmp_path / "m.txt").write_text("a/1.png\nb/2.png\n")
    ref = Reference.from_manifest(tmp_path / "m.txt")
    assert ref.paths[1] == "b/2.png"
    import pickle

    blob = pickle.dumps(ref)
    (tmp_path / "m.txt").write_text("a/1.png\nb/3.png\nc/4.png\n")
    with pytest.raises(PladaReferenceError, match="changed since it was read"):
        pickle.loads(blob).paths[1]


def test_backslash_names_are_refused_by_listing_and_manifest_alike(tmp_path):
    from pladacodec_cli.server import manifest

    _touch(tmp_path / "ref", "a/1.png", "a/b\\c.png")
    with pytest.raises(PladaReferenceError, match="backslash"):
        list_reference(tmp_path / "ref")
    result = CliRunner().invoke(manifest, [str(tmp_path / "ref"), "-o", str(tmp_path / "m")])
    assert result.exit_code == 1 and "backslash" in result.output and not (tmp_path / "m").exists()
    (tmp_path / "m2").write_text("a/b\\c.png\n")
    with pytest.raises(PladaReferenceError, match="backslash"):
        Reference.from_manifest(tmp_path / "m2")


def test_manifest_command_skip_unreadable(tmp_path):
    from pladacodec_cli.server import manifest

    _touch(tmp_path / "ref", "a/1.png")
    (tmp_path / "ref" / "a" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    out = tmp_path / "m"
    result = CliRunner().invoke(manifest, [str(tmp_path / "ref"), "-o", str(out)])
    assert result.exit_code == 1 and "a/gone.png" in result.output and "--skip-unreadable" in result.output
    result = CliRunner().invoke(manifest, [str(tmp_path / "ref"), "-o", str(out), "--skip-unreadable"])
    assert result.exit_code == 0, result.output
    assert "warning: left out 1 entry" in result.output and "a/gone.png" in result.output
    assert out.read_text() == "a/1.png\n"


def test_references_without_images_are_errors(tmp_path):
    from pladacodec_cli.server import manifest

    _touch(tmp_path / "empty", "notes.txt")
    with pytest.raises(PladaReferenceError, match="holds no image"):
        Reference.from_dir(tmp_path / "empty")
    assert list_reference(tmp_path / "empty") == []
    result = CliRunner().invoke(manifest, [str(tmp_path / "empty"), "-o", str(tmp_path / "m")])
    assert result.exit_code == 1 and "no image" in result.output
    (tmp_path / "m0").write_bytes(b"")
    with pytest.raises(PladaReferenceError, match="holds no image"):
        Reference.from_manifest(tmp_path / "m0")
    with pytest.raises(PladaReferenceError, match="holds no image"):
        Reference.from_paths([])


def test_pack_warns_without_fingerprint(tmp_path):
    from pladacodec_cli.codec import pack

    (tmp_path / "sel.csv").write_text("index,label\n1,0\n5,1\n")
    result = CliRunner().invoke(pack, [str(tmp_path / "sel.csv"), "-o", str(tmp_path / "t.plada"),
                                       "--n-reference", "10"])
    assert result.exit_code == 0, result.output
    assert "warning: the task carries no reference fingerprint" in result.output
    _touch(tmp_path / "ref", *[f"{i}.png" for i in range(10)])
    Reference.from_dir(tmp_path / "ref").write_manifest(tmp_path / "m")
    result = CliRunner().invoke(pack, [str(tmp_path / "sel.csv"), "-o", str(tmp_path / "t2.plada"),
                                       "--reference-manifest", str(tmp_path / "m")])
    assert result.exit_code == 0 and "warning" not in result.output


def _oracle(lines):
    """The manifest rules in plain Python (the pre-vectorised checks): None if valid, else the
    1-based line of the first malformed path, or else of the first repeated one."""
    for no, p in enumerate(lines, 1):
        if not p or p.startswith("/") or "\\" in p or any(c in ("", ".", "..") for c in p.split("/")):
            return no
    seen = set()
    for no, p in enumerate(lines, 1):
        if p in seen:
            return no
        seen.add(p)
    return None


def test_vectorised_manifest_checks_agree_with_plain_python(tmp_path, monkeypatch):
    import pladacodec._manifest as M

    monkeypatch.setattr(M, "_CHUNK", 61)  # lines cut at chunk boundaries everywhere
    rng = np.random.default_rng(7)
    alphabet = ["a", "b", "/", ".", "-", "_", "é", "\\", "Z"]
    for case in range(250):
        lines = []
        for _ in range(int(rng.integers(1, 12))):
            lines.append("".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=int(rng.integers(0, 9)))))
        if case % 3 == 0:  # mostly valid manifests, sorted or not
            lines = sorted({p for p in ("/".join(s for s in p.split("/") if s not in ("", ".", "..")) for p in lines)
                            if p and "\\" not in p})
            if case % 2:
                lines = lines[::-1]
            if not lines:
                continue
        (tmp_path / "m.txt").write_text("".join(p + "\n" for p in lines), encoding="utf-8")
        expected = _oracle(lines)
        if expected is None and lines:
            ref = Reference.from_manifest(tmp_path / "m.txt")
            assert list(ref.paths) == lines and ref.fingerprint == fingerprint(lines), lines
            parents = [p.rpartition("/")[0] for p in lines]
            runs = [0] + [i for i in range(1, len(lines)) if parents[i] != parents[i - 1]]
            assert ref.paths.parent_starts(chunk_lines=3).tolist() == runs, lines
        else:
            with pytest.raises(PladaReferenceError) as info:
                Reference.from_manifest(tmp_path / "m.txt")
            if expected is not None:
                assert f"line {expected:,}" in str(info.value), (lines, str(info.value))
