"""Checks shared by the codec tests (numcodecs' ``tests/common.py`` is the model).

Round-trip checks, the coding-method registries, file surgery for damage
tests, and the table of golden files that ``make_golden.py`` writes and
``test_golden.py`` reads.
"""

from __future__ import annotations

import hashlib
import os
import json
import struct
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

import pladacodec
from pladacodec import _container
from pladacodec import _spec as S
from pladacodec._bytes import crc32c

TESTS_DIR = Path(__file__).resolve().parent
GOLDEN_DIR = TESTS_DIR / "golden"
MAKE_GOLDEN = "python tests/make_golden.py"
if str(TESTS_DIR / "fuzzers") not in sys.path:
    sys.path.insert(0, str(TESTS_DIR / "fuzzers"))
from make_corpus import folders_for, synthetic_folders  # noqa: E402  (the tests' folder layout)


# --- expected results -------------------------------------------------------------------


def sorted_selection(indices, labels) -> tuple[np.ndarray, np.ndarray]:
    """What decode must return for this input: indices sorted (uint64), labels alongside (int64)."""
    idx = np.array([int(i) for i in indices], dtype=np.uint64)
    lab = np.array([int(c) for c in labels], dtype=np.int64)
    order = np.argsort(idx, kind="stable")
    return idx[order], lab[order]


def assert_payload(payload: pladacodec.Payload, indices, labels, n_reference: int, n_classes: int, **extras) -> None:
    """``payload`` holds exactly this selection (any input order) and these header fields."""
    idx, lab = sorted_selection(indices, labels)
    assert payload.indices.dtype == np.uint64 and payload.labels.dtype == np.int64
    np.testing.assert_array_equal(payload.indices, idx)
    np.testing.assert_array_equal(payload.labels, lab)
    assert (payload.n_reference, payload.n_classes) == (n_reference, n_classes)
    names = extras.get("class_names")
    assert payload.class_names == (tuple(names) if names is not None else None)
    fingerprint = extras.get("reference_fingerprint")
    if isinstance(fingerprint, str):
        fingerprint = bytes.fromhex(fingerprint)
    assert payload.reference_fingerprint == (bytes(fingerprint) if fingerprint is not None else None)
    assert payload.metadata == extras.get("metadata")


def check_roundtrip(indices, labels, n_reference: int, n_classes: int | None = None, **kwargs) -> bytes:
    """Encode, then decode through every accepted buffer type; every decode must give the input back.

    Returns the encoded bytes.  ``n_classes`` None means "let the encoder infer it".  Forcing a
    folder method (index 6, label 5) without ``folders`` uses the tests' synthetic layout.
    """
    if kwargs.get("folders") is None and (
        any(("index", m) in S.FOLDER_METHODS for m in kwargs.get("index_methods") or ())
        or any(("label", m) in S.FOLDER_METHODS for m in kwargs.get("label_methods") or ())
    ):
        kwargs["folders"] = synthetic_folders(n_reference)
    blob = pladacodec.encode(indices, labels, n_reference, n_classes=n_classes, **kwargs)
    assert isinstance(blob, bytes)
    expected_c = n_classes
    if expected_c is None:
        names = kwargs.get("class_names")
        expected_c = len(names) if names is not None else (max((int(c) for c in labels), default=0) + 1)
    extras = {key: kwargs[key] for key in ("class_names", "reference_fingerprint", "metadata") if key in kwargs}
    folders = kwargs.get("folders")
    for data in (blob, bytearray(blob), memoryview(blob), np.frombuffer(blob, dtype=np.uint8)):
        assert_payload(pladacodec.decode(data, folders=folders), indices, labels, n_reference, expected_c, **extras)
    header = pladacodec.read_header(blob)
    assert (header.n_reference, header.n_selected, header.n_classes) == (n_reference, len(indices), expected_c)
    info = pladacodec.inspect(blob, folders=folders)
    assert info.file_size == len(blob) == sum(info.section_bytes().values())
    return blob


# --- coding methods ----------------------------------------------------------------------


