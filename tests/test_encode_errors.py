"""Invalid selections raise PladaEncodeError (also a ValueError) naming the first offending position."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pladacodec
from pladacodec import _spec as S

from strategies import tasks

# Core bug: under numpy 2 the float messages show "np.float64(2.5)" instead of "2.5".

CASES = [
    # (indices, labels, n_reference, keyword arguments, message pattern)
    ([1, 10, 3], [0, 0, 0], 10, {}, r"indices\[1\] = 10 is not below n_reference = 10"),
    ([1, 2, 2**40], [0, 0, 0], 2**40, {}, r"indices\[2\] = 1,099,511,627,776 is not below n_reference"),
    ([1, -1, 3, -5], [0, 0, 0, 0], 10, {}, r"indices\[1\] = -1 is negative"),
    ([4, 2, 7, 2, 4], [0] * 5, 10, {}, r"duplicate index 2 at positions 1 and 3"),
    ([4, 2, 7, 9, 4], [0] * 5, 10, {}, r"duplicate index 4 at positions 0 and 4"),
    ([1, 2, 3], [0, -2, 0], 10, {}, r"labels\[1\] = -2 is negative"),
    ([1, 2, 3], [0, 1, 3], 10, {"n_classes": 3}, r"labels\[2\] = 3 is not below n_classes = 3"),
    ([1, 2], [0, 5], 10, {"class_names": ["a", "b"]}, r"labels\[1\] = 5 is not below n_classes = 2"),
    ([1, 2, 3], [0, 0], 10, {}, r"3 indices but 2 labels"),
    pytest.param(*([1.0, 2.5], [0, 0], 10, {}, r"indices\[1\] = 2\.5 has a fractional part")),
    pytest.param(*([1, 2], [0.0, 0.25], 10, {}, r"labels\[1\] = 0\.25 has a fractional part")),
    pytest.param(*([1.0, float("nan")], [0, 0], 10, {}, r"indices\[1\] is nan, not an integer")),
    pytest.param(*([1.0, float("inf")], [0, 0], 10, {}, r"indices\[1\] is inf, not an integer")),
    (np.array([True, False]), [0, 0], 10, {}, r"booleans"),
    ([1, 2], np.array([True, False]), 10, {}, r"booleans"),
    (["1", "2"], [0, 0], 10, {}, r"indices: dtype .* is not an integer type"),
    ([1, None], [0, 0], 10, {}, r"indices\[1\] = None is not an integer"),
    ([[1, 2]], [0], 10, {}, r"expected a 1-D sequence"),
    (5, [0], 10, {}, r"expected a 1-D sequence, got a scalar"),
    ([1], [0], 10, {"n_classes": 2, "class_names": ["a"]}, r"1 class names for n_classes = 2"),
    ([1], [0], 10, {"class_names": "ab"}, r"not one string"),
    ([1], [0], 10, {"class_names": ["a", 3]}, r"class_names\[1\] = 3 is not a string"),
    ([1], [0], 10, {"class_names": ["a", "\ud800"]}, r"class_names\[1\] cannot be encoded as UTF-8"),
    ([1], [0], 10, {"class_names": ["a", "x" * 4097]}, r"class_names\[1\] is longer than 4096"),
    ([1], [0], 10, {"reference_fingerprint": b"\x00" * 31}, r"31 bytes; expected 32"),
    ([1], [0], 10, {"reference_fingerprint": "ab" * 33}, r"33 bytes; expected 32"),
    ([1], [0], 10, {"reference_fingerprint": "not hex"}, r"not a hex string"),
    ([1], [0], 10, {"metadata": {"a": object()}}, r"metadata is not JSON-serialisable"),
    ([1], [0], 10, {"metadata": {"a": float("nan")}}, r"metadata is not JSON-serialisable"),
    ([1], [0], 10, {"metadata": {"a": {1, 2}}}, r"metadata is not JSON-serialisable"),
    ([1], [0], 10, {"metadata": [1, 2]}, r"metadata must be a mapping"),
    ([1], [0], 10, {"metadata": {"a": "x" * S.MAX_METADATA_BYTES}}, r"the limit is"),
    ([1], [0], 0, {}, r"n_reference = 0 is outside \[1, 1,099,511,627,776\]"),
    ([1], [0], 2**40 + 1, {}, r"n_reference = 1,099,511,627,777 is outside"),
    ([1], [0], "10", {}, r"n_reference must be an integer"),
    ([1], [0], True, {}, r"n_reference must be an integer"),
    ([1], [0], 10, {"n_classes": 0}, r"n_classes = 0 is outside"),
    ([1], [0], 10, {"n_classes": 65_536}, r"n_classes = 65,536 is outside \[1, 65,535\]"),
    ([1], [0], 10, {"block_entries": 0}, r"block_entries = 0 is outside"),
    ([1], [0], 10, {"index_methods": []}, r"index_methods must name at least one method"),
    ([1], [0], 10, {"index_methods": [99]}, r"index_methods: unknown method id 99"),
    ([1], [0], 10, {"label_methods": [0]}, r"label_methods: unknown method id 0"),
]


@pytest.mark.parametrize("indices, labels, n_reference, kwargs, pattern", CASES)
def test_invalid_selection(indices, labels, n_reference, kwargs, pattern):
    with pytest.raises(pladacodec.PladaEncodeError, match=pattern) as info:
        pladacodec.encode(indices, labels, n_reference, **kwargs)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("indices, labels, n_reference, kwargs, pattern", CASES[:9])
def test_write_refuses_before_touching_the_file(tmp_path, indices, labels, n_reference, kwargs, pattern):
    path = tmp_path / "task.plada"
    path.write_bytes(b"previous")
    with pytest.raises(pladacodec.PladaEncodeError, match=pattern):
        pladacodec.write(path, indices, labels, n_reference, **kwargs)
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["task.plada"]


# --- the position named is the first offending one, in the caller's order ---------------------


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_first_out_of_range_index_is_named(data):
    task = data.draw(tasks(max_n=1 << 20, max_k=60, min_k=1))
    order = data.draw(st.permutations(range(task.k)))
    indices = task.indices[list(order)].astype(np.int64)
    bad = sorted(data.draw(st.sets(st.integers(0, task.k - 1), min_size=1, max_size=3)))
    for position in bad:
        indices[position] = data.draw(st.sampled_from([-1, task.n_reference, task.n_reference + 5]))
    first = bad[0]
    with pytest.raises(pladacodec.PladaEncodeError) as info:
        pladacodec.encode(indices, task.labels, task.n_reference, n_classes=task.n_classes)
    message = str(info.value)
    first_negative = next((p for p in bad if indices[p] < 0), None)
    expected = first_negative if first_negative is not None else first  # negatives are checked first
    assert message.startswith(f"indices[{expected}] = "), message


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_duplicates_are_named_by_position(data):
    task = data.draw(tasks(max_n=1 << 20, max_k=60, min_k=2))
    order = list(data.draw(st.permutations(range(task.k))))
    indices = task.indices[order].copy()
    source, target = data.draw(st.lists(st.integers(0, task.k - 1), min_size=2, max_size=2, unique=True))
    indices[target] = indices[source]
    with pytest.raises(pladacodec.PladaEncodeError) as info:
        pladacodec.encode(indices, task.labels, task.n_reference, n_classes=task.n_classes)
    lo, hi = sorted((source, target))
    assert re.fullmatch(rf"duplicate index [0-9,]+ at positions {lo:,} and {hi:,}", str(info.value)), str(info.value)


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_first_bad_label_is_named(data):
    task = data.draw(tasks(max_n=1 << 20, max_k=60, min_k=1, max_classes=1000))
    labels = task.labels.copy()
    position = data.draw(st.integers(0, task.k - 1))
    labels[position] = data.draw(st.sampled_from([task.n_classes, task.n_classes + 3]))
    with pytest.raises(pladacodec.PladaEncodeError, match=rf"^labels\[{position}\] = "):
        pladacodec.encode(task.indices, labels, task.n_reference, n_classes=task.n_classes)


@pytest.mark.parametrize(
    "indices, labels, pattern",
    [
        ([1.0, 2.5], [0, 0], r"^indices\[1\] = .*2\.5.* has a fractional part"),
        ([1, 2], [0.0, 0.25], r"^labels\[1\] = .*0\.25.* has a fractional part"),
        ([1.0, float("nan")], [0, 0], r"^indices\[1\] is .*nan"),
        ([1.0, 2.0, float("-inf")], [0, 0, 0], r"^indices\[2\] is .*inf"),
    ],
)
def test_float_errors_name_the_position(indices, labels, pattern):
    with pytest.raises(pladacodec.PladaEncodeError, match=pattern):
        pladacodec.encode(indices, labels, 10)
