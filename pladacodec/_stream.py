"""Streaming: write and read ``.plada`` files block by block, never holding the whole task.

A selection of 1 % of a web-sized pool (20 M entries, 320 MB as two int64
arrays) need not fit in memory: :class:`StreamWriter` takes chunks of any size,
encodes every full block (``block_entries`` entries) as it fills and appends it
to a temporary file, which :meth:`StreamWriter.close` renames over the target;
:class:`StreamReader` decodes one block at a time from disk.  The bytes are the
ones :func:`pladacodec.encode` produces for the same task and ``block_entries``
(block boundaries do not depend on how the input was chunked).

>>> import os, tempfile, numpy as np
>>> from pladacodec._stream import write_stream, iter_read
>>> path = os.path.join(tempfile.mkdtemp(), "task.plada")
>>> chunks = [(np.array([3, 7]), np.array([0, 1])), (np.array([12]), np.array([1]))]
>>> write_stream(path, chunks, n_reference=100, n_selected=3, n_classes=2, block_entries=2) > 0
True
>>> [(i.tolist(), l.tolist()) for i, l in iter_read(path)]
[([3, 7], [0, 1]), ([12], [1])]

Integrity when reading: every block carries its own CRC-32C (FORMAT.md §4), checked before
the block is decoded; that a file is complete is known only at its end (the header says how
many blocks follow).  By default (``verify_first=True``) :class:`StreamReader` therefore makes a
first streaming pass over every block's framing and CRC before it yields anything, so no
block of a damaged or truncated file is ever handed out; the decoding pass checks each CRC
again, so a file changed between the passes still fails.  With ``verify_first=False`` the file
is read once and completeness is checked after the last block: the consumer must run the
iteration to its end before trusting what it got.
"""

from __future__ import annotations

import dataclasses
import os
from typing import BinaryIO, Iterable, Iterator, Sequence

import numpy as np

from . import _api, _container, _io, _methods
from . import _spec as S
from ._bytes import Reader
from .folders import as_layout
from .errors import (
    PladaDecodeError,
    PladaEncodeError,
    PladaError,
    PladaFormatError,
    PladaReferenceError,
    PladaTruncatedError,
)

__all__ = ["StreamWriter", "StreamReader", "write_stream", "iter_read", "summarize", "TaskSummary"]


# --- writing --------------------------------------------------------------------------------