def index_method_ids() -> list[int]:
    """Every index coding method the encoder knows (new methods are picked up automatically)."""
    return sorted(_container._INDEX_CODERS)


def label_method_ids() -> list[int]:
    return sorted(_container._LABEL_CODERS)


def method_name(kind: str, method: int) -> str:
    return _container.METHOD_NAMES.get((kind, method), f"method-{method}")


def methods_used(blob: bytes, folders=None) -> tuple[set[int], set[int]]:
    """The (index, label) method ids found in a file's blocks (``folders``: the layout a file of
    the folder methods needs; default: the tests' synthetic one)."""
    blocks = pladacodec.inspect(blob, folders=folders or folders_for(blob)).layout.blocks
    return {b.index.method for b in blocks}, {b.label.method for b in blocks}


def index_method_applies(method: int, indices: np.ndarray, block_entries: int = S.DEFAULT_BLOCK_ENTRIES) -> bool:
    """Whether ``method``'s encoder accepts every block (bitmap-ANS returns None when a span is too wide)."""
    encode = _container._INDEX_CODERS[method][0]
    for start in range(0, len(indices), block_entries):
        base = int(indices[start - 1]) + 1 if start else 0
        if encode(indices[start : start + block_entries], base) is None:
            return False
    return True


# --- file surgery ------------------------------------------------------------------------


def split_file(blob: bytes) -> tuple[bytes, bytes]:
    """(header field bytes, block bytes) of a valid file: the parts between preamble, CRCs and trailer."""
    _, blocks_start = _container.decode_header(blob)
    fields = blob[S.PREAMBLE_SIZE : blocks_start - S.HEADER_CRC_SIZE]
    return fields, blob[blocks_start : len(blob) - S.TRAILER_SIZE]


def header_field(tag: int, value: bytes) -> bytes:
    """One header field (tag, length, value) as FORMAT.md §3 lays it out."""
    return _container._field(tag, value)


def assemble(fields: bytes, blocks: bytes, *, major=S.VERSION_MAJOR, minor=S.VERSION_MINOR, flags=0) -> bytes:
    """A file from header fields and blocks, with a correct header CRC and trailer."""
    head = struct.pack(S.PREAMBLE_FORMAT, S.MAGIC, major, minor, flags, len(fields)) + fields
    head += struct.pack(S.HEADER_CRC_FORMAT, crc32c(head))
    body = head + blocks
    return body + struct.pack(S.TRAILER_FORMAT, crc32c(body), S.END_MAGIC)


def repair_checksums(damaged: bytes, layout: _container.Layout) -> bytes:
    """Recompute the header, section and file CRCs at the places ``layout`` (of the undamaged file) says.

    Damage that the checksums would catch then reaches the parsers and coders.
    """
    out = bytearray(damaged)
    header_end = layout.preamble_and_header - S.HEADER_CRC_SIZE
    struct.pack_into(S.HEADER_CRC_FORMAT, out, header_end, crc32c(bytes(out[:header_end])))
    for block in layout.blocks:
        for section in (block.index, block.label):
            end = section.offset + section.size - S.SECTION_CRC_SIZE
            struct.pack_into(S.SECTION_CRC_FORMAT, out, end, crc32c(bytes(out[section.offset : end])))
    end = len(out) - S.TRAILER_SIZE
    struct.pack_into("<I", out, end, crc32c(bytes(out[:end])))
    return bytes(out)


def assert_valid_payload(payload: pladacodec.Payload) -> None:
    """Whatever a decoder returns must satisfy the format's invariants."""
    idx, lab = payload.indices, payload.labels
    assert idx.dtype == np.uint64 and lab.dtype == np.int64 and len(idx) == len(lab)
    assert np.all(idx[1:] > idx[:-1])
    assert len(idx) == 0 or int(idx[-1]) < payload.n_reference
    assert len(lab) == 0 or (int(lab.min()) >= 0 and int(lab.max()) < payload.n_classes)


