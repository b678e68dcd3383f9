"""The exception hierarchy of pladacodec.

Every failure that the library raises on purpose is a :class:`PladaError`.
Decoding damaged or hostile bytes raises nothing else.  Subclasses also derive
from the closest builtin so callers may catch either (``except ValueError``
catches a bad file too).
"""

from __future__ import annotations

__all__ = [
    "PladaError",
    "PladaEncodeError",
    "PladaDecodeError",
    "PladaFormatError",
    "PladaVersionError",
    "PladaTruncatedError",
    "PladaChecksumError",
    "PladaReferenceError",
    "PladaMemoryError",
]


class PladaError(Exception):
    """Root of every error pladacodec raises on purpose."""


class PladaEncodeError(PladaError, ValueError):
    """The selection handed to the encoder is invalid (index out of range, duplicate, bad label...)."""


class PladaDecodeError(PladaError, ValueError):
    """The bytes are not a valid ``.plada`` file."""


class PladaFormatError(PladaDecodeError):
    """A structural violation: bad magic, impossible count, unknown method, leftover bytes..."""


class PladaVersionError(PladaFormatError):
    """The file's major version is one this reader does not implement."""


class PladaTruncatedError(PladaDecodeError, EOFError):
    """The data ends before the structure it declares."""


class PladaChecksumError(PladaDecodeError):
    """A CRC-32C over part of the file does not match its bytes."""


class PladaReferenceError(PladaError, ValueError):
    """A reference set does not match the task (size or fingerprint differ)."""


class PladaMemoryError(PladaError, MemoryError):
    """Not enough memory for what a file declares (decode it block by block, or bound ``max_entries``)."""
