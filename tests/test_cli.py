"""``pladacodec pack | unpack | inspect | verify`` through click's CliRunner, plus one real process."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import pladacodec
from pladacodec import _spec as S
from pladacodec.reference import Reference

from common import (
    CLI_GOLDEN_CASES, CLI_GOLDEN_DIR, GOLDEN_DIR, MAKE_GOLDEN, SMALL_INDICES, SMALL_LABELS, SMALL_N, run_cli,
    write_small_npz,
)

INDICES, LABELS, N = SMALL_INDICES, SMALL_LABELS, SMALL_N


def assert_user_error(result, exit_code: int, pattern: str) -> None:
    """Exit status as documented, exactly one ``error: ...`` line on stderr, no traceback."""
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


@pytest.fixture
def npz(tmp_path):
    return write_small_npz(tmp_path / "sel.npz")


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "sel.csv"
    path.write_text("index,label\n" + "".join(f"{i},{c}\n" for i, c in zip(INDICES, LABELS)))
    return path


@pytest.fixture
def reference(tmp_path):
    """A reference folder of N empty images in class folders."""
    root = tmp_path / "ref"
    for i in range(N):
        (root / f"class{i % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"class{i % 3}" / f"{i:03d}.png").write_bytes(b"")
    return root


# --- pack ----------------------------------------------------------------------------------


@pytest.mark.parametrize("selection", ["npz", "csv"])
def test_pack(request, tmp_path, selection):
    source = request.getfixturevalue(selection)
    out = tmp_path / "task.plada"
    result = run_cli(["pack", source, "-o", out, "--n-reference", N])
    assert result.exit_code == 0, result.output
    expected = pladacodec.encode(INDICES, LABELS, N)
    assert out.read_bytes() == expected
    bits = 8 * len(expected) / len(INDICES)
    assert result.stdout == f"wrote {out}: k = 6 of N = 100, C = 3; {len(expected)} bytes, {bits:.2f} bits per selected image\n"
    assert result.stderr.startswith("warning: the task carries no reference fingerprint")  # issue 19, item 5


def test_pack_with_every_header_option(tmp_path, npz):
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\r\nélan\n", encoding="utf-8")
    out = tmp_path / "task.plada"
    fingerprint = "ab" * 32
    result = run_cli([
        "pack", npz, "-o", out, "--n-reference", N, "--n-classes", 3, "--classes", names,
        "--fingerprint", fingerprint, "--metadata", '{"teacher": "vit", "budget": 6}',
    ])
    assert result.exit_code == 0, result.output
    payload = pladacodec.read(out)
    assert payload.class_names == ("cat", "dog", "élan")
    assert payload.reference_fingerprint.hex() == fingerprint
    assert payload.metadata == {"teacher": "vit", "budget": 6}


def test_pack_with_reference_manifest(tmp_path, npz, reference):
    manifest = tmp_path / "manifest.txt"
    ref = Reference.from_dir(reference)
    ref.write_manifest(manifest)
    out = tmp_path / "task.plada"
    result = run_cli(["pack", npz, "-o", out, "--reference-manifest", manifest])  # N comes from the manifest
    assert result.exit_code == 0, result.output
    payload = pladacodec.read(out)
    assert (payload.n_reference, payload.reference_fingerprint) == (N, ref.fingerprint)
    result = run_cli(["pack", npz, "-o", out, "--reference-manifest", manifest, "--n-reference", N + 1])
    assert_user_error(result, 1, r"lists 100 images but --n-reference is 101")


def test_pack_csv_variants(tmp_path):
    expected = pladacodec.encode([5, 1, 9], [2, 0, 2], 10)
    for i, text in enumerate(["5,2\n1,0\n9,2\n", "index,label\r\n5,2\r\n1,0\r\n\r\n9,2", "\ufeffidx,lab\n 5 , 2\n1,0\n9,+2\n\n"]):
        source = tmp_path / f"s{i}.csv"
        source.write_text(text, encoding="utf-8")
        out = tmp_path / f"s{i}.plada"
        result = run_cli(["pack", source, "-o", out, "--n-reference", 10])
        assert result.exit_code == 0, (text, result.output)
        assert out.read_bytes() == expected, text


def test_unpack_then_pack_is_lossless(tmp_path):
    task = tmp_path / "task.plada"
    pladacodec.write(task, INDICES, LABELS, N, n_classes=5, class_names=list("abcde"))
    out = tmp_path / "sel.npz"
    assert run_cli(["unpack", task, "-o", out]).exit_code == 0
    again = tmp_path / "again.plada"
    result = run_cli(["pack", out, "-o", again])  # N, C and class names travel in the .npz
    assert result.exit_code == 0, result.output
    assert again.read_bytes() == task.read_bytes()


@pytest.mark.parametrize(
    "make_input, extra, exit_code, pattern",
    [
        (lambda d: d / "missing.npz", [], 1, r"cannot open '.*missing\.npz': No such file or directory"),
        (lambda d: d / "missing.csv", [], 1, r"missing\.csv'?: No such file or directory"),
        (lambda d: _write(d / "sel.txt", "1,2\n"), [], 1, r"must end in \.npz or \.csv"),
        (lambda d: _write(d / "bad.csv", "index,label\n1,2\n3\n"), [], 1, r"line 3: expected 'index,label'"),
        (lambda d: _write(d / "bad.csv", "1,2\nx,y\n"), [], 1, r"line 2: expected 'index,label'"),
        (lambda d: _write(d / "bad.csv", "1,2.5\n"), [], 1, r"line 1: expected 'index,label'"),
        (lambda d: _write_bytes(d / "bad.csv", b"1,2\n\xff\xfe\n"), [], 1, r"not UTF-8"),
        (lambda d: _write(d / "fake.npz", "not a zip"), [], 1, r"is not a readable \.npz file"),
        (lambda d: _npz(d / "x.npz", indices=[1]), [], 1, r"has no array 'labels' \(it holds: indices\)"),
        (lambda d: _npz(d / "x.npz", indices=[1], labels=np.array([object()])), [], 1, r"cannot read its arrays"),
        (lambda d: _npz(d / "x.npz", indices=[1, 100], labels=[0, 0]), [], 1, r"indices\[1\] = 100 is not below n_reference = 100"),
        (lambda d: _npz(d / "x.npz", indices=[3, 1, 3], labels=[0, 0, 0]), [], 1, r"duplicate index 3 at positions 0 and 2"),
        (lambda d: _npz(d / "x.npz", indices=[1], labels=[0]), ["--metadata", "{oops"], 1, r"--metadata is not valid JSON"),
        (lambda d: _npz(d / "x.npz", indices=[1], labels=[0]), ["--metadata", "[1]"], 1, r"metadata must be a mapping"),
        (lambda d: _npz(d / "x.npz", indices=[1], labels=[0]), ["--fingerprint", "abc"], 1, r"not a hex string"),
        (lambda d: _npz(d / "x.npz", indices=[1], labels=[0]), ["--fingerprint", "ab", "--reference-manifest", "m"], 1, r"not both"),
        (lambda d: _npz(d / "x.npz", indices=[1], labels=[0]), ["--classes", "nope.txt"], 1, r"nope\.txt'?: No such file"),
    ],
)
def test_pack_errors(tmp_path, make_input, extra, exit_code, pattern):
    source = make_input(tmp_path)
    out = tmp_path / "out.plada"
    out.write_bytes(b"previous")
    result = run_cli(["pack", source, "-o", out, "--n-reference", N, *extra])
    assert_user_error(result, exit_code, pattern)
    assert out.read_bytes() == b"previous"  # nothing written on failure


def test_pack_needs_n_reference(tmp_path, npz):
    result = run_cli(["pack", npz, "-o", tmp_path / "t.plada"])
    assert_user_error(result, 1, r"--n-reference is required")


def test_usage_errors_exit_1(tmp_path, npz):
    result = run_cli(["pack", npz])
    assert result.exit_code == 1 and "Missing option '-o'" in result.stderr
    result = run_cli(["verify"])
    assert result.exit_code == 1 and "Missing argument 'TASK'" in result.stderr
    result = run_cli(["pack", npz, "-o", tmp_path / "t.plada", "--n-reference", "0"])
    assert result.exit_code == 1 and "Traceback" not in result.output


# --- unpack --------------------------------------------------------------------------------


def test_unpack_npz_and_csv(tmp_path):
    task = tmp_path / "task.plada"
    pladacodec.write(task, INDICES, LABELS, N, class_names=["a", "b", "c"])
    result = run_cli(["unpack", task, "-o", tmp_path / "out.npz"])
    assert result.exit_code == 0 and result.stdout == f"wrote {tmp_path / 'out.npz'}: k = 6 of N = 100, C = 3\n"
    with np.load(tmp_path / "out.npz", allow_pickle=False) as archive:
        assert sorted(archive.files) == ["class_names", "indices", "labels", "n_classes", "n_reference"]
        assert archive["indices"].dtype == np.uint64 and archive["labels"].dtype == np.int64
        assert archive["indices"].tolist() == sorted(INDICES)
        assert archive["labels"].tolist() == [LABELS[INDICES.index(i)] for i in sorted(INDICES)]
        assert (int(archive["n_reference"]), int(archive["n_classes"])) == (N, 3)
        assert archive["class_names"].tolist() == ["a", "b", "c"]
    assert run_cli(["unpack", task, "-o", tmp_path / "out.csv"]).exit_code == 0
    assert (tmp_path / "out.csv").read_text() == "index,label\n0,2\n3,0\n17,1\n40,2\n58,0\n99,2\n"


def test_unpack_without_class_names(tmp_path):
    task = tmp_path / "task.plada"
    pladacodec.write(task, [], [], 7)
    assert run_cli(["unpack", task, "-o", tmp_path / "out.npz"]).exit_code == 0
    with np.load(tmp_path / "out.npz", allow_pickle=False) as archive:
        assert "class_names" not in archive.files and archive["indices"].size == 0
    assert run_cli(["unpack", task, "-o", tmp_path / "out.csv"]).exit_code == 0
    assert (tmp_path / "out.csv").read_text() == "index,label\n"


def test_unpack_errors(tmp_path):
    task = tmp_path / "task.plada"
    pladacodec.write(task, INDICES, LABELS, N)
    assert_user_error(run_cli(["unpack", task, "-o", tmp_path / "out.json"]), 1, r"must end in \.npz or \.csv")
    assert not (tmp_path / "out.json").exists()
    assert_user_error(run_cli(["unpack", tmp_path / "nope.plada", "-o", tmp_path / "o.csv"]), 1, r"No such file")
    (tmp_path / "bad.plada").write_bytes(task.read_bytes()[:-1])
    assert_user_error(run_cli(["unpack", tmp_path / "bad.plada", "-o", tmp_path / "o.csv"]), 2, r"truncated")
    assert_user_error(run_cli(["unpack", task, "-o", tmp_path / "no" / "dir" / "o.csv"]), 1, r"cannot write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.plada", "task.plada"]  # no output, no temporary file


# --- inspect -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CLI_GOLDEN_CASES))
def test_golden_cli_output(name):
    path = CLI_GOLDEN_DIR / name
    if not path.exists():
        pytest.fail(f"expected output cli/{name} missing; create it with `{MAKE_GOLDEN} cli/{name}`", pytrace=False)
    result = run_cli(CLI_GOLDEN_CASES[name], cwd=GOLDEN_DIR)
    assert result.exit_code == 0, result.output
    assert result.stdout == path.read_text(encoding="utf-8")


def test_inspect_json_is_the_task_info(tmp_path):
    task = tmp_path / "task.plada"
    pladacodec.write(task, INDICES, LABELS, N, metadata={"a": 1})
    result = run_cli(["inspect", task, "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"file": str(task), **pladacodec.inspect(task).as_dict()}


def test_inspect_top(tmp_path):
    task = tmp_path / "task.plada"
    pladacodec.write(task, list(range(30)), [i % 12 for i in range(30)], N)
    text = run_cli(["inspect", task]).stdout
    assert "class histogram (top 10 of 12 classes present)" in text
    assert text.rstrip().splitlines()[-1].split()[:2] == ["9", "2"]  # ties in class order
    assert "class histogram" not in run_cli(["inspect", task, "--top", "0"]).stdout


def test_inspect_errors(tmp_path):
    assert_user_error(run_cli(["inspect", tmp_path / "nope.plada"]), 1, r"cannot read '.*nope\.plada'")
    (tmp_path / "x.plada").write_bytes(b"garbage garbage garbage garbage garbage")
    assert_user_error(run_cli(["inspect", tmp_path / "x.plada"]), 2, r"not a \.plada file")
    assert_user_error(run_cli(["inspect", tmp_path]), 1, r"cannot read")


# --- verify --------------------------------------------------------------------------------


def test_verify_help_documents_exit_codes():
    text = run_cli(["verify", "--help"]).stdout
    assert "Exit status" in text
    for code in range(5):
        assert re.search(rf"^\s+{code}\s+\S", text, re.MULTILINE), code


def test_verify_ok(tmp_path, reference):
    task = tmp_path / "task.plada"
    ref = Reference.from_dir(reference)
    pladacodec.write(task, INDICES, LABELS, N, reference_fingerprint=ref.fingerprint)
    result = run_cli(["verify", task])
    assert result.exit_code == 0 and result.stdout.startswith(f"ok: {task} decodes fully (k = 6 of N = 100, C = 3)")
    result = run_cli(["verify", task, "--reference", reference])
    assert result.exit_code == 0 and f"ok: reference {reference} matches (N = 100" in result.stdout
    manifest = tmp_path / "manifest.txt"
    ref.write_manifest(manifest)
    assert run_cli(["verify", task, "--reference", manifest]).exit_code == 0


def test_verify_failures(tmp_path, reference):
    ref = Reference.from_dir(reference)
    good = tmp_path / "good.plada"
    pladacodec.write(good, INDICES, LABELS, N, reference_fingerprint=ref.fingerprint)
    blob = good.read_bytes()

    assert_user_error(run_cli(["verify", tmp_path / "nope.plada"]), 1, r"No such file")
    assert_user_error(run_cli(["verify", good, "--reference", tmp_path / "nowhere"]), 1, r"cannot be read")

    damaged = tmp_path / "damaged.plada"
    damaged.write_bytes(blob[:20] + bytes([blob[20] ^ 1]) + blob[21:])
    assert_user_error(run_cli(["verify", damaged]), 2, r"checksum mismatch")
    damaged.write_bytes(blob[: len(blob) // 2])
    assert_user_error(run_cli(["verify", damaged, "--reference", reference]), 2, r"truncated")

    other_size = tmp_path / "size.plada"
    pladacodec.write(other_size, INDICES, LABELS, N + 1, reference_fingerprint=ref.fingerprint)
    assert_user_error(run_cli(["verify", other_size, "--reference", reference]), 3, r"has 100 images but .* expects N = 101")

    other_fingerprint = tmp_path / "fp.plada"
    pladacodec.write(other_fingerprint, INDICES, LABELS, N, reference_fingerprint=b"\x01" * 32)
    assert_user_error(
        run_cli(["verify", other_fingerprint, "--reference", reference]), 4, rf"fingerprint {ref.fingerprint.hex()} but .* expects 0101"
    )

    no_fingerprint = tmp_path / "nofp.plada"
    pladacodec.write(no_fingerprint, INDICES, LABELS, N)
    assert run_cli(["verify", no_fingerprint]).exit_code == 0
    assert_user_error(run_cli(["verify", no_fingerprint, "--reference", reference]), 4, r"stores no reference fingerprint")


def test_real_process_exit_status_and_message(tmp_path):
    """The installed entry point: exit status and one-line error, as a shell sees them."""
    damaged = tmp_path / "t.plada"
    damaged.write_bytes(pladacodec.encode(INDICES, LABELS, N)[:-3])
    done = subprocess.run(
        [sys.executable, "-m", "pladacodec_cli.app", "verify", str(damaged)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr


# --- helpers ------------------------------------------------------------------------------


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _write_bytes(path, data):
    path.write_bytes(data)
    return path


def _npz(path, **arrays):
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


# --- folder layouts (pack --folders) -----------------------------------------------------------


def _folder_task(tmp_path):
    """A manifest of 60 folders x 50 images and a selection clustered in 20 neighbouring folders."""
    paths = [f"synset{f:02d}/{i:02d}.png" for f in range(60) for i in range(50)]
    manifest = tmp_path / "manifest.txt"
    Reference.from_paths(paths).write_manifest(manifest)
    rng = np.random.default_rng(0)
    indices, labels = [], []
    for f in range(20, 40):
        inside = f * 50 + np.flatnonzero(rng.random(50) < 0.5)
        indices += inside.tolist()
        labels += np.where(rng.random(inside.size) < 0.9, f % 7, rng.integers(0, 7, inside.size)).tolist()
    sel = tmp_path / "sel.npz"
    np.savez(sel, indices=np.array(indices), labels=np.array(labels))
    return manifest, sel, np.array(indices), np.array(labels)


def test_pack_with_folders_and_unpack_with_the_manifest(tmp_path):
    manifest, sel, indices, labels = _folder_task(tmp_path)
    task, plain = tmp_path / "task.plada", tmp_path / "plain.plada"
    result = run_cli(["pack", sel, "-o", task, "--reference-manifest", manifest, "--folders"])
    assert result.exit_code == 0, result.output
    assert "coded against the manifest's 60 folders" in result.stdout
    assert run_cli(["pack", sel, "-o", plain, "--reference-manifest", manifest]).exit_code == 0
    assert task.stat().st_size < plain.stat().st_size
    assert pladacodec.read_header(task.read_bytes()).folders[0] == 60

    out = tmp_path / "out.npz"
    assert_user_error(run_cli(["unpack", task, "-o", out]), 1, r"coded against a folder layout of 60 folders.*--reference-manifest MANIFEST")
    assert_user_error(run_cli(["inspect", task]), 1, r"--reference-manifest MANIFEST")
    result = run_cli(["unpack", task, "-o", out, "--reference-manifest", manifest])
    assert result.exit_code == 0, result.output
    with np.load(out) as z:
        np.testing.assert_array_equal(z["indices"], indices)
        np.testing.assert_array_equal(z["labels"], labels)
    result = run_cli(["inspect", task, "--reference-manifest", manifest])
    assert result.exit_code == 0 and re.search(r"folder layout +60 folders, digest [0-9a-f]{16}", result.stdout)
    assert run_cli(["verify", task, "--reference", manifest]).exit_code == 0

    # another manifest of the same size but other folders: the layout does not match
    other = tmp_path / "other.txt"
    Reference.from_paths([f"s{f:02d}/{i:03d}.png" for f in range(30) for i in range(100)]).write_manifest(other)
    assert_user_error(run_cli(["verify", task, "--reference", other]), 4, r"folder layout mismatch")
    assert_user_error(run_cli(["unpack", task, "-o", out, "--reference-manifest", other]), 1, r"folder layout mismatch")


def test_pack_folders_needs_a_manifest(tmp_path, npz):
    assert_user_error(run_cli(["pack", npz, "-o", tmp_path / "t.plada", "--n-reference", N, "--folders"]), 1, r"--folders needs --reference-manifest")


@pytest.mark.parametrize("version", [f"{S.VERSION_MAJOR}.{minor}" for minor in range(S.VERSION_MINOR + 1)])
def test_pack_for_an_older_reader(tmp_path, npz, version):
    """--format-version M.N writes only what an M.N reader decodes: the file is stamped M.N or lower."""
    out = tmp_path / "task.plada"
    result = run_cli(["pack", npz, "-o", out, "--n-reference", N, "--format-version", version])
    assert result.exit_code == 0, result.output
    assert pladacodec.read_header(out.read_bytes()).version <= tuple(int(part) for part in version.split("."))
    assert out.read_bytes() == pladacodec.encode(INDICES, LABELS, N, **pladacodec.methods_for_version(version))


def test_pack_format_version_errors(tmp_path, npz):
    out = tmp_path / "task.plada"
    major, minor = S.VERSION_MAJOR, S.VERSION_MINOR
    for bad, pattern in (
        (f"{major + 1}.0", rf"format versions {major}\.0 to {major}\.{minor}, not {major + 1}\.0"),
        (f"{major}.99", rf"not {major}\.99"),
        ("new", r"must look like"),
    ):
        assert_user_error(run_cli(["pack", npz, "-o", out, "--n-reference", N, "--format-version", bad]), 1, pattern)
    manifest, sel, _, _ = _folder_task(tmp_path)
    result = run_cli(["pack", sel, "-o", out, "--reference-manifest", manifest, "--folders", "--format-version",
                      f"{major}.{minor}"])
    assert result.exit_code == 0, result.output
    assert pladacodec.read_header(out.read_bytes()).version <= (major, minor)