class StreamWriter:
    """Write a ``.plada`` file from chunks of (sorted indices, labels), one block at a time.

    The header comes first in the file, so the total count ``n_selected`` and
    ``n_classes`` must be known up front; :meth:`close` checks that exactly
    ``n_selected`` entries arrived.  Indices must be strictly increasing across
    all chunks (streaming cannot sort).  A path is written atomically (temporary
    file in the same folder, fsync, rename); on error or :meth:`abort` the
    temporary file is removed and the target is left untouched.

    Memory: one block of input (``block_entries`` x 16 bytes) plus what the
    coders need for one block.

    ``folders`` (a FolderLayout or Reference) lets the coders use the reference's folder
    layout (see :func:`pladacodec.encode`).  Since the header is written first, a streamed
    file names the layout whenever one is given (``encode`` names it only when that pays),
    so it then decodes only with the same layout.
    """

    def __init__(
        self,
        target,
        *,
        n_reference: int,
        n_selected: int,
        n_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        reference_fingerprint: bytes | str | None = None,
        metadata=None,
        block_entries: int | None = None,
        index_methods: Sequence[int] | None = None,
        label_methods: Sequence[int] | None = None,
        folders=None,
    ) -> None:
        if n_classes is None and class_names is None:
            raise PladaEncodeError("streaming needs n_classes (or class_names) up front: labels arrive later")
        # Validate every header parameter with the same code as encode() (on an empty selection).
        header, _, _ = _api._prepare(
            [], [], n_reference, n_classes, class_names, reference_fingerprint, metadata, block_entries
        )
        n_selected = _api._as_count(n_selected, "n_selected", 0, header.n_reference)
        if block_entries is None:  # the same default as encode(): balanced for n_selected entries
            header = dataclasses.replace(header, block_entries=_api.balanced_block_entries(n_selected))
        _api._check_methods(index_methods, _methods.BY_KIND["index"], "index_methods")
        _api._check_methods(label_methods, _methods.BY_KIND["label"], "label_methods")
        # The header goes out first, so with a layout it always names it (encode() names it
        # only when that pays): the file then decodes only with the layout.
        self._folders = as_layout(folders, header.n_reference, PladaEncodeError)
        _container.check_allowed("index", index_methods, self._folders)  # a folder method needs the layout
        _container.check_allowed("label", label_methods, self._folders)
        if self._folders is not None:
            header = dataclasses.replace(header, folders=(self._folders.n_folders, self._folders.digest))
        self.header = dataclasses.replace(header, n_selected=n_selected)
        self._index_methods = None if index_methods is None else tuple(index_methods)
        self._label_methods = None if label_methods is None else tuple(label_methods)
        self._pending_idx = np.empty(header.block_entries, dtype=np.uint64)
        self._pending_lab = np.empty(header.block_entries, dtype=np.int64)
        self._pending = 0
        self._written_entries = 0  # entries already in encoded blocks
        self._next_min = 0  # the next index must be >= this
        self._base = 0  # base of the block being filled
        self._closed = False
        self.bytes_written = 0

        self._path = None
        self._out = None
        if hasattr(target, "write"):
            self._fh: BinaryIO = target
        else:
            self._path = os.fspath(target)
            self._out = _io.AtomicOutput(target)  # a temporary file, renamed into place by close()
            self._fh = self._out.file
        self._head = _container.encode_header(self.header)  # a one-block file's block CRC covers it
        self._emit(self._head)

    @property
    def entries_received(self) -> int:
        return self._written_entries + self._pending

    def _emit(self, data: bytes) -> None:
        try:
            self._fh.write(data)
        except OSError as exc:
            self.abort()
            raise PladaError(f"cannot write {str(self._path or 'file')!r}: {exc.strerror or exc}") from exc
        self.bytes_written += len(data)

    def write(self, indices, labels) -> None:
        """Append a chunk: indices strictly increasing (also across chunks), one label each."""
        if self._closed:
            raise PladaEncodeError("write() after close()")
        try:
            idx = _api._as_integer_array(indices, "indices")
            lab = _api._as_integer_array(labels, "labels")
            at = self.entries_received
            if len(idx) != len(lab):
                raise PladaEncodeError(f"chunk at entry {at:,}: {len(idx):,} indices but {len(lab):,} labels")
            if at + len(idx) > self.header.n_selected:
                raise PladaEncodeError(
                    f"chunk at entry {at:,} brings the count to {at + len(idx):,}, "
                    f"more than n_selected = {self.header.n_selected:,}"
                )
            if not len(idx):
                return
            _api._check_range(idx, 0, self.header.n_reference, "indices", "n_reference")
            _api._check_range(lab, 0, self.header.n_classes, "labels", "n_classes")
            idx = idx.astype(np.uint64, copy=False)
            if int(idx[0]) < self._next_min:
                raise PladaEncodeError(
                    f"entry {at:,}: index {int(idx[0]):,} is not above the previous index {self._next_min - 1:,} "
                    "(streamed indices must be strictly increasing)"
                )
            if len(idx) > 1:
                bad = idx[1:] <= idx[:-1]
                if bad.any():
                    pos = int(np.argmax(bad))
                    raise PladaEncodeError(
                        f"entry {at + pos + 1:,}: index {int(idx[pos + 1]):,} is not above {int(idx[pos]):,} "
                        "(streamed indices must be strictly increasing)"
                    )
        except PladaError:
            self.abort()
            raise
        self._next_min = int(idx[-1]) + 1
        start = 0
        step = self.header.block_entries
        while start < len(idx):
            take = min(step - self._pending, len(idx) - start)
            self._pending_idx[self._pending : self._pending + take] = idx[start : start + take]
            self._pending_lab[self._pending : self._pending + take] = lab[start : start + take]
            self._pending += take
            start += take
            if self._pending == step:
                self._flush_block()

    def _flush_block(self) -> None:
        n = self._pending
        indices = self._pending_idx[:n]
        block = _container.encode_block_options(
            indices, self._pending_lab[:n], self._base, self.header.n_classes, self._written_entries == 0,
            self._index_methods, self._label_methods, self._folders,
        ).data
        self._emit(_container.seal_one_block(self._head, block) if self.header.one_block else block)
        self._base = int(indices[-1]) + 1
        self._written_entries += n
        self._pending = 0

    def close(self) -> int:
        """Flush the last block and (for a path) rename into place; returns the size."""
        if self._closed:
            return self.bytes_written
        if self.entries_received != self.header.n_selected:
            got = self.entries_received
            self.abort()
            raise PladaEncodeError(f"the header promises {self.header.n_selected:,} entries but {got:,} were written")
        if self._pending:
            self._flush_block()
        self._closed = True
        if self._out is not None:
            self._out.commit()
            self._out = None
        return self.bytes_written

    def abort(self) -> None:
        """Give up: remove the temporary file (a path target is left as it was)."""
        self._closed = True
        if self._out is not None:
            self._out.abort()
            self._out = None

    def __enter__(self) -> "StreamWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_stream(target, chunks: Iterable[tuple], *, n_reference: int, n_selected: int, **kwargs) -> int:
    """Write ``chunks`` (an iterable of ``(indices, labels)`` pairs) as one file; returns its size.

    Two separate iterables can be passed as ``zip(index_chunks, label_chunks)``.
    Keyword arguments are those of :class:`StreamWriter`.
    """
    writer = StreamWriter(target, n_reference=n_reference, n_selected=n_selected, **kwargs)
    try:
        for indices, labels in chunks:
            writer.write(indices, labels)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


