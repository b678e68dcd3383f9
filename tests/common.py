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
from pladacodec import _container, _methods
from pladacodec import _spec as S
from pladacodec._bytes import Reader, crc32c, encode_varint

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
    folder method without ``folders`` uses the tests' synthetic layout.
    """
    if kwargs.get("folders") is None and (
        any(is_folder_method("index", m) for m in kwargs.get("index_methods") or ())
        or any(is_folder_method("label", m) for m in kwargs.get("label_methods") or ())
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


# --- small shared fixtures ------------------------------------------------------------------

# The six-entry selection the command-line tests pack, unpack and damage.
SMALL_INDICES = [40, 3, 17, 99, 0, 58]
SMALL_LABELS = [2, 0, 1, 2, 2, 0]
SMALL_N = 100


def write_small_npz(path: Path) -> Path:
    """The small selection as an ``.npz`` of ``indices`` and ``labels``."""
    np.savez(path, indices=np.array(SMALL_INDICES), labels=np.array(SMALL_LABELS))
    return path


def write_reference_images(root: Path, side: int) -> Path:
    """12 grayscale side x side PNGs in folders part0-part2, pixel value = canonical index * 10."""
    from PIL import Image

    for i in range(12):
        folder = root / f"part{i // 5}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((side, side), 10 * i, dtype=np.uint8)).save(folder / f"img{i:02d}.png")
    return root


# --- coding methods ----------------------------------------------------------------------


def index_method_ids() -> list[int]:
    """Every index coding method of the format (new methods are picked up automatically)."""
    return sorted(_methods.BY_KIND["index"])


def label_method_ids() -> list[int]:
    return sorted(_methods.BY_KIND["label"])


def method_name(kind: str, method: int) -> str:
    return _methods.method_name(kind, method)


def is_folder_method(kind: str, method: int) -> bool:
    m = _methods.method(kind, method)
    return m is not None and m.folders


def methods_used(blob: bytes, folders=None) -> tuple[set[int], set[int]]:
    """The (index, label) method ids found in a file's blocks (``folders``: the layout a file of
    the folder methods needs; default: the tests' synthetic one)."""
    blocks = pladacodec.inspect(blob, folders=folders or folders_for(blob)).layout.blocks
    return {b.index.method for b in blocks}, {b.label.method for b in blocks}


# --- file surgery ------------------------------------------------------------------------


def split_file(blob: bytes) -> tuple[bytes, bytes]:
    """(header bytes, block bytes) of a valid file: what lies between the preamble's header
    length and the header CRC, and everything after the header CRC (FORMAT.md §2-§4); the
    block of a one-block file comes with the CRC of the block alone, as :func:`frame_block`
    makes it (:func:`assemble` extends it over the header again)."""
    header, blocks_start = _container.decode_header(blob)
    reader = Reader(blob, S.PREAMBLE_SIZE)
    length = reader.varint("header length")
    blocks = blob[blocks_start:]
    if header.one_block:  # its CRC covers the header too: give it the CRC of the block alone
        blocks = blocks[: -S.BLOCK_CRC_SIZE] + struct.pack(S.BLOCK_CRC_FORMAT, crc32c(blocks[: -S.BLOCK_CRC_SIZE]))
    return blob[reader.pos : reader.pos + length], blocks


def header_field(tag: int, value: bytes) -> bytes:
    """One header field (tag, length, value) as FORMAT.md §3 lays it out."""
    return _container._field(tag, value)


def header_values(n_reference: int, k: int, n_classes: int, block_entries: int = 0) -> bytes:
    """The header's four positional values (FORMAT.md §3; B = 0: one block)."""
    return b"".join(encode_varint(v) for v in (n_reference, k, n_classes, block_entries))


