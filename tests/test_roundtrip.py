"""decode(encode(x)) == x: properties over generated selections, edge cases, input types, determinism."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pladacodec
from pladacodec import _methods
from pladacodec import _spec as S

from common import (
    assert_payload,
    check_roundtrip,
    is_folder_method,
    index_method_ids,
    label_method_ids,
    methods_used,
    sorted_selection,
    synthetic_folders,
)
from strategies import header_extras, permutations_of, tasks

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- properties --------------------------------------------------------------------------


@FAST
@given(tasks())
def test_roundtrip_any_task(task):
    check_roundtrip(task.indices, task.labels, task.n_reference, task.n_classes)


@FAST
@given(st.data())
def test_roundtrip_unsorted_input(data):
    task = data.draw(tasks(max_k=100))
    order = data.draw(permutations_of(task.k))
    blob = check_roundtrip(task.indices[order], task.labels[order], task.n_reference, task.n_classes)
    assert blob == pladacodec.encode(task.indices, task.labels, task.n_reference, n_classes=task.n_classes)


@FAST
@given(st.data())
def test_roundtrip_with_header_extras(data):
    task = data.draw(tasks(max_n=1 << 20, max_k=50, max_classes=64))
    extras = data.draw(header_extras(task.n_classes))
    check_roundtrip(task.indices, task.labels, task.n_reference, task.n_classes, **extras)


@FAST
@given(tasks(max_n=1 << 16, max_k=150), st.integers(1, 40))
def test_roundtrip_multi_block(task, block_entries):
    blob = check_roundtrip(task.indices, task.labels, task.n_reference, task.n_classes, block_entries=block_entries)
    assert len(pladacodec.inspect(blob).layout.blocks) == -(-task.k // block_entries)


@pytest.mark.parametrize("label_method", label_method_ids())
@pytest.mark.parametrize("index_method", index_method_ids())
@settings(max_examples=25, deadline=None)
@given(task=tasks(max_n=1 << 16, max_k=150), block_entries=st.sampled_from([7, 64, S.DEFAULT_BLOCK_ENTRIES]))
def test_roundtrip_forced_method(index_method, label_method, task, block_entries):
    forced = dict(index_methods=[index_method], label_methods=[label_method], block_entries=block_entries)
    if is_folder_method("index", index_method) or is_folder_method("label", label_method):
        forced["folders"] = synthetic_folders(task.n_reference)
    if task.k and task.n_classes > _methods.method("label", label_method).max_classes:
        with pytest.raises(pladacodec.PladaEncodeError, match="classes"):
            pladacodec.encode(task.indices, task.labels, task.n_reference, n_classes=task.n_classes, **forced)
        return
    blob = check_roundtrip(task.indices, task.labels, task.n_reference, task.n_classes, **forced)
    if task.k:
        assert methods_used(blob, forced.get("folders")) == ({index_method}, {label_method})


# --- edge cases --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "indices, labels, n_reference, n_classes",
    [
        pytest.param([], [], 1, 1, id="k=0,N=1"),
        pytest.param([], [], S.MAX_N_REFERENCE, S.MAX_CLASSES, id="k=0,limits"),
        pytest.param([0], [0], 1, 1, id="k=N=1"),
        pytest.param([0], [S.MAX_CLASSES - 1], 1, S.MAX_CLASSES, id="N=1,C=max"),
        pytest.param(list(range(1000)), [0] * 1000, 1000, 1, id="k=N,C=1"),
        pytest.param(list(range(1000)), [i % 3 for i in range(1000)], 1000, 3, id="k=N"),
        pytest.param([S.MAX_N_REFERENCE - 1], [0], S.MAX_N_REFERENCE, 1, id="last-of-2**40"),
        pytest.param([0, (1 << 32) - 1, 1 << 32, (1 << 32) + 7], [1, 2, 3, 4], (1 << 32) + 8, 5, id="N>2**32"),
        pytest.param([5, 1, 9, 0], [2, 0, 2, 1], 10, 3, id="unsorted"),
        pytest.param(list(range(0, 60_000, 3)), [i % 251 for i in range(20_000)], 60_000, 251, id="k=20000"),
    ],
)
def test_roundtrip_edge_cases(indices, labels, n_reference, n_classes):
    check_roundtrip(indices, labels, n_reference, n_classes)


def test_roundtrip_every_method_at_k_equals_n():
    n = 300
    labels = np.arange(n) % 5
    for index_method in index_method_ids():
        for label_method in label_method_ids():
            check_roundtrip(np.arange(n), labels, n, 5, index_methods=[index_method], label_methods=[label_method])


def test_n_classes_inferred():
    assert pladacodec.decode(pladacodec.encode([4, 2], [0, 6], 10)).n_classes == 7
    assert pladacodec.decode(pladacodec.encode([], [], 10)).n_classes == 1
    assert pladacodec.decode(pladacodec.encode([1], [0], 10, class_names=["a", "b"])).n_classes == 2


# --- accepted input types ----------------------------------------------------------------

INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_integer_dtype(dtype):
    indices = np.array([90, 3, 17, 0, 126], dtype=dtype)
    labels = np.array([1, 0, 2, 2, 0], dtype=dtype)
    expected = pladacodec.encode([90, 3, 17, 0, 126], [1, 0, 2, 2, 0], 127)
    assert check_roundtrip(indices, labels, 127) == expected


@pytest.mark.parametrize(
    "convert",
    [
        list,
        tuple,
        lambda a: [np.int64(v) for v in a],
        lambda a: np.array(a, dtype=object),
        lambda a: np.array(a, dtype=np.float64),
        lambda a: np.repeat(np.array(a, dtype=np.int64), 2)[::2],
        lambda a: bytes(a),
        lambda a: bytearray(a),
        lambda a: memoryview(bytes(a)),
    ],
    ids=["list", "tuple", "numpy-scalars", "object-array", "integral-floats", "strided", "bytes", "bytearray", "memoryview"],
)
def test_sequence_types(convert):
    indices, labels = [200, 7, 31, 8], [3, 0, 1, 3]
    check_roundtrip(convert(indices), convert(labels), 256, 4)


def test_large_uint64_and_python_ints():
    top = S.MAX_N_REFERENCE - 1
    check_roundtrip(np.array([top, 0], dtype=np.uint64), [1, 0], S.MAX_N_REFERENCE, 2)
    check_roundtrip([top, 1 << 33], [0, 0], S.MAX_N_REFERENCE, 1)


def test_read_write_paths_and_file_objects(tmp_path):
    indices, labels = [10, 2, 33], [1, 1, 0]
    blob = pladacodec.encode(indices, labels, 40)
    as_str, as_path = str(tmp_path / "a.plada"), tmp_path / "b.plada"
    assert pladacodec.write(as_str, indices, labels, 40) == len(blob)
    assert pladacodec.write(as_path, indices, labels, 40) == len(blob)
    buffer = io.BytesIO()
    assert pladacodec.write(buffer, indices, labels, 40) == len(blob)
    with open(tmp_path / "c.plada", "wb") as fh:
        pladacodec.write(fh, indices, labels, 40)
    for path in (as_str, as_path, tmp_path / "c.plada"):
        assert open(path, "rb").read() == blob
        assert_payload(pladacodec.read(path), indices, labels, 40, 2)
        with open(path, "rb") as fh:
            assert_payload(pladacodec.read(fh), indices, labels, 40, 2)
        assert pladacodec.inspect(path).payload == pladacodec.decode(blob)
    assert buffer.getvalue() == blob
    assert_payload(pladacodec.read(io.BytesIO(blob)), indices, labels, 40, 2)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_read_text_mode_file_is_a_decode_error(tmp_path):
    path = tmp_path / "t.plada"
    pladacodec.write(path, [1], [0], 2)
    with open(path, encoding="latin-1") as fh, pytest.raises(pladacodec.PladaDecodeError, match="binary mode"):
        pladacodec.read(fh)


def test_decode_rejects_non_buffers():
    for bad in ("x.plada", 12, np.zeros(4, dtype=np.int32)):
        with pytest.raises(pladacodec.PladaDecodeError):
            pladacodec.decode(bad)


def test_decode_strided_uint8_array():
    blob = pladacodec.encode([3, 1], [0, 1], 5)
    doubled = np.repeat(np.frombuffer(blob, dtype=np.uint8), 2)[::2]
    assert not doubled.flags.c_contiguous
    assert_payload(pladacodec.decode(doubled), [3, 1], [0, 1], 5, 2)


# --- header fields -----------------------------------------------------------------------


def test_class_names_fingerprint_metadata_roundtrip():
    extras = dict(
        class_names=["nul\0", "cat", "naïve ☃", "x" * 4096],  # names are non-empty and distinct
        reference_fingerprint=hashlib.sha256(b"ref").digest(),
        metadata={"teacher": "vit", "budget": [1, 2.5, None], "ok": True, "deep": {"a": {"b": "c"}}},
    )
    check_roundtrip([1, 2, 3], [0, 3, 2], 10, **extras)
    check_roundtrip([1, 2, 3], [0, 3, 2], 10, 4, **{**extras, "reference_fingerprint": extras["reference_fingerprint"].hex()})


def test_metadata_is_stored_as_canonical_json():
    a = pladacodec.encode([1], [0], 3, metadata={"b": 1, "a": [1, 2]})
    b = pladacodec.encode([1], [0], 3, metadata={"a": [1, 2], "b": 1})
    assert a == b
    assert pladacodec.decode(a).metadata == {"a": [1, 2], "b": 1}


# --- determinism -------------------------------------------------------------------------

_DETERMINISM_SCRIPT = """
import hashlib, numpy as np, pladacodec
rng = np.random.default_rng(7)
idx = rng.choice(1 << 22, 3000, replace=False)
lab = rng.integers(0, 40, 3000)
blob = pladacodec.encode(idx, lab, 1 << 22, metadata={"z": 1, "a": {"y": 2, "b": 3}}, class_names=[str(c) for c in range(40)])
print(hashlib.sha256(blob).hexdigest())
"""


def test_deterministic_within_a_process():
    rng = np.random.default_rng(3)
    idx, lab = rng.choice(100_000, 500, replace=False), rng.integers(0, 9, 500)
    assert pladacodec.encode(idx, lab, 100_000) == pladacodec.encode(idx.copy(), lab.copy(), 100_000)


def test_deterministic_across_processes():
    digests = set()
    for seed in ("0", "12345"):  # different string hashing, different dict/set orders
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", _DETERMINISM_SCRIPT], env=env, capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    namespace: dict = {}
    buffer = io.StringIO()
    from contextlib import redirect_stdout

    with redirect_stdout(buffer):
        exec(_DETERMINISM_SCRIPT, namespace)
    digests.add(buffer.getvalue().strip())
    assert len(digests) == 1, digests


def test_sorted_selection_helper():
    idx, lab = sorted_selection([5, 1, 3], [50, 10, 30])
    assert idx.tolist() == [1, 3, 5] and lab.tolist() == [10, 30, 50]


def test_a_static_method_is_kept_unless_an_adaptive_one_saves_more_than_1_percent():
    """The encoder's policy (pladacodec._methods.choose): the static methods decode several
    times faster, so the automatic choice trades up to 1 % of a section for them."""
    from pladacodec import _methods

    iid, context = _methods.method("label", S.LABEL_IID), _methods.method("label", S.LABEL_CONTEXT)
    golomb, gaps = _methods.method("index", S.INDEX_GOLOMB), _methods.method("index", S.INDEX_CONTEXT)
    assert _methods.choose([(iid, bytes(1010)), (context, bytes(1000))])[0] is iid
    assert _methods.choose([(iid, bytes(1011)), (context, bytes(1000))])[0] is context
    assert _methods.choose([(golomb, bytes(505)), (gaps, bytes(500))])[0] is golomb
    # end to end: Zipf labels over 1,000 classes, where the context model is a little smaller
    rng = np.random.default_rng(5)
    indices = np.sort(rng.choice(1_281_167, 12_812, replace=False)).astype(np.uint64)
    weights = 1.0 / np.arange(1, 1001)
    labels = rng.choice(1000, 12_812, p=weights / weights.sum())
    pair = [S.LABEL_IID, S.LABEL_CONTEXT]
    blob = pladacodec.encode(indices, labels, 1_281_167, n_classes=1000, label_methods=pair)
    assert pladacodec.inspect(blob).methods()["labels"] == {"iid": 1}
    context_only = pladacodec.encode(indices, labels, 1_281_167, n_classes=1000, label_methods=[S.LABEL_CONTEXT])
    assert len(context_only) <= len(blob)
    # ... while the drift model, which needs no stored histogram of the 1,000 classes, is more than 1 % smaller
    drift = pladacodec.encode(indices, labels, 1_281_167, n_classes=1000)
    assert pladacodec.inspect(drift).methods()["labels"] == {"drift": 1}
    assert len(drift) < 0.99 * len(blob)
