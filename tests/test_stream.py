"""Streaming writer and reader (pladacodec._stream): same bytes as encode(), atomic, checked."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

import pladacodec
from pladacodec._stream import StreamReader, StreamWriter, iter_read, write_stream
from pladacodec import _spec as S


def _selection(n=20_000, pool=2_000_000, classes=50, seed=0):
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(pool, n, replace=False)).astype(np.uint64)
    return idx, rng.integers(0, classes, n).astype(np.int64)


def _chunks(idx, lab, seed):
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, len(idx)), 25, replace=False))
    return list(zip(np.split(idx, cuts), np.split(lab, cuts)))


@pytest.mark.parametrize("block_entries", [1, 777, 4096, 1 << 20])
def test_stream_bytes_equal_encode_whatever_the_chunking(tmp_path, block_entries):
    idx, lab = _selection(400 if block_entries == 1 else 20_000)
    expected = pladacodec.encode(idx, lab, 2_000_000, n_classes=50, block_entries=block_entries,
                                 metadata={"k": 1}, class_names=[str(c) for c in range(50)])
    for seed in (1, 2):
        path = tmp_path / f"s{seed}.plada"
        size = write_stream(path, _chunks(idx, lab, seed), n_reference=2_000_000, n_selected=len(idx),
                            n_classes=50, block_entries=block_entries, metadata={"k": 1},
                            class_names=[str(c) for c in range(50)])
        assert path.read_bytes() == expected and size == len(expected)
    blocks = list(iter_read(path))
    assert np.array_equal(np.concatenate([b[0] for b in blocks]), idx)
    assert np.array_equal(np.concatenate([b[1] for b in blocks]), lab)
    assert all(len(b[0]) <= block_entries for b in blocks)
    with StreamReader(io.BytesIO(expected), verify_first=False) as reader:
        assert reader.header.n_selected == len(idx) and reader.header.metadata == {"k": 1}
        assert sum(len(b[0]) for b in reader) == len(idx)


def test_empty_selection_and_file_object_target():
    out = io.BytesIO()
    with StreamWriter(out, n_reference=10, n_selected=0, n_classes=2) as writer:
        writer.write([], [])
    assert out.getvalue() == pladacodec.encode([], [], 10, n_classes=2)
    assert list(iter_read(io.BytesIO(out.getvalue()))) == []


@pytest.mark.parametrize(
    "chunks, match",
    [
        ([([5, 3], [0, 0])], "strictly increasing"),
        ([([1, 5], [0, 0]), ([5], [0])], "strictly increasing"),
        ([([1, 2], [0, 0]), ([3, 4], [0, 0])], "more than n_selected"),
        ([([1], [0, 1])], "labels"),
        ([([1, 200], [0, 1])], "n_reference"),
        ([([1, 2], [0, 9])], "n_classes"),
        ([([1], [0])], "promises 3 entries but 1"),
    ],
)
def test_bad_chunks_are_refused_and_leave_no_file(tmp_path, chunks, match):
    path = tmp_path / "task.plada"
    path.write_bytes(b"previous content")
    with pytest.raises(pladacodec.PladaEncodeError, match=match):
        write_stream(path, chunks, n_reference=100, n_selected=3, n_classes=2)
    assert path.read_bytes() == b"previous content"
    assert os.listdir(tmp_path) == ["task.plada"]  # the temporary file is gone


def test_header_parameters_are_validated_like_encode(tmp_path):
    with pytest.raises(pladacodec.PladaEncodeError, match="n_classes"):
        StreamWriter(tmp_path / "a.plada", n_reference=10, n_selected=0)
    with pytest.raises(pladacodec.PladaEncodeError):
        StreamWriter(tmp_path / "a.plada", n_reference=2**41, n_selected=0, n_classes=2)
    with pytest.raises(pladacodec.PladaEncodeError):
        StreamWriter(tmp_path / "a.plada", n_reference=10, n_selected=11, n_classes=2)
    with pytest.raises(pladacodec.PladaEncodeError):
        StreamWriter(tmp_path / "a.plada", n_reference=10, n_selected=1, n_classes=2, index_methods=[99])
    assert os.listdir(tmp_path) == []


def test_indices_beyond_2_32(tmp_path):
    n = 2**40
    idx = np.array([0, 2**32 - 1, 2**32, 2**33 + 7, n - 1], dtype=np.uint64)
    lab = np.array([0, 1, 2, 1, 0])
    path = tmp_path / "big.plada"
    write_stream(path, [(idx[:2], lab[:2]), (idx[2:], lab[2:])], n_reference=n, n_selected=5, n_classes=3,
                 block_entries=2)
    got = np.concatenate([b[0] for b in iter_read(path)])
    assert got.tolist() == idx.tolist()
    assert pladacodec.read(path).indices.tolist() == idx.tolist()


def test_reader_refuses_truncated_and_damaged_files(tmp_path):
    idx, lab = _selection(5000)
    data = pladacodec.encode(idx, lab, 2_000_000, block_entries=1000)
    for cut in (0, 5, 16, 40, len(data) // 2, len(data) - 9, len(data) - 1):
        for verify_first in (True, False):
            with pytest.raises(pladacodec.PladaError):
                list(iter_read(io.BytesIO(data[:cut]), verify_first=verify_first))
    with pytest.raises(pladacodec.PladaError):
        list(iter_read(io.BytesIO(data + b"\0")))
    with pytest.raises(pladacodec.PladaError, match="cannot read"):
        list(iter_read(tmp_path / "missing.plada"))


@pytest.mark.parametrize(
    "methods",
    [{}, {"index_methods": [1], "label_methods": [1]}, {"index_methods": [2], "label_methods": [2]},
     {"index_methods": [1, 2], "label_methods": [3]}],
)
def test_stream_writer_writes_the_bytes_encode_writes(tmp_path, methods):
    """Every file is stamped 2.0 (FORMAT.md §2), and streaming changes nothing in the bytes."""
    rng = np.random.default_rng(len(methods))
    indices = np.sort(rng.choice(10_000, 300, replace=False)).astype(np.uint64)
    labels = rng.integers(0, 5, 300)
    blob = pladacodec.encode(indices, labels, 10_000, n_classes=5, **methods)
    assert blob[4:6] == bytes([S.VERSION_MAJOR, S.VERSION_MINOR])
    assert pladacodec.decode(blob).version == (S.VERSION_MAJOR, S.VERSION_MINOR)
    path = tmp_path / "streamed.plada"
    write_stream(path, [(indices[:100], labels[:100]), (indices[100:], labels[100:])], n_reference=10_000,
                 n_selected=300, n_classes=5, **methods)
    assert path.read_bytes() == blob


def test_default_blocks_are_balanced_and_streaming_agrees(tmp_path):
    """More than 2^20 entries: the fewest blocks of equal size (they decode in parallel)."""
    k = S.MAX_BLOCK_ENTRIES + 5
    rng = np.random.default_rng(3)
    indices = np.sort(rng.choice(3 * k, k, replace=False)).astype(np.uint64)
    labels = rng.integers(0, 3, k)
    fast = dict(index_methods=[S.INDEX_GOLOMB], label_methods=[S.LABEL_IID])
    blob = pladacodec.encode(indices, labels, 3 * k, n_classes=3, **fast)
    assert [b.entries for b in pladacodec.inspect(blob).layout.blocks] == [k // 2 + 1, k // 2]
    path = tmp_path / "balanced.plada"
    half = k // 2
    chunks = [(indices[:half], labels[:half]), (indices[half:], labels[half:])]
    write_stream(path, chunks, n_reference=3 * k, n_selected=k, n_classes=3, **fast)
    assert path.read_bytes() == blob
    # a selection that fits one block says so with B = 0 (FORMAT.md §3)
    small = pladacodec.encode(indices[:10], labels[:10], 3 * k, n_classes=3, **fast)
    assert pladacodec.read_header(small).block_entries == 10


def test_methods_for_version_names_every_method_of_2_0():
    assert pladacodec.methods_for_version("2.0") == {"index_methods": [1, 2], "label_methods": [1, 2, 3, 5]}
    assert pladacodec.methods_for_version("2.0", folders=True) == {"index_methods": [1, 2, 3], "label_methods": [1, 2, 3, 4, 5]}
    with pytest.raises(pladacodec.PladaEncodeError, match="2.0"):
        pladacodec.methods_for_version("1.5")


def test_one_block_file_has_one_crc_and_streams_from_a_pipe():
    """A one-block file has no header CRC (FORMAT.md §1): its block is read with the header, so
    even a pipe can be verified first; damage anywhere, header included, is refused."""
    import threading

    rng = np.random.default_rng(7)
    idx = np.sort(rng.choice(10**5, 400, replace=False))
    lab = rng.integers(0, 6, 400)
    blob = pladacodec.encode(idx, lab, 10**5, metadata={"m": 1})
    header_length = blob[S.PREAMBLE_SIZE]  # a one-byte varint here
    assert pladacodec.inspect(blob).layout.preamble_and_header == S.PREAMBLE_SIZE + 1 + header_length  # no CRC
    read_end, write_end = os.pipe()
    threading.Thread(target=lambda: (os.write(write_end, blob), os.close(write_end)), daemon=True).start()
    with os.fdopen(read_end, "rb") as pipe:
        (got,) = list(iter_read(pipe))  # verify_first (the default) works on a pipe here
    assert (got[0] == idx).all() and (got[1] == lab).all()
    for at in (0, 6, 9, len(blob) // 2, len(blob) - 1):
        damaged = bytearray(blob)
        damaged[at] ^= 0x10
        with pytest.raises(pladacodec.PladaError):
            pladacodec.decode(bytes(damaged))
        with pytest.raises(pladacodec.PladaError):
            list(iter_read(io.BytesIO(bytes(damaged))))
