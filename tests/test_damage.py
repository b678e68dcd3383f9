"""Damaged, truncated, forged and future files: every failure is a PladaError, never a wrong decode."""

from __future__ import annotations

import functools
import struct
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pladacodec
from pladacodec import _spec as S
from pladacodec._bytes import encode_varint

from common import (
    assemble,
    assert_valid_payload,
    header_field,
    index_method_ids,
    label_method_ids,
    folders_for,
    repair_checksums,
    synthetic_folders,
    split_file,
)


# Files of the folder methods (index 6, label 5) decode with the tests' synthetic layout for
# the N their header claims; a header damaged past its CRC can then also name a layout that
# does not match (PladaReferenceError), the one error besides PladaDecodeError allowed here.
DECODE_ERRORS = (pladacodec.PladaDecodeError, pladacodec.PladaReferenceError)


def _decode(data, **kwargs):
    return pladacodec.decode(data, folders=folders_for(data), **kwargs)


def _inspect(data, **kwargs):
    return pladacodec.inspect(data, folders=folders_for(data), **kwargs)


@functools.lru_cache(maxsize=None)
def sample_files() -> dict[str, bytes]:
    """Small files covering every coding method, several blocks, and every optional header field."""
    rng = np.random.default_rng(11)
    indices = np.sort(rng.choice(3000, 40, replace=False))
    labels = rng.integers(0, 5, 40)
    files = {"small": pladacodec.encode([2, 7, 8], [1, 0, 1], 10)}
    for i in index_method_ids():
        for c in label_method_ids():
            files[f"index-{i}-label-{c}"] = pladacodec.encode(
                indices, labels, 3000, block_entries=16, index_methods=[i], label_methods=[c],
                folders=synthetic_folders(3000),
            )
    files["extras"] = pladacodec.encode(
        indices[:6], labels[:6], 3000, class_names=["a", "b", "c", "d", "e"],
        reference_fingerprint=bytes(range(32)), metadata={"k": [1, "x"]},
    )
    files["empty"] = pladacodec.encode([], [], 5)
    return files


SAMPLES = list(sample_files())


def _flip(blob: bytes, bit: int) -> bytes:
    damaged = bytearray(blob)
    damaged[bit // 8] ^= 1 << (bit % 8)
    return bytes(damaged)


# --- truncation and bit flips ----------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_every_truncation_is_a_truncated_error(name):
    blob = sample_files()[name]
    with pytest.raises(pladacodec.PladaDecodeError):
        _decode(b"")
    for end in range(1, len(blob)):
        with pytest.raises(pladacodec.PladaTruncatedError):
            _decode(blob[:end])


@pytest.mark.parametrize("name", SAMPLES)
def test_every_bit_flip_is_detected(name):
    blob = sample_files()[name]
    for bit in range(8 * len(blob)):
        with pytest.raises(pladacodec.PladaDecodeError):
            _decode(_flip(blob, bit))


@pytest.mark.parametrize("name", SAMPLES)
def test_bit_flips_past_repaired_checksums(name):
    """With every CRC recomputed, damage reaches the parsers: an error or a valid payload, nothing else.

    One bit per byte (a different one in consecutive bytes) keeps this fast; the
    test above flips every bit, and the random patches below cover the rest.
    """
    blob = sample_files()[name]
    layout = _inspect(blob).layout
    for byte in range(len(blob)):
        damaged = repair_checksums(_flip(blob, 8 * byte + byte % 8), layout)
        try:
            payload = _decode(damaged)
        except DECODE_ERRORS:
            continue
        assert_valid_payload(payload)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(SAMPLES), data=st.data())