def assemble(header: bytes, blocks: bytes, *, major=S.VERSION_MAJOR, minor=S.VERSION_MINOR) -> bytes:
    """A file from header bytes and blocks (as :func:`frame_block` makes them), with correct checksums:
    a header CRC, or, when the header's values say one block (k >= 1, B = 0), none, and the first
    block's CRC extended over the header (FORMAT.md §1).  A block CRC that was wrong stays wrong
    by the same bits."""
    head = struct.pack(S.PREAMBLE_FORMAT, S.MAGIC, major, minor) + encode_varint(len(header)) + header
    try:
        one_block = _container.counts_one_block(Reader(header))
    except pladacodec.PladaError:  # a forged count: the reader refuses it before any CRC
        one_block = False
    if not one_block:
        return head + struct.pack(S.HEADER_CRC_FORMAT, crc32c(head)) + blocks
    try:  # the first block's extent, from its framing (FORMAT.md §4)
        reader = Reader(blocks)
        reader.unpack("<B", "methods")
        end = reader.varint("index length") + reader.varint("label length")
        end += reader.pos
    except pladacodec.PladaError:  # not a block: leave the bytes as they are
        return head + blocks
    if end + S.BLOCK_CRC_SIZE > len(blocks):
        return head + blocks
    (stored,) = struct.unpack_from(S.BLOCK_CRC_FORMAT, blocks, end)
    error = stored ^ crc32c(blocks[:end])
    sealed = crc32c(blocks[:end], crc32c(head)) ^ error
    return head + blocks[:end] + struct.pack(S.BLOCK_CRC_FORMAT, sealed) + blocks[end + S.BLOCK_CRC_SIZE :]


def frame_block(index_method: int, index: bytes, label_method: int, label: bytes, base: int = 0, first: bool = True) -> bytes:
    """One block with a correct CRC (FORMAT.md §4)."""
    return _container.frame_block(index_method, index, label_method, label, base, first)


def repair_checksums(damaged: bytes, layout: _container.Layout) -> bytes:
    """Recompute the header and block CRCs at the places ``layout`` (of the undamaged file) says.

    Damage that the checksums would catch then reaches the parsers and coders.
    """
    out = bytearray(damaged)
    one_block = len(layout.blocks) == 1  # no header CRC: the block's covers the whole file
    if not one_block:
        header_end = layout.preamble_and_header - S.HEADER_CRC_SIZE
        struct.pack_into(S.HEADER_CRC_FORMAT, out, header_end, crc32c(bytes(out[:header_end])))
    for block in layout.blocks:
        end = block.label.offset + block.label.size
        struct.pack_into(S.BLOCK_CRC_FORMAT, out, end, crc32c(bytes(out[0 if one_block else block.offset : end])))
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
# One binary file per coding method (FORMAT.md §5, §6), a few per method where a model has
# several paths, and special cases.  Each case is built by a deterministic function returning
# (indices, labels, n_reference, encode keyword arguments); tests/golden/MANIFEST.json records
# what each file must decode to (digests of the arrays) and the methods its blocks use.


def _method_selection() -> tuple[np.ndarray, np.ndarray, int]:
    """200 entries in 5,000: clustered runs plus scattered singles; skewed labels over 7 classes."""
    rng = np.random.default_rng(20260101)
    runs = [np.arange(start, start + length) for start, length in ((100, 40), (1500, 25), (3200, 60))]
    scattered = rng.choice(np.setdiff1d(np.arange(5000), np.concatenate(runs)), 75, replace=False)
    indices = np.sort(np.concatenate(runs + [scattered])).astype(np.uint64)
    labels = rng.choice(7, size=len(indices), p=[0.4, 0.2, 0.15, 0.1, 0.08, 0.05, 0.02]).astype(np.int64)
    return indices, labels, 5000


