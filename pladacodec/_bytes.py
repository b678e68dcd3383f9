"""Byte-level helpers: LEB128 varints, CRC-32C and a bounds-checked reader.

The reader never trusts a declared length: every read is checked against the
bytes that remain and fails with :class:`PladaTruncatedError` naming what was
expected and what was found.
"""

from __future__ import annotations

import struct

import crc32c as _crc32c

from ._spec import MAX_VARINT_BYTES
from .errors import PladaFormatError, PladaTruncatedError

__all__ = ["crc32c", "encode_varint", "Reader"]


def crc32c(data, value: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``, continuing from ``value``."""
    return _crc32c.crc32c(data, value)


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, low groups first, high bit = more follows."""
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Reader:
    """Sequential reader over a memoryview with explicit bounds checks."""

    __slots__ = ("_view", "pos", "end")

    def __init__(self, data, start: int = 0, end: int | None = None) -> None:
        if isinstance(data, memoryview):
            self._view = data if data.format == "B" and data.ndim == 1 else data.cast("B")
        else:
            self._view = memoryview(data).cast("B")
        self.pos = start
        self.end = len(self._view) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, size: int, what: str) -> memoryview:
        if size < 0 or size > self.remaining:
            raise PladaTruncatedError(
                f"{what}: needs {size:,} bytes at offset {self.pos:,} but only {self.remaining:,} remain"
            )
        view = self._view[self.pos : self.pos + size]
        self.pos += size
        return view

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))

    def varint(self, what: str, maximum: int | None = None) -> int:
        pos = self.pos
        if pos < self.end and self._view[pos] < 0x80:  # fast path: one byte (most varints)
            result = self._view[pos]
            if maximum is not None and result > maximum:
                raise PladaFormatError(f"{what}: {result:,} exceeds the limit {maximum:,}")
            self.pos = pos + 1
            return result
        result = 0
        shift = 0
        start = pos
        view, end = self._view, self.end
        for i in range(MAX_VARINT_BYTES):
            if pos >= end:
                raise PladaTruncatedError(f"{what}: varint at offset {start:,} runs past the end of its section")
            byte = view[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if i > 0 and byte == 0:
                    raise PladaFormatError(f"{what}: varint at offset {start:,} is not minimally encoded")
                if result >= 1 << 64:
                    raise PladaFormatError(f"{what}: varint at offset {start:,} exceeds 64 bits")
                if maximum is not None and result > maximum:
                    raise PladaFormatError(f"{what}: {result:,} exceeds the limit {maximum:,}")
                self.pos = pos
                return result
            shift += 7
        self.pos = pos
        raise PladaFormatError(f"{what}: varint at offset {start:,} is longer than {MAX_VARINT_BYTES} bytes")

    def expect_end(self, what: str) -> None:
        if self.pos != self.end:
            raise PladaFormatError(f"{what}: {self.end - self.pos:,} unused bytes at offset {self.pos:,}")
