"""Fuzz the .plada decoder (format 2.0): decode, read, inspect, read_header and (sampled) the CLI.

Every byte of a .plada 2.0 file is covered by a CRC-32C (the header's, or its block's), so
random mutations mostly exercise the checksum path.  Each input is therefore decoded twice:
as given, and with every checksum recomputed (:func:`fix_checksums`: the header CRC and the
CRC of every block the header's k and B imply), so the parser and the coders behind the
checksums see the mutated bytes.  A third, structure-aware mutator
(:func:`mutate_structured`) parses a real file into its parts (:class:`Structure`: version,
the header's positional values N, k, C, B, its TLV fields, the blocks' bases, method bytes
and sections, bytes after the last block), edits one, and re-serialises it with correct
lengths and checksums; the pure-Python loop (:func:`mutation_loop`) uses all three.

A finding is any exception that is not a :class:`pladacodec.PladaError`, any
decoded payload that breaks the invariants (sorted unique indices below N,
labels below C), any CLI crash, and any input taking more than ``TIME_LIMIT_S`` of CPU
time to decode (``CLI_TIME_LIMIT_S`` in the CLI).

Coverage-guided, with atheris (libFuzzer flags pass through)::

    python tests/fuzzers/fuzz_decode.py tests/fuzzers/corpus -runs=100000
    python tests/fuzzers/fuzz_decode.py --findings /tmp/findings tests/fuzzers/corpus -runs=100000

Without ``--findings`` the first finding raises (libFuzzer saves the crash
input); with it, findings are written to that folder and fuzzing continues.
The committed corpus is a small seed set; the in-memory one (``load_seeds(None)``) has
every pair of coding methods in every shape.  The campaign driver is ``bench/fuzz_campaign.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

TIME_LIMIT_S = 2.0  # one input (all its decodes) must finish within this much CPU time ...
CLI_TIME_LIMIT_S = 8.0  # ... and its sampled CLI runs (tempfile, click, three commands) within this
# CPU time of this process, not wall time: the machines that run the campaign are shared, and a
# wall-clock limit would report the neighbours' load as slow inputs.
CLI_EVERY = 64  # run the CLI on one input in this many (by content hash)
DEEP_EVERY = 8  # also run read/inspect/read_header on failures of one input in this many
MAX_INPUT = 1 << 16

if __name__ == "__main__" or os.environ.get("PLADA_FUZZ_INSTRUMENT") == "1":
    import atheris  # coverage-instrument pladacodec for libFuzzer

    # numba compiles the kernels from their bytecode: instrumenting them breaks typing
    with atheris.instrument_imports(include=["pladacodec"], exclude=["pladacodec._kernels"]):
        import pladacodec
        from pladacodec import _spec as S
else:
    import pladacodec
    from pladacodec import _spec as S

import numpy as np

from pladacodec._bytes import crc32c, encode_varint


# --- checksum fix-up ---------------------------------------------------------------


def _lenient_varint(buf, pos: int, end: int):
    """(value, next position) or None when the varint runs past ``end`` / 10 bytes."""
    value = shift = 0
    for _ in range(S.MAX_VARINT_BYTES):
        if pos >= end:
            return None
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    return None


def _lenient_values(buf, pos: int, end: int) -> list[int] | None:
    """The header values (N, k, C, B) at ``pos``, or None."""
    values = []
    for _ in range(4):
        got = _lenient_varint(buf, pos, end)
        if got is None:
            return None
        value, pos = got
        values.append(value)
    return values


def _lenient_block_count(buf, pos: int, end: int) -> int | None:
    """The number of blocks the header values (N, k, C, B) at ``pos`` imply, or None."""
    values = _lenient_values(buf, pos, end)
    if values is None:
        return None
    _, k, _, block_entries = values
    if block_entries == 0:
        return 1 if k else 0
    return -(-k // block_entries)


def _one_block(values) -> bool:
    """k >= 1 and B = 0: no header CRC, the block's CRC covers the whole file (FORMAT.md §1)."""
    return values is not None and values[1] >= 1 and values[3] == 0


