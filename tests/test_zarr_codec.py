"""The numcodecs codec ``plada``: a selection stored in zarr as .plada streams."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

numcodecs = pytest.importorskip("numcodecs")
zarr = pytest.importorskip("zarr")

import pladacodec  # noqa: E402
from pladacodec.zarr_codec import PladaCodec  # noqa: E402

N = 50_000


def _selection(k=2_000, n=N, c=7, seed=0, dtype="<u8"):
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=k, replace=False))
    return np.stack([idx, rng.integers(0, c, size=k)], axis=1).astype(dtype)


def test_codec_round_trip_and_config_through_json():
    fp = pladacodec.fingerprint([f"x/{i}.png" for i in range(N)])
    codec = PladaCodec(n_reference=N, n_classes=7, class_names=[f"c{i}" for i in range(7)],
                       reference_fingerprint=fp, metadata={"teacher": "t"})
    sel = _selection()
    blob = codec.encode(sel)
    assert blob[:4] == pladacodec.encode([1], [0], 2)[:4]  # a .plada stream
    payload = pladacodec.decode(blob)
    assert payload.reference_fingerprint == fp and payload.metadata == {"teacher": "t"}
    for buf in (blob, bytearray(blob), memoryview(blob), np.frombuffer(blob, np.uint8)):
        assert np.array_equal(codec.decode(buf).reshape(-1, 2), sel)
    out = np.zeros_like(sel)
    codec.decode(blob, out=out)
    assert np.array_equal(out, sel)
    config = json.loads(json.dumps(codec.get_config()))
    assert config["id"] == "plada"
    again = numcodecs.get_codec(config)
    assert again == codec and np.array_equal(again.decode(blob).reshape(-1, 2), sel)
    other = PladaCodec(n_reference=N + 1)
    with pytest.raises(pladacodec.PladaReferenceError):
        other.decode(blob)


def test_unsorted_rows_are_refused():
    codec = PladaCodec(n_reference=100, n_classes=2)
    with pytest.raises(ValueError, match="sorted by index"):
        codec.encode(np.array([[5, 0], [3, 1], [9, 0]], dtype="<u8"))


@pytest.mark.parametrize("dtype", ["<u8", "<i4"])
def test_round_trip_through_a_zarr_array(tmp_path, dtype):
    sel = _selection(dtype=dtype)
    codec = PladaCodec(n_reference=N, n_classes=7, dtype=dtype)
    # chunks of 300 rows: the last chunk is padded by zarr, and the codec keeps the padding
    z = zarr.create_array(store=str(tmp_path / "sel.zarr"), shape=sel.shape, chunks=(300, 2), dtype=dtype,
                          zarr_format=2, compressors=codec, filters=None)
    z[:] = sel
    meta = json.loads((tmp_path / "sel.zarr" / ".zarray").read_text())
    assert meta["compressor"]["id"] == "plada" and meta["compressor"]["n_reference"] == N
    chunk = (tmp_path / "sel.zarr" / "0.0").read_bytes()
    assert np.array_equal(pladacodec.decode(chunk).indices, sel[:300, 0])
    # read back in a fresh process that never imports pladacodec itself: the codec is found
    # through the numcodecs.codecs entry point
    code = ("import sys, zarr, numpy as np\n"
            f"z = zarr.open_array({str(tmp_path / 'sel.zarr')!r}, mode='r')\n"
            "np.save(sys.argv[1], z[:])\n"
            "print(type(z.metadata.compressor).__module__)\n")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "back.npy")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "pladacodec.zarr_codec"
    assert np.array_equal(np.load(tmp_path / "back.npy"), sel)
    assert np.array_equal(zarr.open_array(str(tmp_path / "sel.zarr"), mode="r")[1000:1300], sel[1000:1300])


def test_registered_entry_point():
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="numcodecs.codecs")}
    assert names.get("plada") == "pladacodec.zarr_codec:PladaCodec"


def test_docstring_examples():
    import doctest

    import pladacodec.zarr_codec

    result = doctest.testmod(pladacodec.zarr_codec)
    assert result.attempted > 0 and result.failed == 0
