"""A numcodecs codec, id ``plada``: a selection stored in zarr (or any numcodecs user) as a
``.plada`` stream.

Array layout
------------
The codec takes a 2-D integer array of shape ``(k, 2)``, C order: row ``i`` is
``(reference index, label)``, the rows **sorted by index, strictly increasing** (the order
``pladacodec.decode`` returns).  The element type is the codec's ``dtype`` (default
``"<u8"``; any integer type that holds N - 1 and C - 1).  A chunk is one ``.plada`` stream,
so an array may be cut into chunks of rows; zarr pads the last chunk with the fill value,
and the codec keeps such padding (a run of identical rows after the sorted rows) exactly,
in the stream's metadata (``"zarr_padding": [rows, index, label]``).

Configuration (JSON, stored in the array's metadata): ``n_reference``, ``n_classes``,
``class_names``, ``reference_fingerprint`` (hex), ``metadata`` and ``dtype``.  Decoding
checks that a stream was made for the configured N (and fingerprint).  Registered through
the ``numcodecs.codecs`` entry point, so ``numcodecs.get_codec({"id": "plada", ...})``
and zarr find it without importing pladacodec first.

>>> import numpy as np, numcodecs
>>> codec = PladaCodec(n_reference=1000, n_classes=3)
>>> sel = np.array([[5, 0], [17, 2], [640, 1]], dtype="<u8")
>>> blob = codec.encode(sel)
>>> np.array_equal(codec.decode(blob).reshape(-1, 2), sel)
True
>>> numcodecs.get_codec(codec.get_config()) == codec
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray, ndarray_copy

import pladacodec

__all__ = ["PladaCodec"]

_PAD_KEY = "zarr_padding"


class PladaCodec(Codec):
    """``(k, 2)`` arrays of (reference index, label) rows as ``.plada`` streams."""

    codec_id = "plada"

    def __init__(self, n_reference: int, n_classes: int | None = None, class_names: list[str] | None = None,
                 reference_fingerprint: str | bytes | None = None, metadata: dict | None = None,
                 dtype: str = "<u8") -> None:
        self.n_reference = int(n_reference)
        self.n_classes = None if n_classes is None else int(n_classes)
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        if isinstance(reference_fingerprint, (bytes, bytearray)):
            reference_fingerprint = bytes(reference_fingerprint).hex()
        self.reference_fingerprint = reference_fingerprint
        self.metadata = None if metadata is None else dict(metadata)
        dt = np.dtype(dtype)
        if dt.kind not in "iu":
            raise ValueError(f"PladaCodec stores integer arrays, not {dt}")
        self.dtype = dt.str

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "n_reference": self.n_reference, "n_classes": self.n_classes,
                "class_names": self.class_names, "reference_fingerprint": self.reference_fingerprint,
                "metadata": self.metadata, "dtype": self.dtype}

    def _rows(self, buf) -> np.ndarray:
        arr = ensure_contiguous_ndarray(buf)
        flat = arr.view(np.uint8).view(self.dtype) if arr.dtype != np.dtype(self.dtype) else arr
        if flat.size % 2:
            raise ValueError(f"PladaCodec takes (k, 2) arrays of (index, label) rows; found {flat.size} values")
        return flat.reshape(-1, 2)

    def encode(self, buf) -> bytes:
        rows = self._rows(buf)
        idx = rows[:, 0]
        k = rows.shape[0]
        meta = dict(self.metadata or {})
        if k > 1:
            if np.dtype(self.dtype).kind == "i" and int(rows.min()) < 0:
                raise ValueError("PladaCodec: indices and labels must not be negative")
            breaks = np.flatnonzero(idx[1:] <= idx[:-1])
            if breaks.size:
                p = int(breaks[0]) + 1  # rows [0, p) are strictly increasing
                if not np.all(rows[p:] == rows[p]):
                    raise ValueError(
                        f"PladaCodec stores rows sorted by index, strictly increasing; row {p} "
                        f"({int(idx[p])}) follows {int(idx[p - 1])} (sort by the first column)"
                    )
                meta[_PAD_KEY] = [k - p, int(rows[p, 0]), int(rows[p, 1])]
                rows = rows[:p]
        return pladacodec.encode(
            rows[:, 0].astype(np.uint64), rows[:, 1].astype(np.int64), self.n_reference, n_classes=self.n_classes,
            class_names=self.class_names, reference_fingerprint=self.reference_fingerprint, metadata=meta or None,
        )

    def decode(self, buf, out=None):
        data = ensure_contiguous_ndarray(buf).view(np.uint8).tobytes()
        payload = pladacodec.decode(data)
        if int(payload.n_reference) != self.n_reference:
            raise pladacodec.PladaReferenceError(
                f"the stream was made for {int(payload.n_reference):,} reference images, the codec for "
                f"{self.n_reference:,}"
            )
        fp = payload.reference_fingerprint
        if self.reference_fingerprint is not None and (fp is None or fp.hex() != self.reference_fingerprint):
            raise pladacodec.PladaReferenceError("the stream's reference fingerprint differs from the codec's")
        pad = (payload.metadata or {}).get(_PAD_KEY)
        k = len(payload.indices)
        extra = int(pad[0]) if pad else 0
        rows = np.empty((k + extra, 2), dtype=self.dtype)
        rows[:k, 0] = payload.indices
        rows[:k, 1] = payload.labels
        if extra:
            rows[k:, 0] = int(pad[1])
            rows[k:, 1] = int(pad[2])
        return ndarray_copy(rows, out)

    def __eq__(self, other) -> bool:
        return isinstance(other, PladaCodec) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(self.codec_id)

    def __repr__(self) -> str:
        return (f"PladaCodec(n_reference={self.n_reference}, n_classes={self.n_classes}, "
                f"dtype={self.dtype!r}, fingerprint={'yes' if self.reference_fingerprint else 'no'})")