def fix_checksums(data: bytes) -> bytes:
    """Recompute every CRC-32C the layout of ``data`` implies, as far as it parses.

    Walks preamble -> varint(header length) -> header -> header CRC -> blocks
    ([base] method byte, two section lengths, sections, CRC) leniently: where a
    length runs past the end the walk stops.  The walk visits as many blocks as the
    header's k and B imply (every block to the end of the data when they do not parse),
    so bytes after the last block stay as they are.  Bytes are never inserted or removed.
    """
    buf = bytearray(data)
    n = len(buf)
    got = _lenient_varint(buf, S.PREAMBLE_SIZE, n)
    if got is None:
        return bytes(buf)
    header_len, header_start = got
    header_end = header_start + header_len
    one_block = _one_block(_lenient_values(buf, header_start, min(header_end, n)))
    if one_block:
        pos = header_end
    else:
        if header_end + S.HEADER_CRC_SIZE > n:
            return bytes(buf)
        struct.pack_into(S.HEADER_CRC_FORMAT, buf, header_end, crc32c(bytes(buf[:header_end])))
        pos = header_end + S.HEADER_CRC_SIZE
    n_blocks = _lenient_block_count(buf, header_start, header_end)
    number = 0
    while pos < n and (n_blocks is None or number < n_blocks):
        start = pos
        if number:
            got = _lenient_varint(buf, pos, n)  # base
            if got is None:
                break
            pos = got[1]
        pos += 1  # method byte
        lengths = 0
        for _ in range(2):
            got = _lenient_varint(buf, pos, n)
            if got is None:
                return bytes(buf)
            lengths += got[0]
            pos = got[1]
        pos += lengths
        if pos + S.BLOCK_CRC_SIZE > n:
            break
        struct.pack_into(S.BLOCK_CRC_FORMAT, buf, pos, crc32c(bytes(buf[0 if one_block else start : pos])))
        pos += S.BLOCK_CRC_SIZE
        number += 1
    return bytes(buf)


# --- structure-aware mutation -------------------------------------------------------


@dataclass
class Block:
    """One block (FORMAT.md §4): ``methods`` is the raw method byte (index | label << 4)."""

    base: int
    methods: int
    index: bytes
    label: bytes

    @property
    def index_method(self) -> int:
        return self.methods & ((1 << S.METHOD_BITS) - 1)

    @property
    def label_method(self) -> int:
        return self.methods >> S.METHOD_BITS

    def set_methods(self, index_method: int, label_method: int) -> None:
        self.methods = (index_method & 0xF) | (label_method & 0xF) << S.METHOD_BITS


