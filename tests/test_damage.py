"""Damaged, truncated, forged and future files (format 2.0): every failure is a PladaError, never a wrong decode."""

from __future__ import annotations

import functools
import struct
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pladacodec
from pladacodec import _spec as S
from pladacodec._bytes import crc32c, encode_varint

from common import (
    assemble,
    assert_valid_payload,
    folders_for,
    frame_block,
    header_field,
    header_values,
    index_method_ids,
    is_folder_method,
    label_method_ids,
    repair_checksums,
    split_file,
    synthetic_folders,
)
from fuzz_decode import Structure, mutate_bytes  # common puts tests/fuzzers on the path

# Files of the folder methods (index 3, label 4) decode with the tests' synthetic layout for
# the N their header claims; a header damaged past its CRC can then also name a layout that
# does not match (PladaReferenceError), the one error besides PladaDecodeError allowed here.
DECODE_ERRORS = (pladacodec.PladaDecodeError, pladacodec.PladaReferenceError)


def _decode(data, **kwargs):
    return pladacodec.decode(data, folders=folders_for(data), **kwargs)


def _inspect(data, **kwargs):
    return pladacodec.inspect(data, folders=folders_for(data), **kwargs)


def _pair_name(index_method: int, label_method: int) -> str:
    return f"index-{index_method}-label-{label_method}"


