"""Golden v1 files: every committed file decodes to its sidecar, in every run (numcodecs' backwards check).

One file per (index method, label method) of FORMAT.md, plus special cases;
the table is :func:`common.golden_cases`.  A missing golden file fails: it is
never regenerated here.  Create missing ones by hand with
``python tests/make_golden.py`` (it refuses to overwrite), review, commit.
"""

from __future__ import annotations

import pytest

import pladacodec

from common import (
    GOLDEN_DIR,
    MAKE_GOLDEN,
    encode_from_sidecar,
    golden_cases,
    golden_methods,
    golden_paths,
    index_method_ids,
    label_method_ids,
    load_sidecar,
    method_name,
    methods_used,
    payload_to_json,
    sidecar_folders,
)

CASES = list(golden_cases())


def _require(name: str, *, fail_if_missing: bool = True) -> tuple[bytes, dict]:
    methods = golden_methods(name)
    if methods is not None and (methods[0] not in index_method_ids() or methods[1] not in label_method_ids()):
        pytest.xfail(
            f"{name}: {method_name('index', methods[0])} / {method_name('label', methods[1])} "
            "has no coder yet (FORMAT.md lists its id)"
        )
    plada_path, json_path = golden_paths(name)
    missing = [p.name for p in (plada_path, json_path) if not p.exists()]
    if missing and not fail_if_missing:
        pytest.skip(f"{name}: golden file missing (reported by test_golden_file_decodes_to_its_sidecar)")
    if missing:
        pytest.fail(
            f"golden file(s) {', '.join(missing)} missing from {GOLDEN_DIR}; create them with "
            f"`{MAKE_GOLDEN} {name}`, check them, and commit them",
            pytrace=False,
        )
    return plada_path.read_bytes(), load_sidecar(json_path)


@pytest.mark.parametrize("name", CASES)
def test_golden_file_decodes_to_its_sidecar(name):
    blob, sidecar = _require(name)
    assert payload_to_json(pladacodec.decode(blob, folders=sidecar_folders(sidecar))) == sidecar["decoded"]


@pytest.mark.parametrize("name", CASES)
def test_golden_file_uses_its_coding_methods(name):
    blob, sidecar = _require(name, fail_if_missing=False)
    methods = golden_methods(name)
    if methods is None or not sidecar["decoded"]["indices"]:
        pytest.skip("not a per-method golden file")
    assert methods_used(blob, sidecar_folders(sidecar)) == ({methods[0]}, {methods[1]})


@pytest.mark.parametrize("name", CASES)
def test_encoder_output_is_unchanged(name):
    """The encoder still writes these exact bytes: any drift of a bitstream is deliberate or a bug.

    If a coder's *encoder* changes on purpose (old files still decode), delete the
    golden pair, recreate it with make_golden.py, and say so in the commit.
    """
    blob, sidecar = _require(name, fail_if_missing=False)
    assert encode_from_sidecar(sidecar) == blob


def test_no_stray_golden_files():
    expected = {p.name for name in CASES for p in golden_paths(name)}
    present = {p.name for p in GOLDEN_DIR.iterdir() if p.suffix in (".plada", ".json")}
    assert present <= expected, f"golden files without a case in common.golden_cases(): {sorted(present - expected)}"


FROZEN_DIR = GOLDEN_DIR / "frozen"


@pytest.mark.parametrize("path", sorted(FROZEN_DIR.glob("*.plada")), ids=lambda p: p.stem)
def test_frozen_golden_file_still_decodes(path):
    """Files an earlier writer produced (their case now encodes differently) decode forever."""
    sidecar = load_sidecar(path.with_suffix(".json"))
    assert payload_to_json(pladacodec.decode(path.read_bytes())) == sidecar["decoded"]


def test_frozen_golden_files_exist():
    assert sorted(p.stem for p in FROZEN_DIR.glob("*.plada")) == ["empty-v1.0", "empty-v1.1", "empty-v1.2", "empty-v1.4"]