@dataclass
class Structure:
    """A .plada 2.0 file as editable parts; :meth:`serialize` restores lengths and CRCs.

    ``values`` are the header's positional values [N, k, C, B] (a mutation may drop or add
    some), ``fields`` its (tag, value) fields in order, ``tail`` whatever follows the last block.
    """

    major: int
    minor: int
    values: list[int]
    fields: list[tuple[int, bytes]]
    blocks: list[Block] = field(default_factory=list)
    tail: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> "Structure":
        """Split a *valid* file into parts (raises on anything unexpected)."""
        magic, major, minor = struct.unpack_from(S.PREAMBLE_FORMAT, data)
        if magic != S.MAGIC:
            raise ValueError("not a .plada 2.x file")
        header_len, pos = _lenient_varint(data, S.PREAMBLE_SIZE, len(data))
        end = pos + header_len
        values = []
        for _ in range(4):
            value, pos = _lenient_varint(data, pos, end)
            values.append(value)
        fields = []
        while pos < end:
            tag, pos = _lenient_varint(data, pos, end)
            length, pos = _lenient_varint(data, pos, end)
            if pos + length > end:
                raise ValueError("header field runs past the header")
            fields.append((tag, bytes(data[pos : pos + length])))
            pos += length
        pos = end if _one_block(_lenient_values(data, end - header_len, end)) else end + S.HEADER_CRC_SIZE
        _, k, _, block_entries = values
        n_blocks = (1 if k else 0) if block_entries == 0 else -(-k // block_entries)
        blocks = []
        for number in range(n_blocks):
            base = 0
            if number:
                base, pos = _lenient_varint(data, pos, len(data))
            methods = data[pos]
            index_len, pos = _lenient_varint(data, pos + 1, len(data))
            label_len, pos = _lenient_varint(data, pos, len(data))
            index = bytes(data[pos : pos + index_len])
            label = bytes(data[pos + index_len : pos + index_len + label_len])
            if len(index) != index_len or len(label) != label_len:
                raise ValueError("section runs past the end")
            pos += index_len + label_len + S.BLOCK_CRC_SIZE
            blocks.append(Block(base, methods, index, label))
        if pos > len(data):
            raise ValueError("block checksum runs past the end")
        return cls(major, minor, values, fields, blocks, bytes(data[pos:]))

    def header_bytes(self) -> bytes:
        return b"".join(encode_varint(v) for v in self.values) + b"".join(
            encode_varint(t) + encode_varint(len(v)) + v for t, v in self.fields
        )

    def serialize(self) -> bytes:
        body = self.header_bytes()
        head = struct.pack(S.PREAMBLE_FORMAT, S.MAGIC, self.major & 0xFF, self.minor & 0xFF) + encode_varint(len(body)) + body
        one_block = _one_block(_lenient_values(body, 0, len(body)))  # as a reader would see them
        out = bytearray(head if one_block else head + struct.pack(S.HEADER_CRC_FORMAT, crc32c(head)))
        for number, block in enumerate(self.blocks):
            data = b"" if number == 0 else encode_varint(block.base)
            data += bytes([block.methods & 0xFF]) + encode_varint(len(block.index)) + encode_varint(len(block.label))
            data += block.index + block.label
            out += data + struct.pack(S.BLOCK_CRC_FORMAT, crc32c(data, crc32c(head) if one_block and number == 0 else 0))
        return bytes(out) + self.tail


INTERESTING_INTS = (0, 1, 2, 7, 8, 63, 64, 127, 128, 255, 256, 4095, 4096, 65534, 65535, 65536,
                    (1 << 20), (1 << 20) + 1, (1 << 27), (1 << 27) + 1, (1 << 31), (1 << 32) - 1, 1 << 32,
                    (1 << 40) - 1, 1 << 40, (1 << 40) + 1, 1 << 56, 1 << 60, (1 << 63), (1 << 64) - 1)
INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0x38, 0x39)


def _interesting_int(rng) -> int:
    if rng.random() < 0.7:
        return int(rng.choice(INTERESTING_INTS))
    return int(rng.integers(0, 1 << 62))