# --- reading --------------------------------------------------------------------------------


class _Cursor:
    """Sequential reads, each checked against the bytes that remain (when the size is known: a
    regular file) or the largest file the format allows (a pipe), and read in bounded chunks."""

    def __init__(self, fh: BinaryIO, end: int | None) -> None:
        self.fh = fh
        self.end = end  # the file's size from where reading started; None for a pipe
        self.pos = 0

    @property
    def remaining(self) -> int:
        return (self.end if self.end is not None else S.MAX_FILE_SIZE) - self.pos

    def read(self, n: int, what: str) -> bytes:
        if n < 0 or n > self.remaining:
            if self.end is None:
                raise PladaFormatError(f"{what}: {n:,} bytes at offset {self.pos:,} exceed the largest .plada file")
            raise PladaTruncatedError(
                f"{what}: needs {n:,} bytes at offset {self.pos:,} but only {max(self.remaining, 0):,} remain "
                "(truncated file?)"
            )
        data = _io.read_up_to(self.fh, n)
        if len(data) != n:  # a pipe ended, or the file shrank under us
            raise PladaTruncatedError(f"{what}: file ended at offset {self.pos + len(data):,} while reading (truncated?)")
        self.pos += n
        return data

    def varint(self, what: str) -> bytes:
        """The raw bytes of one varint (validated later by :class:`Reader`)."""
        out = bytearray()
        for _ in range(S.MAX_VARINT_BYTES):
            byte = self.read(1, what)
            out += byte
            if not byte[0] & 0x80:
                break
        return bytes(out)