def clustered_selection(n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
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


def clustered_folders(n_reference: int) -> pladacodec.FolderLayout:
    """Folders of 400-599 images (a fixed pattern) for the clustered selections."""
    sizes = 400 + (np.arange(n_reference // 400) * 37) % 200
    starts = np.concatenate(([0], np.cumsum(sizes)))
    return pladacodec.FolderLayout(starts[starts < n_reference], n_reference)


def _clustered_case(n_classes: int, seed: int, index_method: int, label_method: int) -> Callable[[], tuple]:
    def build():
        indices, labels, n = clustered_selection(n_classes, seed)
        kwargs = dict(n_classes=n_classes, index_methods=[index_method], label_methods=[label_method])
        if is_folder_method("index", index_method) or is_folder_method("label", label_method):
            kwargs["folders"] = clustered_folders(n)
        return indices, labels, n, kwargs

    return build


def _noisy_case():
    """Dense picks whose labels mix five classes (30/30/20/10/10 %) per run: the label window's
    mode is often tied, so its update rule (FORMAT.md §6.3) decides the candidates."""
    rng = np.random.default_rng(12)
    indices, labels, pos = [], [], 0
    for _ in range(12):
        pos += int(rng.integers(50, 500))
        run = pos + np.flatnonzero(rng.random(120) < 0.6)
        active = rng.choice(8, 5, replace=False)
        indices.append(run)
        labels.append(active[rng.choice(5, run.size, p=[0.3, 0.3, 0.2, 0.1, 0.1])])
        pos += 120
    kwargs = dict(n_classes=8, index_methods=[S.INDEX_CONTEXT], label_methods=[S.LABEL_CONTEXT])
    return np.concatenate(indices).astype(np.uint64), np.concatenate(labels).astype(np.int64), 10_000, kwargs


def _golomb_case():
    """Index method 1 over several blocks (bases after the first), label method 1."""
    indices, labels, n = _method_selection()
    kwargs = dict(n_classes=7, block_entries=64, index_methods=[S.INDEX_GOLOMB], label_methods=[S.LABEL_IID])
    return indices, labels, n, kwargs


def _extras_case():
    indices = np.array([3, 14, 15, 92, 653, 589, 793, 238, 462, 643, 383, 279], dtype=np.uint64)
    labels = np.array([0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0], dtype=np.int64)
    kwargs = dict(
        class_names=["cat", "dog", "éléphant"],
        reference_fingerprint=hashlib.sha256(b"pladacodec golden reference").digest(),
        metadata={"teacher": "golden", "budget": 12, "nested": {"list": [1, 2.5, None, True], "text": "ünïcode"}},
        index_methods=[S.INDEX_GOLOMB],
        label_methods=[S.LABEL_IID],
    )
    return indices, labels, 1000, kwargs


def _empty_case():
    return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64), 1, {}


def _wide_case():
    """N = 2^40 and C = 65,535: escaped Golomb quotients, labels at the top of the range."""
    n = S.MAX_N_REFERENCE
    indices = np.array([0, 1, (1 << 32) - 1, 1 << 32, (1 << 32) + 1, 3 << 36, n - 1], dtype=np.uint64)
    labels = np.array([0, S.MAX_CLASSES - 1, 7, 7, 0, 12_345, S.MAX_CLASSES - 1], dtype=np.int64)
    kwargs = dict(n_classes=S.MAX_CLASSES, index_methods=[S.INDEX_GOLOMB], label_methods=[S.LABEL_IID])
    return indices, labels, n, kwargs


def _many_labels_case():
    """5,001 entries with more than 4,097 labels in use: label method 1's 20-bit table (§7.1)."""
    rng = np.random.default_rng(11)
    indices = np.sort(rng.choice(1_000_000, 5_001, replace=False)).astype(np.uint64)
    labels = rng.integers(0, S.MAX_CLASSES, 5_001).astype(np.int64)
    kwargs = dict(n_classes=S.MAX_CLASSES, index_methods=[S.INDEX_GOLOMB], label_methods=[S.LABEL_IID])
    return indices, labels, 1_000_000, kwargs


def _automatic_case():
    """The encoder's own choice over several blocks of a clustered selection."""
    indices, labels, n = clustered_selection(10, 7)
    return indices, labels, n, dict(n_classes=10, block_entries=700)


def golden_cases() -> dict[str, Callable[[], tuple]]:
    """name -> builder: every coding method of FORMAT.md (every literal path of the label
    models: C <= 32 with exclusion, one table, high / low parts), plus special cases."""
    i, c = S, S
    return {
        "index-golomb": _golomb_case,
        "index-context": _clustered_case(10, 7, i.INDEX_CONTEXT, c.LABEL_IID),
        "index-context-folders": _clustered_case(10, 7, i.INDEX_CONTEXT_FOLDERS, c.LABEL_IID),
        "label-iid-wide": _wide_case,
        "label-iid-many": _many_labels_case,
        "label-drift-c10": _clustered_case(10, 7, i.INDEX_CONTEXT, c.LABEL_DRIFT),
        "label-drift-c300": _clustered_case(300, 8, i.INDEX_CONTEXT, c.LABEL_DRIFT),
        "label-mix-c10": _clustered_case(10, 7, i.INDEX_CONTEXT, c.LABEL_MIX),
        "label-mix-c64": _clustered_case(64, 12, i.INDEX_CONTEXT, c.LABEL_MIX),
        "label-context-c10": _clustered_case(10, 7, i.INDEX_CONTEXT, c.LABEL_CONTEXT),
        "label-context-c100": _clustered_case(100, 9, i.INDEX_CONTEXT, c.LABEL_CONTEXT),
        "label-context-c300": _clustered_case(300, 8, i.INDEX_CONTEXT, c.LABEL_CONTEXT),
        "label-context-noisy": _noisy_case,
        "label-context-folders-c10": _clustered_case(10, 7, i.INDEX_CONTEXT_FOLDERS, c.LABEL_CONTEXT_FOLDERS),
        "label-context-folders-c300": _clustered_case(300, 8, i.INDEX_CONTEXT_FOLDERS, c.LABEL_CONTEXT_FOLDERS),
        "extras": _extras_case,
        "empty": _empty_case,
        "automatic-blocks": _automatic_case,
    }


MANIFEST = GOLDEN_DIR / "MANIFEST.json"


def digest(array: np.ndarray, dtype: str) -> str:
    """SHA-256 of an array as little-endian ``dtype`` bytes (how the manifest pins decoded arrays)."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).hexdigest()


def manifest_entry(blob: bytes, payload: pladacodec.Payload, folders) -> dict[str, Any]:
    """What a golden file must decode to, and the methods its blocks use."""
    blocks = pladacodec.inspect(blob, folders=folders).layout.blocks
    return {
        "file_sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
        "version": list(payload.version),
        "n_reference": payload.n_reference,
        "n_classes": payload.n_classes,
        "k": payload.k,
        "indices_sha256": digest(payload.indices, "u8"),
        "labels_sha256": digest(payload.labels, "i8"),
        "class_names": list(payload.class_names) if payload.class_names is not None else None,
        "reference_fingerprint": payload.reference_fingerprint.hex() if payload.reference_fingerprint else None,
        "metadata": payload.metadata,
        "folders": "clustered" if folders is not None else None,
        "index_methods": sorted({b.index.method for b in blocks}),
        "label_methods": sorted({b.label.method for b in blocks}),
    }


def load_manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text(encoding="utf-8")) if MANIFEST.exists() else {}


def manifest_folders(entry: dict[str, Any]) -> pladacodec.FolderLayout | None:
    """The folder layout a golden file decodes with, or None."""
    return clustered_folders(entry["n_reference"]) if entry.get("folders") == "clustered" else None


# --- command line ------------------------------------------------------------------------

CLI_GOLDEN_DIR = GOLDEN_DIR / "cli"
# expected output file -> pladacodec arguments, run from inside GOLDEN_DIR
CLI_GOLDEN_CASES = {
    "inspect-extras.txt": ["inspect", "extras.plada"],
    "inspect-extras.json": ["inspect", "extras.plada", "--json"],
    "inspect-index-golomb.txt": ["inspect", "index-golomb.plada", "--top", "3"],
    "inspect-empty.txt": ["inspect", "empty.plada"],
    "verify-wide.txt": ["verify", "label-iid-wide.plada"],
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