# --- golden files ------------------------------------------------------------------------
#
# Each case is built by a function returning (indices, labels, n_reference, encode keyword
# arguments).  The sidecar JSON records the decoded content *and* the encode arguments, so a
# golden file can be decoded and re-encoded without this table.


def _method_selection() -> tuple[np.ndarray, np.ndarray, int]:
    """200 entries in 5,000: clustered runs plus scattered singles; skewed labels over 7 classes."""
    rng = np.random.default_rng(20260101)
    runs = [np.arange(start, start + length) for start, length in ((100, 40), (1500, 25), (3200, 60))]
    scattered = rng.choice(np.setdiff1d(np.arange(5000), np.concatenate(runs)), 75, replace=False)
    indices = np.sort(np.concatenate(runs + [scattered])).astype(np.uint64)
    labels = rng.choice(7, size=len(indices), p=[0.4, 0.2, 0.15, 0.1, 0.08, 0.05, 0.02]).astype(np.int64)
    return indices, labels, 5000


def _method_case(index_method: int, label_method: int) -> Callable[[], tuple]:
    def build():
        indices, labels, n = _method_selection()
        kwargs = dict(n_classes=7, block_entries=64, index_methods=[index_method], label_methods=[label_method])
        if ("index", index_method) in S.FOLDER_METHODS or ("label", label_method) in S.FOLDER_METHODS:
            kwargs["folders"] = synthetic_folders(n)
        return indices, labels, n, kwargs

    return build