class StreamReader:
    """Read a ``.plada`` file one block at a time; see the module docstring for integrity.

    The source is a path or a binary file object, read once from where it stands; a pipe
    (``<(cat task.plada)``, a FIFO) works with ``verify_first=False``.  The magic is checked
    before anything else is read, and every read is bounded by the file's size (a pipe: the
    largest file the format allows) and done in chunks, so memory stays at one block's.

    >>> # with StreamReader(path) as reader:
    >>> #     header = reader.header
    >>> #     for indices, labels in reader: ...
    """

    def __init__(self, source, *, verify_first: bool = True, folders=None) -> None:
        self._folders_given = as_layout(folders, None, PladaDecodeError, resolve=False)
        self._own = not hasattr(source, "read")
        if self._own:
            try:
                self._fh = open(source, "rb")
            except OSError as exc:
                raise PladaError(f"cannot read {os.fspath(source)!r}: {exc.strerror or exc}") from exc
        else:
            _io.check_binary_reader(source)
            self._fh = source
        try:
            self._open(verify_first)
        except BaseException:
            self.close()
            raise

    def _open(self, verify_first: bool) -> None:
        fh = self._fh
        size = _io.seekable_size(fh)  # None for a pipe or a device
        if size is not None and size > S.MAX_FILE_SIZE:
            _container.check_preamble(Reader(_io.read_up_to(fh, _io.PREFIX_SIZE)))  # not .plada: say so first
            raise PladaFormatError(f"{size:,} bytes exceeds the largest .plada file ({S.MAX_FILE_SIZE:,} bytes)")
        self.file_size = size
        start_offset = fh.tell() if size is not None else None
        cur = _Cursor(fh, size)
        prefix = _io.read_up_to(fh, _io.PREFIX_SIZE)
        cur.pos = len(prefix)
        start = Reader(prefix)
        try:
            header_len = _container.check_preamble(start)  # magic and version, before anything else is read
        except PladaTruncatedError:
            if len(prefix) >= _io.PREFIX_SIZE:
                raise
            raise PladaTruncatedError(f"file of {len(prefix)} bytes is shorter than the smallest .plada file") from None
        head = prefix + cur.read(start.pos + header_len - len(prefix), "header")
        self._one_block = None  # a one-block file: its block, read and checked with the header (one CRC)
        if _container.counts_one_block(Reader(head, start.pos, len(head))):
            self.header, pos, (self._one_block, _) = _container.decode_header_and_block(
                head + self._read_block_bytes(0, cur)
            )
        else:
            head += cur.read(S.HEADER_CRC_SIZE, "header checksum")
            self.header, pos = _container.decode_header(head)
        try:
            self._folders = _container.check_folders(self.header, self._folders_given)
        except PladaReferenceError as exc:
            exc.header = self.header  # the caller may tell a reference of another size from another layout
            raise
        self._blocks_at = pos
        self._cursor = cur
        if verify_first and self._one_block is not None:
            self._check_end()  # the block was read and checked with the header
        elif verify_first:
            if start_offset is None:
                raise PladaError(
                    "verify_first needs a regular (seekable) file; for a pipe pass verify_first=False "
                    "(each block is then checked as it is read, and the file's end after the last)"
                )
            for number in range(self.header.n_blocks):
                _container.scan_block(Reader(self._read_block_bytes(number)), self.header.block_size(number), number == 0)
            self._check_end()
            fh.seek(start_offset + pos)
            cur.pos = pos
        self._done = False

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self.blocks()

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(indices, labels)`` (uint64, int64) per block; checks the end of the file after the last."""
        for indices, labels, _ in self.blocks_with_info():
            yield indices, labels

    def blocks_with_info(self) -> Iterator[tuple[np.ndarray, np.ndarray, _container.BlockInfo]]:
        """:meth:`blocks` with each block's :class:`~pladacodec._container.BlockInfo` (sizes, methods)."""
        if self._done:
            raise PladaError("this StreamReader has already been iterated")
        self._done = True
        header, cur = self.header, self._cursor
        base = 0
        for number in range(header.n_blocks):
            start = cur.pos
            try:
                if self._one_block is not None:  # read and checked with the header
                    block = self._one_block
                    start = block.offset
                else:
                    block = _container.scan_block(
                        Reader(self._read_block_bytes(number)), header.block_size(number), number == 0
                    )
                indices, labels, info = _container.decode_block(block, header, base, self._folders)
            except PladaError as exc:
                where = f"block {number:,} at file offset {start:,} (offsets that follow are within the block)"
                raise type(exc)(f"{where}: {exc}") from None
            yield indices, labels.astype(np.int64, copy=False), info
            base = int(indices[-1]) + 1
        self._check_end()

    def _read_block_bytes(self, number: int, cur=None) -> bytes:
        """The bytes of the next block (FORMAT.md §4), lengths checked against the file."""
        cur = self._cursor if cur is None else cur
        parts = [] if number == 0 else [cur.varint("block base")]
        parts.append(cur.read(1, "block method byte"))
        lengths = 0
        for kind in ("index", "label"):
            raw_len = cur.varint(f"{kind} section length")
            lengths += Reader(raw_len).varint(f"{kind} section length")  # past the end: truncated (read)
            parts.append(raw_len)
        parts.append(cur.read(lengths + S.BLOCK_CRC_SIZE, "block sections"))
        return b"".join(parts)

    def _check_end(self) -> None:
        cur = self._cursor
        if cur.end is None:
            if _io.read_up_to(self._fh, 1):
                raise PladaFormatError(f"unexpected bytes after the last block at offset {cur.pos:,}")
        elif cur.pos != cur.end:
            raise PladaFormatError(f"{cur.end - cur.pos:,} unexpected bytes after the last block at offset {cur.pos:,}")

    def close(self) -> None:
        if self._own and self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "StreamReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_read(source, *, verify_first: bool = True, folders=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(indices, labels)`` block by block from a file path or binary file object.

    With the default ``verify_first=True`` the whole file is checksummed before
    the first block is yielded; see the module docstring.  ``folders``: the layout a
    file that names one needs (see :func:`pladacodec.decode`).
    """
    with StreamReader(source, verify_first=verify_first, folders=folders) as reader:
        yield from reader.blocks()


@dataclasses.dataclass(frozen=True)
class TaskSummary:
    """What :func:`summarize` finds in one block-by-block pass: :class:`~pladacodec.TaskInfo`'s
    report without the decoded arrays, so its memory does not grow with the file's entries."""

    header: _container.Header
    file_size: int
    blocks: int
    section_bytes: dict
    methods: dict
    class_histogram: np.ndarray

    def as_dict(self) -> dict:
        return _api.describe_task(
            self.header, self.file_size, self.blocks, self.section_bytes, self.methods, self.class_histogram
        )


def summarize(source, *, folders=None) -> TaskSummary:
    """Decode and verify every block of a file (path, binary file object, pipe), keeping only
    counts: sizes, coding methods, the class histogram.  Memory: one block at a time."""
    with StreamReader(source, verify_first=False, folders=folders) as reader:
        header = reader.header
        histogram = np.zeros(header.n_classes, dtype=np.int64)
        sections = {"header": reader._blocks_at, "block_headers": 0, "indices": 0, "labels": 0}
        methods: dict[str, dict[str, int]] = {"indices": {}, "labels": {}}
        blocks = 0
        for _, labels, info in reader.blocks_with_info():
            histogram += np.bincount(labels, minlength=header.n_classes)
            sections["block_headers"] += info.header_size
            for key, section in (("indices", info.index), ("labels", info.label)):
                sections[key] += section.size
                methods[key][section.method_name] = methods[key].get(section.method_name, 0) + 1
            blocks += 1
        return TaskSummary(header, reader._cursor.pos, blocks, sections, methods, histogram)
