"""Folder layouts as optional context (FORMAT.md §3 tag 10, §5.9, §6.5)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pladacodec
from pladacodec import FolderLayout, _container
from pladacodec import _spec as S
from pladacodec._bytes import encode_varint

from common import assemble, check_roundtrip, header_field, methods_used, split_file, synthetic_folders
from strategies import tasks

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _clustered(seed: int = 0, n_folders: int = 300, n_classes: int = 10):
    """A PLADA-like selection over folders of 200-800 images: dense runs with a dominant label
    in 40 neighbouring folders (where only the layout tells where one folder ends)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(200, 800, n_folders)
    layout = FolderLayout.from_sizes(sizes)
    starts = layout.starts
    picks, labels = [], []
    first = int(rng.integers(0, n_folders - 40))
    for f in range(first, first + 40):
        inside = np.flatnonzero(rng.random(sizes[f]) < rng.uniform(0.1, 0.6)) + starts[f]
        mode = rng.integers(n_classes)
        picks.append(inside)
        labels.append(np.where(rng.random(inside.size) < 0.9, mode, rng.integers(0, n_classes, inside.size)))
    order = np.argsort(np.concatenate(picks))
    return np.concatenate(picks)[order], np.concatenate(labels)[order], layout


# --- the layout object ------------------------------------------------------------------------


def test_layout_constructors_agree():
    a = FolderLayout.from_paths(["a/1.png", "a/2.png", "b/c/1.png", "b/c/2.png", "b/c/3.png", "d.png"])
    assert a.starts.tolist() == [0, 2, 5] and a.n_reference == 6 and a.n_folders == 3
    assert a == FolderLayout.from_sizes([2, 3, 1]) == FolderLayout([0, 2, 5], 6)
    assert a != FolderLayout([0, 2], 6) and hash(a) == hash(FolderLayout([0, 2, 5], 6))
    assert len(a.digest) == S.FOLDERS_DIGEST_SIZE and a.digest != FolderLayout([0, 3, 5], 6).digest
    assert a.folder_of([0, 1, 2, 4, 5]).tolist() == [0, 0, 1, 1, 2]
    assert not a.starts.flags.writeable
    ref = pladacodec.Reference.from_paths(["a/1.png", "a/2.png", "b/c/1.png", "b/c/2.png", "b/c/3.png", "d.png"])
    assert ref.folder_layout() == a


def test_layout_digest_is_pinned():
    """FORMAT.md §3: the digest's definition is part of the format."""
    import hashlib
    import struct

    layout = FolderLayout([0, 2, 5], 6)
    expected = hashlib.sha256(
        b"pladacodec-folders-v1\0" + struct.pack("<QQ", 6, 3) + struct.pack("<3Q", 0, 2, 5)
    ).digest()[:8]
    assert layout.digest == expected
    assert layout.digest.hex() == "{}".format(expected.hex())


@pytest.mark.parametrize(
    "starts, n, match",
    [
        ([], 5, "non-empty"),
        ([1, 3], 5, "start at index 0"),
        ([0, 3, 3], 5, "increase strictly"),
        ([0, 5], 5, "not below n_reference"),
        ([0.0, 1.5], 5, "integers"),
        ([0], 0, "outside"),
    ],
)
def test_bad_layouts_are_refused(starts, n, match):
    with pytest.raises(pladacodec.PladaEncodeError, match=match):
        FolderLayout(starts, n)


def test_bad_sizes_and_paths_are_refused():
    with pytest.raises(pladacodec.PladaEncodeError, match="at least one"):
        FolderLayout.from_sizes([3, 0, 2])
    with pytest.raises(pladacodec.PladaEncodeError):
        FolderLayout.from_paths([])


# --- coding with a layout ---------------------------------------------------------------------