def _clustered_selection(n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """~2,500 entries in 200,000 as a PLADA server selects them: dense runs with a dominant label
    (folders a teacher likes), jumps between them (run boundaries) and scattered singles."""
    rng = np.random.default_rng(seed)
    indices, labels, pos = [], [], 0
    for _ in range(40):
        pos += int(rng.integers(100, 4_000))
        length = int(rng.integers(20, 400))
        run = pos + np.flatnonzero(rng.random(length) < rng.uniform(0.1, 0.95))
        dominant = int(rng.integers(0, n_classes))
        noisy = rng.random(run.size) < 0.1
        indices.append(run)
        labels.append(np.where(noisy, rng.integers(0, n_classes, run.size), dominant))
        pos += length
    scattered = rng.choice(np.setdiff1d(np.arange(200_000), np.concatenate(indices)), 60, replace=False)
    indices.append(scattered)
    labels.append(rng.integers(0, n_classes, scattered.size))
    order = np.argsort(np.concatenate(indices))
    return np.concatenate(indices)[order].astype(np.uint64), np.concatenate(labels)[order].astype(np.int64), 200_000


def _clustered_case(
    n_classes: int, seed: int, label_method: int = S.LABEL_CONTEXT2, index_method: int = S.INDEX_CONTEXT2
) -> Callable[[], tuple]:
    """Context-ANS 2 (index 4, label 3; or label 6) over every path: mature contexts, run
    boundaries, literals with excluded candidates (C <= 32) or split in two parts (C > 256)."""

    def build():
        indices, labels, n = _clustered_selection(n_classes, seed)
        kwargs = dict(n_classes=n_classes, index_methods=[index_method], label_methods=[label_method])
        return indices, labels, n, kwargs

    return build


def _clustered_folders_case(
    n_classes: int, seed: int, label_method: int = S.LABEL_CONTEXT2_FOLDERS, index_method: int = S.INDEX_CONTEXT2_FOLDERS
) -> Callable[[], tuple]:
    """The clustered selections through index method 6 / label method 5 (or 7) over folders of
    400-599 images (a fixed pattern): boundaries inside runs and between them."""

    def build():
        indices, labels, n = _clustered_selection(n_classes, seed)
        sizes = 400 + (np.arange(n // 400) * 37) % 200
        starts = np.concatenate(([0], np.cumsum(sizes)))
        folders = pladacodec.FolderLayout(starts[starts < n], n)
        kwargs = dict(
            n_classes=n_classes, index_methods=[index_method], label_methods=[label_method],
            folders=folders,
        )
        return indices, labels, n, kwargs

    return build


def _noisy_case(index_method: int, label_method: int) -> Callable[[], tuple]:
    """Dense picks whose labels mix five classes (30/30/20/10/10 %) per run: the label window's
    mode is often tied, so its update rule (FORMAT.md §6.2: D's count taken before the oldest
    label leaves) decides the candidates."""

    def build():
        rng = np.random.default_rng(12)
        indices, labels, pos = [], [], 0
        for _ in range(12):
            pos += int(rng.integers(50, 500))
            run = pos + np.flatnonzero(rng.random(120) < 0.6)
            active = rng.choice(8, 5, replace=False)
            indices.append(run)
            labels.append(active[rng.choice(5, run.size, p=[0.3, 0.3, 0.2, 0.1, 0.1])])
            pos += 120
        kwargs = dict(n_classes=8, index_methods=[index_method], label_methods=[label_method])
        return np.concatenate(indices).astype(np.uint64), np.concatenate(labels).astype(np.int64), 10_000, kwargs

    return build


def _extras_case():
    indices = np.array([3, 14, 15, 92, 653, 589, 793, 238, 462, 643, 383, 279], dtype=np.uint64)
    labels = np.array([0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0], dtype=np.int64)
    kwargs = dict(
        class_names=["cat", "dog", "éléphant"],
        reference_fingerprint=hashlib.sha256(b"pladacodec golden reference").digest(),
        metadata={"teacher": "golden", "budget": 12, "nested": {"list": [1, 2.5, None, True], "text": "ünïcode"}},
        index_methods=[S.INDEX_GOLOMB_ANS],
        label_methods=[S.LABEL_IID_ANS],
    )
    return indices, labels, 1000, kwargs


def _empty_case():
    return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64), 1, {}


def _wide_case():
    n = S.MAX_N_REFERENCE
    indices = np.array([0, 1, (1 << 32) - 1, 1 << 32, (1 << 32) + 1, 3 << 36, n - 1], dtype=np.uint64)
    labels = np.array([0, S.MAX_CLASSES - 1, 7, 7, 0, 12_345, S.MAX_CLASSES - 1], dtype=np.int64)
    kwargs = dict(n_classes=S.MAX_CLASSES, index_methods=[S.INDEX_GOLOMB_ANS], label_methods=[S.LABEL_IID_ANS])
    return indices, labels, n, kwargs


def _wide_rans_case():
    """The wide case through the static rANS methods (escaped quotients, labels near 65,535)."""
    indices, labels, n, kwargs = _wide_case()
    return indices, labels, n, dict(kwargs, index_methods=[S.INDEX_GOLOMB_RANS], label_methods=[S.LABEL_IID_RANS])


def _many_labels_rans_case():
    """5,001 entries with more than 4,097 labels in use: label method 4's 20-bit table (§5.8)."""
    rng = np.random.default_rng(11)
    indices = np.sort(rng.choice(1_000_000, 5_001, replace=False)).astype(np.uint64)
    labels = rng.integers(0, S.MAX_CLASSES, 5_001).astype(np.int64)
    kwargs = dict(n_classes=S.MAX_CLASSES, index_methods=[S.INDEX_GOLOMB_RANS], label_methods=[S.LABEL_IID_RANS])
    return indices, labels, 1_000_000, kwargs


def golden_method_name(index_method: int, label_method: int) -> str:
    return f"index-{index_method}-label-{label_method}"


def golden_cases() -> dict[str, Callable[[], tuple]]:
    """name -> builder, one per (index method, label method) of FORMAT.md plus special cases."""
    cases = {
        golden_method_name(i, c): _method_case(i, c) for i in S.INDEX_METHODS for c in S.LABEL_METHODS
    }
    cases["clustered-c10"] = _clustered_case(10, 7)
    cases["clustered-c300"] = _clustered_case(300, 8)
    cases["clustered-c100"] = _clustered_case(100, 9)  # literals of 33 <= C <= 256: one table, no exclusion
    cases["clustered-folders-c10"] = _clustered_folders_case(10, 7)
    cases["clustered-folders-c300"] = _clustered_folders_case(300, 8)
    # label methods 6 / 7 (§6.6) on every literal path: excluded candidates, one table, split
    cases["clustered-l6-c10"] = _clustered_case(10, 7, S.LABEL_CONTEXT3)
    cases["clustered-l6-c100"] = _clustered_case(100, 9, S.LABEL_CONTEXT3)
    cases["clustered-l6-c300"] = _clustered_case(300, 8, S.LABEL_CONTEXT3)
    cases["clustered-folders-l7-c10"] = _clustered_folders_case(10, 7, S.LABEL_CONTEXT3_FOLDERS)
    cases["clustered-folders-l7-c300"] = _clustered_folders_case(300, 8, S.LABEL_CONTEXT3_FOLDERS)
    cases["noisy-l2"] = _noisy_case(S.INDEX_CONTEXT, S.LABEL_CONTEXT)
    cases["noisy-l3"] = _noisy_case(S.INDEX_CONTEXT2, S.LABEL_CONTEXT2)
    cases["noisy-l6"] = _noisy_case(S.INDEX_CONTEXT2, S.LABEL_CONTEXT3)
    # label method 9 (§6.8) on every literal path, after index method 7
    cases["clustered-l9-c10"] = _clustered_case(10, 7, S.LABEL_CONTEXT4, S.INDEX_CONTEXT3)
    cases["clustered-l9-c100"] = _clustered_case(100, 9, S.LABEL_CONTEXT4, S.INDEX_CONTEXT3)
    cases["clustered-l9-c300"] = _clustered_case(300, 8, S.LABEL_CONTEXT4, S.INDEX_CONTEXT3)
    # label method 8 (§6.7): one table (C <= 256) and high / low parts (C > 256)
    cases["clustered-l8-c10"] = _clustered_case(10, 7, S.LABEL_FORGET)
    cases["clustered-l8-c300"] = _clustered_case(300, 8, S.LABEL_FORGET)
    # index methods 7 / 8 (§5.10): long runs, drift restarts, jump and folder boundaries
    cases["clustered-i7-c10"] = _clustered_case(10, 7, S.LABEL_CONTEXT3, S.INDEX_CONTEXT3)
    cases["clustered-i7-c300"] = _clustered_case(300, 8, S.LABEL_CONTEXT3, S.INDEX_CONTEXT3)
    cases["clustered-folders-i8-c10"] = _clustered_folders_case(10, 7, S.LABEL_CONTEXT3_FOLDERS, S.INDEX_CONTEXT3_FOLDERS)
    cases["clustered-folders-i8-c300"] = _clustered_folders_case(300, 8, S.LABEL_CONTEXT3_FOLDERS, S.INDEX_CONTEXT3_FOLDERS)
    cases["extras"] = _extras_case
    cases["empty"] = _empty_case
    cases["wide"] = _wide_case
    cases["wide-rans"] = _wide_rans_case
    cases["many-labels-rans"] = _many_labels_rans_case
    return cases


_GOLDEN_PREFIX_METHODS = (
    ("clustered-folders-i8-", (S.INDEX_CONTEXT3_FOLDERS, S.LABEL_CONTEXT3_FOLDERS)),
    ("clustered-folders-l7-", (S.INDEX_CONTEXT2_FOLDERS, S.LABEL_CONTEXT3_FOLDERS)),
    ("clustered-folders-", (S.INDEX_CONTEXT2_FOLDERS, S.LABEL_CONTEXT2_FOLDERS)),
    ("clustered-i7-", (S.INDEX_CONTEXT3, S.LABEL_CONTEXT3)),
    ("clustered-l6-", (S.INDEX_CONTEXT2, S.LABEL_CONTEXT3)),
    ("clustered-l8-", (S.INDEX_CONTEXT2, S.LABEL_FORGET)),
    ("clustered-l9-", (S.INDEX_CONTEXT3, S.LABEL_CONTEXT4)),
    ("clustered-", (S.INDEX_CONTEXT2, S.LABEL_CONTEXT2)),
    ("noisy-l2", (S.INDEX_CONTEXT, S.LABEL_CONTEXT)),
    ("noisy-l3", (S.INDEX_CONTEXT2, S.LABEL_CONTEXT2)),
    ("noisy-l6", (S.INDEX_CONTEXT2, S.LABEL_CONTEXT3)),
)


def golden_methods(name: str) -> tuple[int, int] | None:
    """(index method, label method) that a golden case forces, or None for the special cases."""
    for prefix, methods in _GOLDEN_PREFIX_METHODS:  # the most specific prefix first
        if name.startswith(prefix):
            return methods
    for i in S.INDEX_METHODS:
        for c in S.LABEL_METHODS:
            if name == golden_method_name(i, c):
                return i, c
    return None


def golden_paths(name: str) -> tuple[Path, Path]:
    return GOLDEN_DIR / f"{name}.plada", GOLDEN_DIR / f"{name}.json"


def _jsonable_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    if out.get("reference_fingerprint") is not None:
        out["reference_fingerprint"] = bytes(out["reference_fingerprint"]).hex()
    if out.get("folders") is not None:
        out["folders"] = {"n_reference": out["folders"].n_reference, "starts": out["folders"].starts.tolist()}
    return out


def sidecar_folders(sidecar: dict[str, Any]) -> pladacodec.FolderLayout | None:
    """The folder layout a golden file was coded with (and decodes with), or None."""
    spec = sidecar["encode"].get("folders")
    return None if spec is None else pladacodec.FolderLayout(spec["starts"], spec["n_reference"])


def golden_sidecar(indices, labels, n_reference: int, kwargs: dict[str, Any], payload: pladacodec.Payload) -> dict:
    """The JSON written next to a golden file: how it was encoded and what it decodes to."""
    return {
        "encode": {"n_reference": n_reference, **_jsonable_kwargs(kwargs)},
        "decoded": payload_to_json(payload),
    }


def payload_to_json(payload: pladacodec.Payload) -> dict[str, Any]:
    return {
        "version": list(payload.version),
        "n_reference": payload.n_reference,
        "n_classes": payload.n_classes,
        "indices": payload.indices.tolist(),
        "labels": payload.labels.tolist(),
        "class_names": list(payload.class_names) if payload.class_names is not None else None,
        "reference_fingerprint": payload.reference_fingerprint.hex() if payload.reference_fingerprint else None,
        "metadata": payload.metadata,
    }


def load_sidecar(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def encode_from_sidecar(sidecar: dict[str, Any]) -> bytes:
    """Re-encode a golden file's content with the arguments recorded in its sidecar."""
    kwargs = dict(sidecar["encode"])
    n_reference = kwargs.pop("n_reference")
    if kwargs.get("folders") is not None:
        kwargs["folders"] = sidecar_folders(sidecar)
    decoded = sidecar["decoded"]
    return pladacodec.encode(decoded["indices"], decoded["labels"], n_reference, **kwargs)


# --- command line ------------------------------------------------------------------------

CLI_GOLDEN_DIR = GOLDEN_DIR / "cli"
# expected output file -> pladacodec arguments, run from inside GOLDEN_DIR
CLI_GOLDEN_CASES = {
    "inspect-extras.txt": ["inspect", "extras.plada"],
    "inspect-extras.json": ["inspect", "extras.plada", "--json"],
    "inspect-index-1-label-1.txt": ["inspect", "index-1-label-1.plada", "--top", "3"],
    "inspect-empty.txt": ["inspect", "empty.plada"],
    "verify-wide.txt": ["verify", "wide.plada"],
}


def run_cli(args: list[str], cwd: Path | None = None):
    """Run ``pladacodec ARGS`` in-process with click's CliRunner (stderr kept apart)."""
    from click.testing import CliRunner

    from pladacodec_cli.app import main

    previous = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    finally:
        os.chdir(previous)