def test_random_patches_past_repaired_checksums(name, data):
    blob = sample_files()[name]
    layout = _inspect(blob).layout
    damaged = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(S.PREAMBLE_SIZE, len(blob) - 1))
        damaged[at] = data.draw(st.integers(0, 255))
    try:
        payload = _decode(repair_checksums(bytes(damaged), layout))
    except DECODE_ERRORS:
        return
    assert_valid_payload(payload)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_bytes(data):
    with pytest.raises(pladacodec.PladaDecodeError):
        _decode(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_after_a_valid_preamble(data):
    with pytest.raises(pladacodec.PladaDecodeError):
        _decode(S.MAGIC + bytes([S.VERSION_MAJOR, S.VERSION_MINOR]) + data)


def test_wrong_magic():
    blob = sample_files()["small"]
    for magic in (b"PK\x03\x04" + blob[4:8], b"\x89PNG\r\n\x1a\n", b"\x00" * 8):
        with pytest.raises(pladacodec.PladaFormatError, match="not a .plada file"):
            _decode(magic + blob[8:])


def test_bytes_after_the_trailer_and_before_the_magic():
    blob = sample_files()["small"]
    with pytest.raises(pladacodec.PladaDecodeError):
        _decode(blob + b"\x00")
    with pytest.raises(pladacodec.PladaDecodeError):
        _decode(blob + blob)
    with pytest.raises(pladacodec.PladaDecodeError):
        _decode(b"\x00" + blob)


# --- versions, header fields and flags ---------------------------------------------------------


@pytest.mark.parametrize("major", [0, 2, 255])
def test_unknown_major_version(major):
    fields, blocks = split_file(sample_files()["small"])
    with pytest.raises(pladacodec.PladaVersionError) as info:
        _decode(assemble(fields, blocks, major=major, minor=3))
    message = str(info.value)
    assert f"{major}.3" in message and f"{S.VERSION_MAJOR}.{S.VERSION_MINOR}" in message, message
    assert isinstance(info.value, pladacodec.PladaFormatError)


@pytest.mark.parametrize("name", ["small", "extras", "empty", "index-1-label-1"])
def test_newer_minor_version_with_unknown_optional_field_decodes(name):
    blob = sample_files()[name]
    fields, blocks = split_file(blob)
    extra = header_field(7, b"a field from the future") + header_field(S.TAG_METADATA + 1000 * 2, b"")
    future = assemble(fields + extra, blocks, minor=S.VERSION_MINOR + 1)
    assert _decode(future) == _decode(blob)
    header = pladacodec.read_header(future)
    assert header.version == (S.VERSION_MAJOR, S.VERSION_MINOR + 1)
    assert header.unknown_optional_tags == (7, S.TAG_METADATA + 2000)


@pytest.mark.parametrize("tag", [12, 14, 2**20])
def test_unknown_critical_field_is_refused(tag):
    fields, blocks = split_file(sample_files()["small"])
    future = assemble(header_field(tag, b"\x01") + fields, blocks, minor=S.VERSION_MINOR + 1)
    with pytest.raises(pladacodec.PladaFormatError, match=f"critical field {tag}"):
        _decode(future)


def test_unknown_flags():
    blob = sample_files()["small"]
    fields, blocks = split_file(blob)
    assert _decode(assemble(fields, blocks, flags=0x0100)) == _decode(blob)  # optional bit
    with pytest.raises(pladacodec.PladaFormatError, match="critical flags"):
        _decode(assemble(fields, blocks, flags=0x0001))


def _fields(**values) -> bytes:
    tags = {"n": S.TAG_N_REFERENCE, "k": S.TAG_N_SELECTED, "c": S.TAG_N_CLASSES, "block": S.TAG_BLOCK_ENTRIES}
    return b"".join(header_field(tags[key], encode_varint(value)) for key, value in values.items())


@pytest.mark.parametrize(
    "fields, pattern",
    [
        (_fields(n=10, k=0, c=1), "lacks required field"),
        (_fields(n=10, k=0, c=1, block=4) + _fields(c=2), "appears twice"),
        (_fields(n=0, k=0, c=1, block=4), "reference size N 0"),
        (_fields(n=10, k=11, c=1, block=4), "selected count k 11"),
        (_fields(n=10, k=0, c=0, block=4), "class count C 0"),
        (_fields(n=10, k=0, c=S.MAX_CLASSES + 1, block=4), "class count C"),
        (_fields(n=10, k=0, c=1, block=0), "block size 0"),
        (_fields(n=S.MAX_N_REFERENCE + 1, k=0, c=1, block=4), "reference size N"),
        (_fields(n=10, k=0, c=2, block=4) + header_field(S.TAG_CLASS_NAMES, b"\x01\x01a"), "1 class names for 2"),
        (_fields(n=10, k=0, c=1, block=4) + header_field(S.TAG_CLASS_NAMES, b"\x01\x02\xff\xfe"), "not valid UTF-8"),
        (_fields(n=10, k=0, c=1, block=4) + header_field(S.TAG_FINGERPRINT, b"\x00" * 31), "31 bytes"),
        (_fields(n=10, k=0, c=1, block=4) + header_field(S.TAG_METADATA, b"[1]"), "JSON object"),
        (_fields(n=10, k=0, c=1, block=4) + header_field(S.TAG_METADATA, b"{"), "not valid UTF-8 JSON"),
        (_fields(n=10, k=0, c=1, block=4) + header_field(S.TAG_METADATA, b"[" * 100_000), "not valid UTF-8 JSON"),
        (header_field(S.TAG_N_REFERENCE, b"\x80\x00") + _fields(k=0, c=1, block=4), "not minimally encoded"),
        (header_field(S.TAG_N_REFERENCE, b"\x05\x05") + _fields(k=0, c=1, block=4), "unused bytes"),
    ],
)
def test_forged_header_fields(fields, pattern):
    with pytest.raises(pladacodec.PladaDecodeError, match=pattern):
        _decode(assemble(fields, b""))


def test_empty_file_with_valid_header_decodes():
    payload = _decode(assemble(_fields(n=10, k=0, c=3, block=4), b""))
    assert (payload.k, payload.n_reference, payload.n_classes) == (0, 10, 3)


def test_declared_counts_are_not_trusted():
    """A 40-byte file claiming 2**28 entries fails at once, without allocating for them."""
    forged = assemble(_fields(n=S.MAX_N_REFERENCE, k=S.DEFAULT_MAX_ENTRIES, c=S.MAX_CLASSES, block=S.MAX_BLOCK_ENTRIES), b"")
    start = time.perf_counter()
    with pytest.raises(pladacodec.PladaTruncatedError):
        _decode(forged)
    blocks = encode_varint(S.MAX_BLOCK_ENTRIES) + encode_varint(0) + bytes([S.INDEX_GOLOMB_ANS]) + b"\x05" + b"\x00" * 5
    with pytest.raises(pladacodec.PladaDecodeError):
        _decode(assemble(_fields(n=S.MAX_N_REFERENCE, k=S.MAX_BLOCK_ENTRIES, c=2, block=S.MAX_BLOCK_ENTRIES), blocks))
    assert time.perf_counter() - start < 2.0


def test_max_entries_bounds_the_output():
    blob = sample_files()["index-1-label-1"]
    assert _decode(blob, max_entries=40).k == 40
    with pytest.raises(pladacodec.PladaFormatError, match="max_entries"):
        _decode(blob, max_entries=39)


def test_unknown_section_method_is_refused():
    blob = sample_files()["small"]
    layout = _inspect(blob).layout
    for offset, method in ((layout.blocks[0].index.offset, 200), (layout.blocks[0].label.offset, 201)):
        damaged = bytearray(blob)
        damaged[offset] = method
        with pytest.raises(pladacodec.PladaFormatError, match=f"unknown coding method {method}"):
            _decode(repair_checksums(bytes(damaged), layout))


def test_checksum_errors_say_stored_and_computed():
    blob = sample_files()["small"]
    layout = _inspect(blob).layout
    section = layout.blocks[0].label
    damaged = bytearray(blob)
    damaged[section.offset + section.size - 5] ^= 0x10  # last body byte of the label section
    end = len(damaged) - S.TRAILER_SIZE
    from pladacodec._bytes import crc32c

    struct.pack_into("<I", damaged, end, crc32c(bytes(damaged[:end])))  # repair only the file CRC
    with pytest.raises(pladacodec.PladaChecksumError, match=r"label section at offset .* stored 0x[0-9a-f]{8}, computed"):
        _decode(bytes(damaged))