def test_folders_make_clustered_selections_smaller_and_name_the_layout():
    indices, labels, layout = _clustered()
    plain = pladacodec.encode(indices, labels, layout.n_reference, n_classes=10)
    coded = pladacodec.encode(indices, labels, layout.n_reference, n_classes=10, folders=layout)
    assert len(coded) < len(plain)
    header = pladacodec.read_header(coded)
    assert header.folders == (layout.n_folders, layout.digest) and header.version == (S.VERSION_MAJOR, S.VERSION_MINOR)
    index_used, label_used = methods_used(coded, layout)
    assert index_used and index_used <= {S.INDEX_CONTEXT_FOLDERS}
    assert label_used and label_used <= {S.LABEL_CONTEXT_FOLDERS}
    payload = pladacodec.decode(coded, folders=layout)
    np.testing.assert_array_equal(payload.indices, indices)
    np.testing.assert_array_equal(payload.labels, labels)
    # a Reference stands for its layout
    paths = [f"f{f:04d}/{i}.png" for f, size in enumerate(np.diff(np.r_[layout.starts, layout.n_reference])) for i in range(size)]
    ref = pladacodec.Reference.from_paths(paths)
    assert pladacodec.encode(indices, labels, layout.n_reference, n_classes=10, folders=ref) == coded
    assert pladacodec.decode(coded, folders=ref) == payload


def test_a_file_that_needs_the_layout_says_so():
    indices, labels, layout = _clustered(1)
    coded = pladacodec.encode(indices, labels, layout.n_reference, n_classes=10, folders=layout)
    with pytest.raises(pladacodec.PladaReferenceError, match=f"{layout.n_folders:,} folders .*pass the reference's layout"):
        pladacodec.decode(coded)
    other = FolderLayout(np.r_[layout.starts[:-1], layout.starts[-1] + 1], layout.n_reference)
    with pytest.raises(pladacodec.PladaReferenceError, match="folder layout mismatch"):
        pladacodec.decode(coded, folders=other)
    with pytest.raises(pladacodec.PladaReferenceError, match="mismatch"):
        pladacodec.decode(coded, folders=FolderLayout(layout.starts, layout.n_reference + 1))
    with pytest.raises(pladacodec.PladaDecodeError, match="FolderLayout or a Reference"):
        pladacodec.decode(coded, folders=[0, 5])


def test_uniform_selections_do_not_name_the_layout():
    """When the folder methods do not pay for the header field, the file is the plain one."""
    rng = np.random.default_rng(3)
    indices = np.sort(rng.choice(200_000, 2_000, replace=False))
    labels = rng.integers(0, 50, 2_000)
    layout = synthetic_folders(200_000)
    plain = pladacodec.encode(indices, labels, 200_000, n_classes=50)
    assert pladacodec.encode(indices, labels, 200_000, n_classes=50, folders=layout) == plain
    assert pladacodec.read_header(plain).folders is None
    assert pladacodec.decode(plain, folders=layout) == pladacodec.decode(plain)  # a layout not needed is ignored


def test_encode_argument_errors():
    layout = FolderLayout([0, 10], 20)
    with pytest.raises(pladacodec.PladaEncodeError, match="folders="):
        pladacodec.encode([1, 2], [0, 1], 20, index_methods=[S.INDEX_CONTEXT_FOLDERS])
    with pytest.raises(pladacodec.PladaEncodeError, match="folders="):
        pladacodec.encode([1, 2], [0, 1], 20, label_methods=[S.LABEL_CONTEXT_FOLDERS])
    with pytest.raises(pladacodec.PladaEncodeError, match="covers 20 images"):
        pladacodec.encode([1, 2], [0, 1], 30, folders=layout)
    with pytest.raises(pladacodec.PladaEncodeError, match="FolderLayout or a Reference"):
        pladacodec.encode([1, 2], [0, 1], 20, folders=np.array([0, 10]))


