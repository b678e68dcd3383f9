"""Numba kernels: the only module of pladacodec that imports numba.

Kernels are private and see only contiguous 1-D arrays of fixed dtypes; the
Python wrappers in :mod:`pladacodec._coders` validate dtype, range and
contiguity before calling in (numba does not bounds-check).  Every kernel has
an explicit signature, so a wrong dtype fails loudly instead of compiling a
new specialisation, and ``cache=True`` so the compile cost is paid once per
machine.

A kernel never raises: it returns a status code (0 = success, negative =
the input was inconsistent) that the wrapper turns into a ``PladaError``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = [
    "bitmap_from_indices",
    "indices_from_bitmap",
    "pack_bits",
    "unpack_bits",
    "indices_from_gaps",
    "gaps_from_indices",
]

_JIT_OPTIONS = dict(nogil=True, cache=True)


def _jit(signature):
    """The one place that decides how kernels are compiled."""
    return nb.njit(signature, **_JIT_OPTIONS)


# --- bitmaps ---------------------------------------------------------------


@_jit(nb.void(nb.uint64[::1], nb.uint64, nb.uint8[::1]))
def bitmap_from_indices(indices, base, out):
    """Set bit (index - base) of ``out`` (LSB-first within a byte) for every index.

    ``out`` must be zeroed and long enough; indices sorted, >= base.
    """
    for i in range(indices.shape[0]):
        pos = indices[i] - base
        out[pos >> 3] |= np.uint8(1 << (pos & 7))


@_jit(nb.int64(nb.uint8[::1], nb.uint64, nb.uint64, nb.uint64[::1]))
def indices_from_bitmap(bitmap, span, base, out):
    """Write base + position of every set bit below ``span`` into ``out``.

    Returns the number of set bits found, or -1 if it differs from
    ``len(out)`` (the bitmap disagrees with the declared count), or -2 if a
    bit at or beyond ``span`` is set.
    """
    n = out.shape[0]
    count = 0
    nbytes = bitmap.shape[0]
    for byte_index in range(nbytes):
        byte = np.int64(bitmap[byte_index])
        while byte != 0:
            low = byte & (-byte)
            bit = 0
            while (low >> bit) != 1:
                bit += 1
            pos = np.uint64(byte_index * 8 + bit)
            if pos >= span:
                return -2
            if count >= n:
                return -1
            out[count] = base + pos
            count += 1
            byte ^= low
    if count != n:
        return -1
    return count


# --- fixed-width bit packing ------------------------------------------------


@_jit(nb.void(nb.uint64[::1], nb.int64, nb.uint8[::1]))
def pack_bits(values, width, out):
    """Pack the low ``width`` bits of each value, LSB-first, into ``out``.

    ``out`` must be zeroed and hold ceil(len(values) * width / 8) bytes;
    width <= 56 so that one value spans at most 8 bytes.
    """
    bitpos = 0
    for i in range(values.shape[0]):
        v = values[i]
        remaining = width
        while remaining > 0:
            byte_index = bitpos >> 3
            offset = bitpos & 7
            take = min(8 - offset, remaining)
            chunk = np.uint8((v & np.uint64((1 << take) - 1)) << np.uint64(offset))
            out[byte_index] |= chunk
            v >>= np.uint64(take)
            remaining -= take
            bitpos += take


@_jit(nb.void(nb.uint8[::1], nb.int64, nb.uint64[::1]))
def unpack_bits(data, width, out):
    """Inverse of :func:`pack_bits`; ``data`` must hold enough bytes."""
    bitpos = 0
    for i in range(out.shape[0]):
        v = np.uint64(0)
        got = 0
        while got < width:
            byte_index = bitpos >> 3
            offset = bitpos & 7
            take = min(8 - offset, width - got)
            chunk = (np.uint64(data[byte_index]) >> np.uint64(offset)) & np.uint64((1 << take) - 1)
            v |= chunk << np.uint64(got)
            got += take
            bitpos += take
        out[i] = v


# --- gaps -------------------------------------------------------------------


@_jit(nb.void(nb.uint64[::1], nb.uint64, nb.uint64[::1]))
def gaps_from_indices(indices, base, out):
    """out[i] = indices[i] - previous - 1 with previous = base - 1 initially (so out >= 0)."""
    prev = base
    for i in range(indices.shape[0]):
        out[i] = indices[i] - prev
        prev = indices[i] + np.uint64(1)


@_jit(nb.int64(nb.uint64[::1], nb.uint64, nb.uint64, nb.uint64[::1]))
def indices_from_gaps(gaps, base, limit, out):
    """Inverse of :func:`gaps_from_indices`, checking every index stays below ``limit``.

    Returns 0, or -(i + 1) for the first entry i that would reach ``limit``
    (no arithmetic can overflow: each step is compared before it is added).
    """
    nxt = base
    for i in range(gaps.shape[0]):
        g = gaps[i]
        if nxt >= limit or g >= limit - nxt:
            return -(i + 1)
        idx = nxt + g
        out[i] = idx
        nxt = idx + np.uint64(1)
    return 0