@functools.lru_cache(maxsize=None)
def sample_files() -> dict[str, bytes]:
    """Small files covering every pair of coding methods in three blocks (bases after the
    first), and every optional header field."""
    rng = np.random.default_rng(11)
    indices = np.sort(rng.choice(3000, 40, replace=False))
    labels = rng.integers(0, 5, 40)
    files = {"small": pladacodec.encode([2, 7, 8], [1, 0, 1], 10)}
    for i in index_method_ids():
        for c in label_method_ids():
            files[_pair_name(i, c)] = pladacodec.encode(
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
GOLOMB_IID = _pair_name(S.INDEX_GOLOMB, S.LABEL_IID)
FOLDER_PAIR = _pair_name(S.INDEX_CONTEXT_FOLDERS, S.LABEL_CONTEXT_FOLDERS)


def test_samples_cover_every_method_pair_and_several_blocks():
    for i in index_method_ids():
        for c in label_method_ids():
            blob = sample_files()[_pair_name(i, c)]
            info = _inspect(blob)
            assert len(info.layout.blocks) == 3
            assert {(b.index.method, b.label.method) for b in info.layout.blocks} == {(i, c)}
            assert (info.header.folders is not None) == (is_folder_method("index", i) or is_folder_method("label", c))


def _flip(blob: bytes, bit: int) -> bytes:
    damaged = bytearray(blob)
    damaged[bit // 8] ^= 1 << (bit % 8)
    return bytes(damaged)


# --- truncation and bit flips ----------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLES)
def test_every_truncation_is_detected(name):
    """No trailer in 2.0: the header's k and B say how many blocks follow, so a file cut at a
    block boundary is as detectably short as one cut inside a block."""
    blob = sample_files()[name]
    with pytest.raises(pladacodec.PladaDecodeError):
        _decode(b"")
    for end in range(1, len(blob)):
        with pytest.raises(pladacodec.PladaDecodeError):
            _decode(blob[:end])


def test_every_truncation_is_a_truncated_error():
    """Every prefix of a valid file is a PladaTruncatedError (an EOFError too), as in 1.x."""
    wrong = []
    for name, blob in sample_files().items():
        for end in range(1, len(blob)):
            try:
                _decode(blob[:end])
            except pladacodec.PladaTruncatedError:
                continue
            except pladacodec.PladaError as exc:
                wrong.append(f"{name}[:{end}]: {type(exc).__name__}: {exc}")
    assert wrong == [], f"{len(wrong)} truncations not reported as truncated, e.g. {wrong[:3]}"


@pytest.mark.parametrize("name", SAMPLES)
def test_every_bit_flip_is_detected(name):
    blob = sample_files()[name]
    folders = folders_for(blob)
    for bit in range(8 * len(blob)):
        with pytest.raises(pladacodec.PladaDecodeError):  # the CRCs fail before any layout is compared
            pladacodec.decode(_flip(blob, bit), folders=folders)


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


PAIR_SAMPLES = [_pair_name(i, c) for i in index_method_ids() for c in label_method_ids()]


@pytest.mark.parametrize("name", PAIR_SAMPLES)
def test_section_mutations_with_fixed_checksums_are_bounded(name):
    """Sections edited (bit flips, bytes inserted, deleted, spliced, cut) inside a file whose
    lengths and CRCs are then made right: only a PladaError or a valid payload, each decode in
    bounded CPU time and memory (a block holds 16 entries: nothing may grow with the damage)."""
    blob = sample_files()[name]
    folders = folders_for(blob)
    rng = np.random.default_rng(crc32c(name.encode()))
    others = [sample_files()[n] for n in PAIR_SAMPLES]
    worst_time = worst_peak = 0
    outcomes = {"error": 0, "decoded": 0}
    for _ in range(150):
        st = Structure.parse(blob)
        block = st.blocks[int(rng.integers(len(st.blocks)))]
        which = "index" if rng.random() < 0.5 else "label"
        setattr(block, which, mutate_bytes(rng, getattr(block, which), others, max_ops=3))
        data = st.serialize()
        tracemalloc.start()
        started = time.process_time()
        try:
            payload = pladacodec.decode(data, folders=folders)
        except pladacodec.PladaChecksumError as exc:
            raise AssertionError(f"lengths and CRCs were made right: {exc}") from None
        except DECODE_ERRORS:
            outcomes["error"] += 1
        else:
            outcomes["decoded"] += 1
            assert_valid_payload(payload)
        finally:
            worst_time = max(worst_time, time.process_time() - started)
            worst_peak = max(worst_peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    assert outcomes["error"] >= 75, outcomes
    assert worst_time < 0.5, f"{worst_time:.2f} s CPU for one decode"
    assert worst_peak < 8 << 20, f"{worst_peak:,} bytes for one decode"


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
    for magic in (b"PK\x03\x04", b"\x89PNG", b"\x00" * 4, b"\x89PLE"):
        with pytest.raises(pladacodec.PladaFormatError, match="not a .plada file"):
            _decode(magic + blob[len(S.MAGIC) :])
    for end in range(1, len(S.MAGIC)):  # a prefix of the magic is a truncated file
        with pytest.raises(pladacodec.PladaTruncatedError, match="magic"):
            _decode(S.MAGIC[:end])


def test_bytes_after_the_last_block_and_before_the_magic():
    """2.0 has no trailer: the last block ends the file, and anything after it is refused."""
    for name in ("small", GOLOMB_IID, "empty"):
        blob = sample_files()[name]
        for extra in (b"\x00", b"\x01\x02\x03\x04", blob):
            with pytest.raises(pladacodec.PladaFormatError, match="unused bytes"):
                _decode(blob + extra)
        with pytest.raises(pladacodec.PladaFormatError, match="not a .plada file"):
            _decode(b"\x00" + blob)


# --- versions and header fields ---------------------------------------------------------------


@pytest.mark.parametrize("major", [0, 1, S.VERSION_MAJOR + 1, 255])
def test_unknown_major_version(major):
    fields, blocks = split_file(sample_files()["small"])
    with pytest.raises(pladacodec.PladaVersionError) as info:
        _decode(assemble(fields, blocks, major=major, minor=3))
    message = str(info.value)
    assert f"{major}.3" in message and f"{S.VERSION_MAJOR}.{S.VERSION_MINOR}" in message, message
    assert isinstance(info.value, pladacodec.PladaFormatError)


@pytest.mark.parametrize("minor", [0, 5, 255])
def test_format_1x_files_are_refused_naming_their_version(minor):
    """A 1.x file (magic b"\\x89PLADA\\r\\n", u8 major, u8 minor, ...) is a PladaVersionError that
    names its version and says to encode again, whatever follows."""
    for rest in (b"", b"\x00" * 40, sample_files()["small"]):
        with pytest.raises(pladacodec.PladaVersionError, match=rf"format version 1\.{minor}\b.*encode") as info:
            _decode(S.LEGACY_MAGIC + bytes([1, minor]) + rest)
        assert f"{S.VERSION_MAJOR}." in str(info.value)


@pytest.mark.parametrize("name", ["small", "extras", "empty", GOLOMB_IID, FOLDER_PAIR])
def test_newer_minor_version_with_unknown_optional_field_decodes(name):
    blob = sample_files()[name]
    fields, blocks = split_file(blob)
    extra = header_field(7, b"a field from the future") + header_field(S.TAG_METADATA + 1000 * 2, b"")
    future = assemble(fields + extra, blocks, minor=S.VERSION_MINOR + 1)
    assert _decode(future) == _decode(blob)
    header = pladacodec.read_header(future)
    assert header.version == (S.VERSION_MAJOR, S.VERSION_MINOR + 1)
    assert header.unknown_optional_tags == (7, S.TAG_METADATA + 2000)


@pytest.mark.parametrize("tag", [0, 4, 6, 12, 2**20])
def test_unknown_critical_field_is_refused(tag):
    fields, blocks = split_file(sample_files()["small"])
    future = assemble(fields + header_field(tag, b"\x01"), blocks, minor=S.VERSION_MINOR + 1)
    with pytest.raises(pladacodec.PladaFormatError, match=f"critical field {tag} "):
        _decode(future)


_K0 = header_values(10, 0, 1)  # N = 10, no entries, one class, B = 0


@pytest.mark.parametrize(
    "fields, error, pattern",
    [
        (b"", pladacodec.PladaTruncatedError, "reference size N"),
        (encode_varint(10) + encode_varint(0), pladacodec.PladaTruncatedError, "class count C"),
        (encode_varint(10) + encode_varint(0) + encode_varint(1), pladacodec.PladaTruncatedError, "block size B"),
        (header_values(0, 0, 1), pladacodec.PladaFormatError, "reference size N 0"),
        (header_values(S.MAX_N_REFERENCE + 1, 0, 1), pladacodec.PladaFormatError, "reference size N"),
        (header_values(10, 11, 1), pladacodec.PladaFormatError, "selected count k 11"),
        (header_values(10, 0, 0), pladacodec.PladaFormatError, "class count C 0"),
        (header_values(10, 0, S.MAX_CLASSES + 1), pladacodec.PladaFormatError, "class count C"),
        # B: 0 is one block of all k (at most 2^20 entries); else 1 <= B < k and B <= 2^20
        (header_values(10, 4, 1, 4), pladacodec.PladaFormatError, "block size B 4 must be below k = 4"),
        (header_values(10, 4, 1, 9), pladacodec.PladaFormatError, "block size B 9 must be below k = 4"),
        (header_values(10, 0, 1, 1), pladacodec.PladaFormatError, "block size B 1 must be below k = 0"),
        (header_values(S.MAX_N_REFERENCE, 1 << 22, 1, S.MAX_BLOCK_ENTRIES + 1), pladacodec.PladaFormatError,
         "at most 1,048,576"),
        (header_values(S.MAX_N_REFERENCE, S.MAX_BLOCK_ENTRIES + 1, 1, 0), pladacodec.PladaFormatError,
         "one block of 1,048,577 entries exceeds"),
        (_K0 + header_field(S.TAG_METADATA, b"{}") * 2, pladacodec.PladaFormatError, "appears twice"),
        (header_values(10, 0, 2) + header_field(S.TAG_CLASS_NAMES, b"\x01\x01a"), pladacodec.PladaFormatError,
         "1 class names for 2"),
        (_K0 + header_field(S.TAG_CLASS_NAMES, b"\x01\x02\xff\xfe"), pladacodec.PladaFormatError, "not valid UTF-8"),
        (_K0 + header_field(S.TAG_CLASS_NAMES, b"\x01\x01ab"), pladacodec.PladaFormatError, "class names: 1 unused"),
        (_K0 + header_field(S.TAG_FINGERPRINT, b"\x00" * 31), pladacodec.PladaFormatError, "31 bytes"),
        (_K0 + header_field(S.TAG_METADATA, b"[1]"), pladacodec.PladaFormatError, "JSON object"),
        (_K0 + header_field(S.TAG_METADATA, b"{"), pladacodec.PladaFormatError, "not valid UTF-8 JSON"),
        (_K0 + header_field(S.TAG_METADATA, b"[" * 100_000), pladacodec.PladaFormatError, "not valid UTF-8 JSON"),
        (_K0 + header_field(S.TAG_FOLDERS, encode_varint(0) + bytes(8)), pladacodec.PladaFormatError,
         "folder count 0"),
        (_K0 + header_field(S.TAG_FOLDERS, encode_varint(11) + bytes(8)), pladacodec.PladaFormatError,
         "folder count 11"),
        (_K0 + header_field(S.TAG_FOLDERS, encode_varint(2) + bytes(7)), pladacodec.PladaFormatError,
         "digest has 7 bytes"),
        (_K0 + encode_varint(S.TAG_METADATA) + encode_varint(50) + b"{}", pladacodec.PladaFormatError,
         "header field 5 length: 50 exceeds the limit"),
        (_K0 + encode_varint(S.TAG_METADATA), pladacodec.PladaTruncatedError, "header field 5 length"),
        (b"\x80\x00" + header_values(10, 0, 1)[1:], pladacodec.PladaFormatError, "not minimally encoded"),
        (b"\xff" * 10 + b"\x01" + header_values(10, 0, 1)[1:], pladacodec.PladaFormatError, "longer than 10 bytes"),
    ],
)
def test_forged_header_fields(fields, error, pattern):
    """Forged headers with valid CRCs: the header's own checks refuse them."""
    with pytest.raises(error, match=pattern):
        _decode(assemble(fields, b""))


def test_empty_file_with_valid_header_decodes():
    payload = _decode(assemble(header_values(10, 0, 3), b""))
    assert (payload.k, payload.n_reference, payload.n_classes) == (0, 10, 3)


def test_declared_counts_are_not_trusted():
    """A small file claiming 2**28 entries fails at once, without allocating for them."""
    forged = assemble(header_values(S.MAX_N_REFERENCE, S.DEFAULT_MAX_ENTRIES, S.MAX_CLASSES, S.MAX_BLOCK_ENTRIES), b"")
    start = time.perf_counter()
    with pytest.raises(pladacodec.PladaTruncatedError, match="block method byte"):
        _decode(forged)
    golomb = struct.pack(S.GOLOMB_PARAMS_FORMAT, 0, 0) + b"\x05" + b"\x00" * 5
    block = frame_block(S.INDEX_GOLOMB, golomb, S.LABEL_IID, b"")
    with pytest.raises(pladacodec.PladaDecodeError):
        _decode(assemble(header_values(S.MAX_N_REFERENCE, S.MAX_BLOCK_ENTRIES, 2), block))
    assert time.perf_counter() - start < 2.0


def test_max_entries_bounds_the_output():
    blob = sample_files()[GOLOMB_IID]
    assert _decode(blob, max_entries=40).k == 40
    with pytest.raises(pladacodec.PladaFormatError, match="max_entries"):
        _decode(blob, max_entries=39)


# --- blocks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["index", "label"])
def test_unknown_method_nibble_is_refused(kind):
    """Each nibble of a block's method byte must name a method of its kind (0 never does)."""
    blob = sample_files()[GOLOMB_IID]
    layout = _inspect(blob).layout
    known = set(index_method_ids() if kind == "index" else label_method_ids())
    for number, block in enumerate(layout.blocks):
        at = block.offset + (0 if number == 0 else len(encode_varint(block.base)))
        for nibble in sorted(set(range(16)) - known):
            damaged = bytearray(blob)
            if kind == "index":
                damaged[at] = (damaged[at] & 0xF0) | nibble
            else:
                damaged[at] = (damaged[at] & 0x0F) | nibble << S.METHOD_BITS
            with pytest.raises(pladacodec.PladaFormatError, match=f"unknown {kind} coding method {nibble}$"):
                _decode(repair_checksums(bytes(damaged), layout))


def test_folder_method_without_the_layout_in_the_header_is_refused():
    """A block of a folder method needs the header's folder layout field (tag 2, critical)."""
    blob = sample_files()[FOLDER_PAIR]
    st = Structure.parse(blob)
    assert [t for t, _ in st.fields] == [S.TAG_FOLDERS]
    st.fields = []
    with pytest.raises(pladacodec.PladaFormatError, match="codes against a folder layout, but the header names none"):
        pladacodec.decode(st.serialize(), folders=synthetic_folders(3000))
    for index_method, label_method in ((S.INDEX_CONTEXT_FOLDERS, S.LABEL_IID), (S.INDEX_GOLOMB, S.LABEL_CONTEXT_FOLDERS)):
        st = Structure.parse(sample_files()[GOLOMB_IID])
        st.blocks[1].set_methods(index_method, label_method)
        with pytest.raises(pladacodec.PladaFormatError, match="folder layout"):
            _decode(st.serialize())


def test_folder_file_needs_the_same_layout():
    blob = sample_files()[FOLDER_PAIR]
    with pytest.raises(pladacodec.PladaReferenceError, match="pass the reference's layout"):
        pladacodec.decode(blob)
    other = pladacodec.FolderLayout([0, 1000, 2000], 3000)
    with pytest.raises(pladacodec.PladaReferenceError, match="folder layout mismatch"):
        pladacodec.decode(blob, folders=other)
    st = Structure.parse(blob)  # the header names another layout (its CRC valid)
    st.fields = [(S.TAG_FOLDERS, encode_varint(3) + bytes(S.FOLDERS_DIGEST_SIZE))]
    with pytest.raises(pladacodec.PladaReferenceError, match="folder layout mismatch"):
        pladacodec.decode(st.serialize(), folders=synthetic_folders(3000))


def test_block_base_mismatch_is_refused():
    """Each block after the first stores its base, which must be one past the previous block's
    last index (CRCs valid)."""
    blob = sample_files()[GOLOMB_IID]
    expected = _decode(blob)
    for number in (1, 2):
        for delta in (-1, 1, -10):
            st = Structure.parse(blob)
            right = int(expected.indices[16 * number - 1]) + 1
            assert st.blocks[number].base == right
            st.blocks[number].base = right + delta
            with pytest.raises(pladacodec.PladaFormatError, match=rf"starts at index {right + delta:,}; expected {right:,}"):
                _decode(st.serialize())
        st = Structure.parse(blob)
        st.blocks[number].base += 2000  # its entries now point beyond N: refused either way
        with pytest.raises(pladacodec.PladaFormatError):
            _decode(st.serialize())
    st = Structure.parse(blob)
    st.blocks[1].base = S.MAX_N_REFERENCE + 1
    with pytest.raises(pladacodec.PladaFormatError, match="block base"):
        _decode(st.serialize())


def test_blocks_missing_reordered_or_extra_are_refused():
    blob = sample_files()[GOLOMB_IID]
    st = Structure.parse(blob)
    del st.blocks[2]
    with pytest.raises(pladacodec.PladaTruncatedError):
        _decode(st.serialize())
    st = Structure.parse(blob)
    st.blocks.append(st.blocks[-1])
    with pytest.raises(pladacodec.PladaFormatError, match="unused bytes"):
        _decode(st.serialize())
    st = Structure.parse(blob)
    st.blocks[1], st.blocks[2] = st.blocks[2], st.blocks[1]
    with pytest.raises(pladacodec.PladaFormatError):
        _decode(st.serialize())


def test_checksum_errors_say_stored_and_computed():
    blob = sample_files()[GOLOMB_IID]
    layout = _inspect(blob).layout
    block = layout.blocks[1]
    damaged = bytearray(blob)
    damaged[block.label.offset + block.label.size - 1] ^= 0x10  # last byte of the label section
    with pytest.raises(
        pladacodec.PladaChecksumError,
        match=rf"block at offset {block.offset:,}: checksum mismatch: stored 0x[0-9a-f]{{8}}, computed 0x[0-9a-f]{{8}}",
    ):
        _decode(bytes(damaged))
    damaged = bytearray(blob)
    damaged[S.PREAMBLE_SIZE + 2] ^= 0x01  # a header value
    with pytest.raises(pladacodec.PladaChecksumError, match=r"header checksum mismatch: stored 0x[0-9a-f]{8}, computed"):
        _decode(bytes(damaged))


def test_header_and_block_checksums_cover_what_they_should():
    """The header CRC covers preamble, header length and header; each block's CRC covers its
    base, method byte, lengths and sections; a one-block file has no header CRC, and its
    block's CRC covers the whole file before it (FORMAT.md §1, §3, §4)."""
    blob = sample_files()[GOLOMB_IID]
    layout = _inspect(blob).layout
    assert len(layout.blocks) > 1
    end = layout.preamble_and_header - S.HEADER_CRC_SIZE
    assert struct.unpack_from(S.HEADER_CRC_FORMAT, blob, end)[0] == crc32c(blob[:end])
    for block in layout.blocks:
        end = block.label.offset + block.label.size
        assert struct.unpack_from(S.BLOCK_CRC_FORMAT, blob, end)[0] == crc32c(blob[block.offset : end])
    assert layout.blocks[-1].label.offset + layout.blocks[-1].label.size + S.BLOCK_CRC_SIZE == len(blob)
    one = pladacodec.encode(np.arange(0, 300, 3), np.arange(100) % 4, 300)
    (block,) = _inspect(one).layout.blocks
    assert block.offset == _inspect(one).layout.preamble_and_header
    assert struct.unpack_from(S.BLOCK_CRC_FORMAT, one, len(one) - S.BLOCK_CRC_SIZE)[0] == crc32c(one[: -S.BLOCK_CRC_SIZE])