def mutate_bytes(rng, data: bytes, others=(), max_ops: int = 4) -> bytes:
    """Generic byte mutations: bit flips, interesting bytes, insert, delete, splice, truncate."""
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, max_ops + 1))):
        op = int(rng.integers(0, 9))
        n = len(buf)
        if op == 0 and n:
            buf[int(rng.integers(n))] ^= 1 << int(rng.integers(8))
        elif op == 1 and n:
            buf[int(rng.integers(n))] = int(rng.choice(INTERESTING_BYTES))
        elif op == 2 and n:
            buf[int(rng.integers(n))] = int(rng.integers(256))
        elif op == 3:
            at = int(rng.integers(n + 1))
            buf[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
        elif op == 4 and n:
            at = int(rng.integers(n))
            del buf[at : at + int(rng.integers(1, 17))]
        elif op == 5 and n:
            del buf[int(rng.integers(n)) :]
        elif op == 6 and n:
            at = int(rng.integers(n))
            buf[at:at] = encode_varint(_interesting_int(rng))
        elif op == 7 and others:
            other = others[int(rng.integers(len(others)))]
            if other:
                a = int(rng.integers(len(other)))
                b = min(len(other), a + int(rng.integers(1, 64)))
                at = int(rng.integers(n + 1))
                buf[at : at + (b - a) * int(rng.integers(0, 2))] = other[a:b]
        elif op == 8 and n >= 4:
            at = int(rng.integers(n - 3))
            struct.pack_into("<I", buf, at, _interesting_int(rng) & 0xFFFFFFFF)
    return bytes(buf[:MAX_INPUT])


def _nudge(rng, value: int) -> int:
    """An interesting integer, or ``value`` moved by a little."""
    if rng.random() < 0.5:
        return _interesting_int(rng)
    return max(0, value + int(rng.integers(-2, 3)))


KNOWN_TAGS = (S.TAG_CLASS_NAMES, S.TAG_FOLDERS, S.TAG_FINGERPRINT, S.TAG_METADATA)
OTHER_TAGS = (0, 4, 6, 7, 9, 10, 11, 12, 127, 128, 129, 1 << 20, (1 << 20) + 1)


def mutate_structured(rng, data: bytes, others=()) -> bytes:
    """Edit one part of a valid file, then re-serialise with right lengths and checksums."""
    st = Structure.parse(data)
    choice = int(rng.integers(0, 14))
    if choice == 0:  # version
        st.major = int(rng.choice([st.major, st.major, 0, 1, 3, 255]))
        st.minor = int(rng.choice([st.minor, 0, 1, 2, 255])) if rng.random() < 0.8 else int(rng.integers(256))
    elif choice == 1 and st.values:  # one of N, k, C, B
        i = int(rng.integers(len(st.values)))
        st.values[i] = _nudge(rng, st.values[i])
    elif choice == 2:  # the count of positional values: drop one, add one (the fields shift)
        if st.values and rng.random() < 0.5:
            del st.values[int(rng.integers(len(st.values)))]
        else:
            st.values.insert(int(rng.integers(len(st.values) + 1)), _interesting_int(rng))
    elif choice in (3, 4) and st.fields:  # header field value: interesting varint(s) or mutated bytes
        i = int(rng.integers(len(st.fields)))
        tag, value = st.fields[i]
        if choice == 3:
            new = encode_varint(_interesting_int(rng))
            if tag == S.TAG_FOLDERS and rng.random() < 0.7:  # F, keeping (or damaging) the digest
                new += value[-S.FOLDERS_DIGEST_SIZE :] if rng.random() < 0.8 else bytes(S.FOLDERS_DIGEST_SIZE)
        else:
            new = mutate_bytes(rng, value, others)
        st.fields[i] = (tag, new)
    elif choice == 5:  # add / drop / duplicate / retag / reorder header fields
        op = int(rng.integers(0, 5))
        if op == 0:
            tag = int(rng.choice(KNOWN_TAGS + OTHER_TAGS))
            value = bytes(rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8))
            st.fields.insert(int(rng.integers(len(st.fields) + 1)), (tag, value))
        elif op == 1 and st.fields:  # e.g. the folder layout a folder method needs goes missing
            del st.fields[int(rng.integers(len(st.fields)))]
        elif op == 2 and st.fields:
            st.fields.append(st.fields[int(rng.integers(len(st.fields)))])
        elif op == 3 and st.fields:
            i = int(rng.integers(len(st.fields)))
            st.fields[i] = (int(rng.choice(KNOWN_TAGS + OTHER_TAGS)), st.fields[i][1])
        elif st.fields:
            st.fields.reverse()
    elif choice == 6 and st.blocks:  # a consistent change of k and B (the blocks stay)
        if len(st.values) >= 4:
            n_blocks = len(st.blocks)
            st.values[1] = max(0, st.values[1] + int(rng.integers(-3, 4)))
            st.values[3] = int(rng.choice([0, 1, max(1, st.values[3] // 2), st.values[3] + 1, st.values[1], n_blocks]))
    elif st.blocks and choice in (7, 8, 9, 10, 11, 12):
        block = st.blocks[int(rng.integers(len(st.blocks)))]
        if choice == 7:
            block.base = _nudge(rng, block.base)
        elif choice == 8:  # method nibbles: another known method, an unknown one, or a raw byte
            if rng.random() < 0.7:
                block.set_methods(
                    int(rng.integers(0, 16)) if rng.random() < 0.2 else int(rng.integers(1, 4)),
                    int(rng.integers(0, 16)) if rng.random() < 0.2 else int(rng.integers(1, 5)),
                )
            else:
                block.methods = int(rng.integers(256))
        elif choice in (9, 10):  # section bytes, a few or many edits
            ops = 2 if choice == 9 else 6
            if rng.random() < 0.5:
                block.index = mutate_bytes(rng, block.index, others, max_ops=ops)
            else:
                block.label = mutate_bytes(rng, block.label, others, max_ops=ops)
        elif choice == 11:  # a section (with its method) from another block or another file
            donor = None
            if others and rng.random() < 0.5:
                try:
                    other = Structure.parse(others[int(rng.integers(len(others)))])
                    if other.blocks:
                        donor = other.blocks[int(rng.integers(len(other.blocks)))]
                except Exception:
                    donor = None
            if donor is None:
                donor = st.blocks[int(rng.integers(len(st.blocks)))]
            if rng.random() < 0.5:
                block.index = donor.index
                block.set_methods(donor.index_method, block.label_method)
            else:
                block.label = donor.label
                block.set_methods(block.index_method, donor.label_method)
        else:  # a section's bytes cut short or extended by a word
            which = "index" if rng.random() < 0.5 else "label"
            value = getattr(block, which)
            if rng.random() < 0.5 and value:
                value = value[: int(rng.integers(len(value)))]
            else:
                value = value + bytes(rng.integers(0, 256, int(rng.choice([1, 4, 8])), dtype=np.uint8))
            setattr(block, which, value)
    elif choice == 13:  # blocks: drop, duplicate, swap, or bytes after the last block
        op = int(rng.integers(0, 4))
        if op == 0 and st.blocks:
            del st.blocks[int(rng.integers(len(st.blocks)))]
        elif op == 1 and st.blocks:
            st.blocks.append(Block(st.blocks[-1].base, st.blocks[-1].methods, st.blocks[-1].index, st.blocks[-1].label))
        elif op == 2 and len(st.blocks) >= 2:
            i, j = rng.choice(len(st.blocks), 2, replace=False)
            st.blocks[i], st.blocks[j] = st.blocks[j], st.blocks[i]
        else:
            st.tail = bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
    return st.serialize()[:MAX_INPUT]


# --- the oracle ------------------------------------------------------------------------


@dataclass
class Finding:
    kind: str  # "exception", "invariant", "cli", "slow"
    key: str  # deduplication key (exception type + innermost pladacodec frame)
    detail: str
    data: bytes


def _key(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    inner = [f for f in frames if "pladacodec" in f.filename or "/cli/" in f.filename] or frames
    where = f"{Path(inner[-1].filename).name}:{inner[-1].lineno}" if inner else "?"
    return f"{type(exc).__name__}@{where}"


def _check_payload(p) -> str | None:
    """Invariants every decoded payload satisfies; a message when one is broken."""
    idx, lab = p.indices, p.labels
    if idx.dtype != np.uint64 or lab.dtype != np.int64 or len(idx) != len(lab):
        return f"dtypes/lengths {idx.dtype}/{lab.dtype} {len(idx)}/{len(lab)}"
    if len(idx):
        if not bool(np.all(idx[1:] > idx[:-1])):
            return "indices not strictly increasing"
        if int(idx[-1]) >= p.n_reference:
            return f"index {int(idx[-1])} >= N {p.n_reference}"
        if int(lab.min()) < 0 or int(lab.max()) >= p.n_classes:
            return f"label outside [0, {p.n_classes})"
    if p.class_names is not None and len(p.class_names) != p.n_classes:
        return "class name count != C"
    if not 1 <= p.n_reference <= S.MAX_N_REFERENCE or not 1 <= p.n_classes <= S.MAX_CLASSES:
        return "N or C outside the limits"
    return None


def _decode_all(data: bytes, deep: bool) -> bool:
    """The library entry points on one input; raises what they raise (or AssertionError)."""
    import make_corpus

    folders = make_corpus.folders_for(data)  # files of the folder methods decode with it
    try:
        payload = pladacodec.decode(data, folders=folders)
    except pladacodec.PladaError:
        payload = None
    if payload is not None:
        problem = _check_payload(payload)
        if problem:
            raise AssertionError(f"decoded payload breaks an invariant: {problem}")
    if deep or payload is not None:
        for call in (
            lambda: pladacodec.read(io.BytesIO(data), folders=folders),
            lambda: pladacodec.inspect(data, folders=folders).as_dict(),
            lambda: pladacodec.read_header(data),
            lambda: pladacodec.decode(bytearray(data), max_entries=64, folders=folders),
            lambda: pladacodec.decode(data),  # without the layout: a clear error for folder files
        ):
            try:
                call()
            except pladacodec.PladaError:
                pass
    return payload is not None


_CLI = None


def _cli():
    global _CLI
    if _CLI is None:
        try:
            from click.testing import CliRunner

            from pladacodec_cli.app import main
            from pladacodec_cli import codec  # noqa: F401  (absent until the CLI lands)

            _CLI = (CliRunner(), main)
        except Exception:
            _CLI = False
    return _CLI


def _run_cli(data: bytes) -> str | None:
    """Run ``pladacodec inspect`` and ``verify`` on the bytes; a message if the CLI crashed."""
    cli = _cli()
    if not cli:
        return None
    runner, main = cli
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "task.plada")
        with open(path, "wb") as fh:
            fh.write(data)
        for args in (["inspect", path], ["inspect", "--json", path], ["verify", path]):
            result = runner.invoke(main, args, catch_exceptions=True)
            exc = result.exception
            if exc is not None and not isinstance(exc, SystemExit):
                if isinstance(exc, click_usage_errors()):
                    continue
                tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                return f"`pladacodec {' '.join(args[:-1])}` crashed: {_key(exc)}\n{tb}"
    return None


def click_usage_errors():
    import click

    return (click.exceptions.UsageError,)


def check_input(data: bytes, *, fix: bool = True, cli: bool | None = None) -> list[Finding]:
    """Decode ``data`` as given and with checksums fixed; every finding, with timing."""
    findings = []
    variants = [data]
    if fix:
        fixed = fix_checksums(data)
        if fixed != data:
            variants.append(fixed)
    sample = int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "little")
    start = time.process_time()
    check_input.last_decoded = 0
    for variant in variants:
        try:
            # read/inspect/read_header share decode's path: run them on every success, and a sample
            check_input.last_decoded += _decode_all(variant, deep=sample % DEEP_EVERY == 0)
        except AssertionError as exc:
            findings.append(Finding("invariant", str(exc)[:80], str(exc), variant))
        except pladacodec.PladaError:
            pass
        except Exception as exc:  # anything else escaping is a finding
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            findings.append(Finding("exception", _key(exc), tb, variant))
    elapsed = time.process_time() - start
    if elapsed > TIME_LIMIT_S:
        findings.append(Finding("slow", f"slow>{TIME_LIMIT_S}s", f"{elapsed:.2f} s CPU for {len(data)} bytes", data))
    if cli is None:
        cli = sample % CLI_EVERY == 1
    if cli:
        cli_start = time.process_time()
        for variant in variants:
            problem = _run_cli(variant)
            if problem:
                findings.append(Finding("cli", problem.splitlines()[0][:120], problem, variant))
        cli_elapsed = time.process_time() - cli_start
        if cli_elapsed > CLI_TIME_LIMIT_S:
            findings.append(Finding("slow", f"cli-slow>{CLI_TIME_LIMIT_S}s",
                                    f"{cli_elapsed:.2f} s CPU in the CLI for {len(data)} bytes", data))
    check_input.last_elapsed = elapsed
    return findings


check_input.last_elapsed = 0.0
check_input.last_decoded = 0


def save_finding(directory: Path, finding: Finding) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(finding.data).hexdigest()[:12]
    path = directory / f"{finding.kind}-{digest}.plada"
    path.write_bytes(finding.data)
    path.with_suffix(".txt").write_text(f"{finding.kind}: {finding.key}\n\n{finding.detail}\n")
    return path


def load_seeds(corpus_dir: Path | None = None) -> list[bytes]:
    """The corpus on disk, or built in memory (always current) when no folder is given."""
    if corpus_dir is not None and Path(corpus_dir).is_dir():
        seeds = [p.read_bytes() for p in sorted(Path(corpus_dir).glob("*.plada"))]
        if seeds:
            return seeds
    import make_corpus

    return list(make_corpus.build_corpus().values())


def warm_up(seeds: list[bytes]) -> None:
    """Load numba's cache and import the CLI before anything is timed."""
    for s in seeds:
        check_input(s, cli=False)
    if seeds:
        _run_cli(seeds[0])


# --- the pure-Python mutation loop (CI and campaign) ------------------------------------


def mutation_loop(
    seeds: list[bytes],
    executions: int,
    *,
    seed: int = 0,
    modes: tuple[str, ...] = ("raw", "fixed", "structured"),
    time_budget_s: float | None = None,
    findings_dir: Path | None = None,
    cli_every: int = CLI_EVERY,
    progress_every: int = 0,
) -> dict:
    """Mutate seeds ``executions`` times (round-robin over ``modes``); returns statistics.

    ``raw``: byte mutations, decoded as is and with checksums fixed up;
    ``fixed``: byte mutations with checksums fixed up before decoding (the CRC
    path is skipped entirely); ``structured``: :func:`mutate_structured`.
    """
    rng = np.random.default_rng(seed)
    warm_up(seeds)
    stats = {"executions": 0, "findings": 0, "unique_findings": {}, "max_time_s": 0.0, "slowest_bytes": 0,
             "by_mode": {m: 0 for m in modes}, "decoded_ok": 0}
    started = time.perf_counter()
    for i in range(executions):
        if time_budget_s is not None and time.perf_counter() - started > time_budget_s:
            break
        mode = modes[i % len(modes)]
        base = seeds[int(rng.integers(len(seeds)))]
        try:
            if mode == "structured":
                data = mutate_structured(rng, base, seeds)
            else:
                data = mutate_bytes(rng, base, seeds)
                if mode == "fixed":
                    data = fix_checksums(data)
        except Exception as exc:  # a mutator bug is not a codec finding, but must not pass silently
            raise RuntimeError(f"mutator failed in mode {mode}") from exc
        findings = check_input(data, fix=(mode == "raw"), cli=(cli_every and i % cli_every == 0))
        elapsed = check_input.last_elapsed
        if elapsed > stats["max_time_s"]:
            stats["max_time_s"], stats["slowest_bytes"] = elapsed, len(data)
        stats["executions"] += 1
        stats["by_mode"][mode] += 1
        stats["decoded_ok"] += check_input.last_decoded
        for f in findings:
            stats["findings"] += 1
            if f.key not in stats["unique_findings"]:
                stats["unique_findings"][f.key] = f.kind
                if findings_dir is not None:
                    save_finding(Path(findings_dir), f)
        if progress_every and stats["executions"] % progress_every == 0:
            rate = stats["executions"] / (time.perf_counter() - started)
            print(f"[seed {seed}] {stats['executions']:,} execs, {rate:,.0f}/s, findings {stats['findings']}, "
                  f"max {stats['max_time_s'] * 1000:.1f} ms", flush=True)
    stats["seconds"] = time.perf_counter() - started
    return stats


# --- atheris entry point ----------------------------------------------------------------

_STATE = {"executions": 0, "max_time_s": 0.0, "findings": 0, "unique": {}, "findings_dir": None, "stats_path": None}


def _write_stats() -> None:
    if _STATE["stats_path"]:
        snapshot = {k: _STATE[k] for k in ("executions", "max_time_s", "findings", "unique")}
        tmp = _STATE["stats_path"] + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(snapshot, fh)
        os.replace(tmp, _STATE["stats_path"])


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris' name)
    findings = check_input(bytes(data))
    _STATE["executions"] += 1
    if check_input.last_elapsed > _STATE["max_time_s"]:
        _STATE["max_time_s"] = check_input.last_elapsed
        _write_stats()  # libFuzzer exits without running Python's atexit: keep the file current
    for f in findings:
        if _STATE["findings_dir"] is None:
            raise RuntimeError(f"{f.kind} finding {f.key}\n{f.detail}")
        _STATE["findings"] += 1
        if f.key not in _STATE["unique"]:
            _STATE["unique"][f.key] = f.kind
            save_finding(Path(_STATE["findings_dir"]), f)
            _write_stats()
    if _STATE["executions"] % 2000 == 0:
        _write_stats()


def main(argv: list[str]) -> None:
    import atheris

    args = list(argv)
    for flag in ("--findings", "--stats"):
        if flag in args:
            at = args.index(flag)
            _STATE["findings_dir" if flag == "--findings" else "stats_path"] = args[at + 1]
            del args[at : at + 2]
    warm_up(load_seeds(HERE / "corpus"))
    atheris.Setup(args, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