@FAST
@given(task=tasks(max_n=1 << 16, max_k=300), data=st.data())
def test_roundtrip_with_any_layout(task, data):
    n = task.n_reference
    cuts = data.draw(st.lists(st.integers(1, max(1, n - 1)), max_size=40, unique=True)) if n > 1 else []
    layout = FolderLayout(sorted({0, *cuts}), n)
    block_entries = data.draw(st.sampled_from([5, 64, S.DEFAULT_BLOCK_ENTRIES]))
    for methods in ({}, dict(index_methods=[S.INDEX_CONTEXT_FOLDERS], label_methods=[S.LABEL_CONTEXT_FOLDERS])):
        check_roundtrip(task.indices, task.labels, n, task.n_classes, folders=layout, block_entries=block_entries, **methods)


# --- header field 10 ------------------------------------------------------------------------


def _folder_file():
    indices, labels, layout = _clustered(2)
    return pladacodec.encode(indices, labels, layout.n_reference, n_classes=10, folders=layout), layout


@pytest.mark.parametrize(
    "value, match",
    [
        (encode_varint(0) + b"\0" * 8, "folder count 0"),
        (encode_varint(10**9) + b"\0" * 8, "folder count"),
        (encode_varint(3) + b"\0" * 7, "digest has 7 bytes"),
        (encode_varint(3) + b"\0" * 9, "digest has 9 bytes"),
    ],
)
def test_bad_folder_fields_are_refused(value, match):
    blob, _ = _folder_file()
    fields, blocks = split_file(blob)
    header, _ = _container.decode_header(blob)
    start = fields.index(header_field(S.TAG_FOLDERS, encode_varint(header.folders[0]) + header.folders[1]))
    end = start + len(header_field(S.TAG_FOLDERS, encode_varint(header.folders[0]) + header.folders[1]))
    forged = assemble(fields[:start] + header_field(S.TAG_FOLDERS, value) + fields[end:], blocks)
    with pytest.raises(pladacodec.PladaFormatError, match=match):
        pladacodec.decode(forged)


def test_folder_method_without_the_field_is_refused():
    blob, layout = _folder_file()
    fields, blocks = split_file(blob)
    header, _ = _container.decode_header(blob)
    field = header_field(S.TAG_FOLDERS, encode_varint(header.folders[0]) + header.folders[1])
    forged = assemble(fields.replace(field, b""), blocks)
    with pytest.raises(pladacodec.PladaFormatError, match="codes against a folder layout, but the header names none"):
        pladacodec.decode(forged, folders=layout)


def test_streaming_reader_takes_the_layout():
    blob, layout = _folder_file()
    expected = pladacodec.decode(blob, folders=layout)
    got = list(pladacodec.iter_read(io.BytesIO(blob), folders=layout))
    np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), expected.indices)
    with pytest.raises(pladacodec.PladaReferenceError):
        list(pladacodec.iter_read(io.BytesIO(blob)))


def test_stream_writer_with_folders_matches_encode_when_it_uses_them(tmp_path):
    indices, labels, layout = _clustered(4)
    path = tmp_path / "task.plada"
    with pladacodec.StreamWriter(path, n_reference=layout.n_reference, n_selected=len(indices), n_classes=10, folders=layout) as w:
        for start in range(0, len(indices), 333):
            w.write(indices[start : start + 333], labels[start : start + 333])
    assert path.read_bytes() == pladacodec.encode(indices, labels, layout.n_reference, n_classes=10, folders=layout)


def test_a_reference_layout_is_computed_only_for_files_that_need_it():
    """decode(folders=reference) resolves the reference's layout (seconds for millions of paths)
    only when the file names one."""
    indices, labels, layout = _clustered(5)
    calls = []

    class CountingReference:
        def folder_layout(self):
            calls.append(1)
            return layout

    plain = pladacodec.encode(indices, labels, layout.n_reference, n_classes=10)
    coded = pladacodec.encode(indices, labels, layout.n_reference, n_classes=10, folders=layout)
    assert pladacodec.decode(plain, folders=CountingReference()) == pladacodec.decode(plain)
    assert calls == []
    assert pladacodec.decode(coded, folders=CountingReference()) == pladacodec.decode(coded, folders=layout)
    assert calls == [1]
