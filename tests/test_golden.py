"""Golden 2.0 files: every committed file decodes to what tests/golden/MANIFEST.json says, in
every run (numcodecs' backwards check), and every coding method has at least one.

A missing golden file, or a method without one, fails: nothing is regenerated or skipped here.
Create missing ones by hand with ``python tests/make_golden.py`` (it refuses to overwrite),
review, commit.
"""

from __future__ import annotations

import hashlib

import pytest

import pladacodec
from pladacodec import _methods

from common import (
    GOLDEN_DIR,
    MAKE_GOLDEN,
    digest,
    golden_cases,
    load_manifest,
    manifest_folders,
)

CASES = golden_cases()
MANIFEST = load_manifest()


def _golden(name: str) -> tuple[bytes, dict]:
    path = GOLDEN_DIR / f"{name}.plada"
    if not path.exists() or name not in MANIFEST:
        pytest.fail(f"golden file {path.name} or its manifest entry is missing; create it with `{MAKE_GOLDEN} {name}`, "
                    "check it, and commit it", pytrace=False)
    return path.read_bytes(), MANIFEST[name]


@pytest.mark.parametrize("name", list(CASES))
def test_golden_file_decodes_to_its_manifest(name):
    blob, entry = _golden(name)
    assert hashlib.sha256(blob).hexdigest() == entry["file_sha256"]
    payload = pladacodec.decode(blob, folders=manifest_folders(entry))
    assert list(payload.version) == entry["version"]
    assert (payload.n_reference, payload.n_classes, payload.k) == (entry["n_reference"], entry["n_classes"], entry["k"])
    assert digest(payload.indices, "u8") == entry["indices_sha256"]
    assert digest(payload.labels, "i8") == entry["labels_sha256"]
    assert payload.class_names == (tuple(entry["class_names"]) if entry["class_names"] is not None else None)
    fingerprint = entry["reference_fingerprint"]
    assert payload.reference_fingerprint == (bytes.fromhex(fingerprint) if fingerprint else None)
    assert payload.metadata == entry["metadata"]
    blocks = pladacodec.inspect(blob, folders=manifest_folders(entry)).layout.blocks
    assert sorted({b.index.method for b in blocks}) == entry["index_methods"]
    assert sorted({b.label.method for b in blocks}) == entry["label_methods"]


@pytest.mark.parametrize("name", list(CASES))
def test_case_still_builds_its_golden_file(name):
    """The encoder still writes these exact bytes from the same input: any drift of a bitstream
    is deliberate (delete the file, recreate it, say why in the commit) or a bug."""
    blob, _ = _golden(name)
    indices, labels, n_reference, kwargs = CASES[name]()
    assert pladacodec.encode(indices, labels, n_reference, **kwargs) == blob


@pytest.mark.parametrize("method", _methods.METHODS, ids=lambda m: f"{m.kind}-{m.name}")
def test_every_method_has_a_golden_file(method):
    key = f"{method.kind}_methods"
    holders = [name for name, entry in MANIFEST.items() if method.id in entry[key] and name in CASES]
    assert holders, f"{method.kind} method {method.id} ({method.name}) has no golden file: add a case to common.golden_cases()"


def test_no_stray_golden_files():
    present = {p.stem for p in GOLDEN_DIR.glob("*.plada")}
    assert present == set(CASES), f"golden files without a case, or cases without a file: {sorted(present ^ set(CASES))}"
    assert set(MANIFEST) == set(CASES)


def test_a_format_1_file_is_refused_naming_its_version():
    """Files of the unreleased 1.x formats (magic \\x89PLADA\\r\\n) get a clear error, not 'not a .plada file'."""
    old = b"\x89PLADA\r\n" + bytes([1, 5]) + bytes(6) + bytes(40)
    with pytest.raises(pladacodec.PladaVersionError, match=r"format version 1\.5"):
        pladacodec.decode(old)
