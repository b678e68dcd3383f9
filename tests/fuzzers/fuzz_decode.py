"""Fuzz the .plada decoder: decode, read, inspect, read_header and (sampled) the CLI.

Every byte of a .plada file is covered by a CRC-32C, so random mutations mostly
exercise the checksum path.  Each input is therefore decoded twice: as given,
and with every checksum recomputed (header CRC, both section CRCs of every block,
whole-file CRC), so the parser and the coders behind the checksums see the
mutated bytes.  A third, structure-aware mutator (:func:`mutate_structured`)
edits one field or section of a real file and re-serialises it with correct
lengths and checksums; the pure-Python loop (:func:`mutation_loop`) uses all three.

A finding is any exception that is not a :class:`pladacodec.PladaError`, any
decoded payload that breaks the invariants (sorted unique indices below N,
labels below C), any CLI crash, and any input taking more than ``TIME_LIMIT_S``.

Coverage-guided, with atheris (libFuzzer flags pass through)::

    python tests/fuzzers/fuzz_decode.py tests/fuzzers/corpus -runs=100000
    python tests/fuzzers/fuzz_decode.py --findings /tmp/findings tests/fuzzers/corpus -runs=100000

Without ``--findings`` the first finding raises (libFuzzer saves the crash
input); with it, findings are written to that folder and fuzzing continues.
The campaign driver is ``bench/fuzz_campaign.py``.
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

TIME_LIMIT_S = 2.0  # one input (all its decodes) must finish within this
CLI_EVERY = 64  # run the CLI on one input in this many (by content hash)
DEEP_EVERY = 8  # also run read/inspect/read_header on failures of one input in this many
MAX_INPUT = 1 << 16

if __name__ == "__main__" or os.environ.get("PLADA_FUZZ_INSTRUMENT") == "1":
    import atheris  # coverage-instrument pladacodec for libFuzzer

    # numba compiles the kernels from their bytecode: instrumenting them breaks typing
    with atheris.instrument_imports(include=["pladacodec"], exclude=["pladacodec._kernels"]):
        import pladacodec
        from pladacodec import _container, _spec as S
else:
    import pladacodec
    from pladacodec import _container, _spec as S

import numpy as np

from pladacodec._bytes import crc32c, encode_varint


# --- checksum fix-up ---------------------------------------------------------------


def _lenient_varint(buf, pos: int, end: int):
    """(value, next position) or None when the varint runs past ``end`` / 10 bytes."""
    value = shift = 0
    for i in range(S.MAX_VARINT_BYTES):
        if pos >= end:
            return None
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    return None


def fix_checksums(data: bytes) -> bytes:
    """Recompute every CRC-32C the layout of ``data`` implies, as far as it parses.

    Walks preamble -> header -> blocks (entries, base, two sections) leniently:
    where a length runs past the end the walk stops, and the whole-file CRC of
    the trailer is recomputed last.  Bytes are never inserted or removed.
    """
    buf = bytearray(data)
    n = len(buf)
    if n < S.PREAMBLE_SIZE + S.HEADER_CRC_SIZE:
        return bytes(buf)
    (header_len,) = struct.unpack_from("<I", buf, 12)
    header_end = S.PREAMBLE_SIZE + header_len
    body_end = n - S.TRAILER_SIZE
    if header_end + S.HEADER_CRC_SIZE <= n:
        struct.pack_into(S.HEADER_CRC_FORMAT, buf, header_end, crc32c(bytes(buf[:header_end])))
        pos = header_end + S.HEADER_CRC_SIZE
        while pos < body_end:
            got = _lenient_varint(buf, pos, body_end)  # entries
            got = got and _lenient_varint(buf, got[1], body_end)  # base
            if not got:
                break
            pos = got[1]
            for _ in range(2):
                start = pos
                pos += 1  # method
                got = _lenient_varint(buf, pos, body_end)
                if not got:
                    break
                pos = got[1] + got[0]
                got = _lenient_varint(buf, pos, body_end) if pos <= body_end else None
                if not got:
                    break
                pos = got[1] + got[0]
                if pos + S.SECTION_CRC_SIZE > body_end:
                    break
                struct.pack_into(S.SECTION_CRC_FORMAT, buf, pos, crc32c(bytes(buf[start:pos])))
                pos += S.SECTION_CRC_SIZE
            else:
                continue
            break
    if body_end >= 0:
        struct.pack_into("<I", buf, body_end, crc32c(bytes(buf[:body_end])))
    return bytes(buf)


# --- structure-aware mutation -------------------------------------------------------


@dataclass
class Section:
    method: int
    params: bytes
    body: bytes


@dataclass
class Block:
    entries: int
    base: int
    sections: list[Section]


@dataclass
class Structure:
    """A .plada file as editable parts; :meth:`serialize` restores lengths and CRCs."""

    major: int
    minor: int
    flags: int
    fields: list[tuple[int, bytes]]
    blocks: list[Block] = field(default_factory=list)
    end_magic: bytes = S.END_MAGIC
    tail: bytes = b""  # bytes after the trailer

    @classmethod
    def parse(cls, data: bytes) -> "Structure":
        """Split a *valid* file into parts (raises on anything unexpected)."""
        _, major, minor, flags, header_len = struct.unpack_from(S.PREAMBLE_FORMAT, data)
        pos, end = S.PREAMBLE_SIZE, S.PREAMBLE_SIZE + header_len
        fields = []
        while pos < end:
            tag, pos = _lenient_varint(data, pos, end)
            length, pos = _lenient_varint(data, pos, end)
            fields.append((tag, bytes(data[pos : pos + length])))
            pos += length
        pos += S.HEADER_CRC_SIZE
        blocks = []
        body_end = len(data) - S.TRAILER_SIZE
        while pos < body_end:
            entries, pos = _lenient_varint(data, pos, body_end)
            base, pos = _lenient_varint(data, pos, body_end)
            sections = []
            for _ in range(2):
                method = data[pos]
                plen, pos = _lenient_varint(data, pos + 1, body_end)
                params = bytes(data[pos : pos + plen])
                blen, pos = _lenient_varint(data, pos + plen, body_end)
                body = bytes(data[pos : pos + blen])
                pos += blen + S.SECTION_CRC_SIZE
                sections.append(Section(method, params, body))
            blocks.append(Block(entries, base, sections))
        return cls(major, minor, flags, fields, blocks, bytes(data[-4:]))

    def serialize(self) -> bytes:
        body = b"".join(encode_varint(t) + encode_varint(len(v)) + v for t, v in self.fields)
        head = struct.pack(S.PREAMBLE_FORMAT, S.MAGIC, self.major & 0xFF, self.minor & 0xFF, self.flags & 0xFFFF, len(body)) + body
        out = bytearray(head + struct.pack(S.HEADER_CRC_FORMAT, crc32c(head)))
        for block in self.blocks:
            out += encode_varint(block.entries) + encode_varint(block.base)
            for s in block.sections:
                sec = bytes([s.method & 0xFF]) + encode_varint(len(s.params)) + s.params + encode_varint(len(s.body)) + s.body
                out += sec + struct.pack(S.SECTION_CRC_FORMAT, crc32c(sec))
        out += struct.pack("<I", crc32c(bytes(out))) + self.end_magic + self.tail
        return bytes(out)


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


def mutate_structured(rng, data: bytes, others=()) -> bytes:
    """Edit one part of a valid file, then re-serialise with right lengths and checksums."""
    st = Structure.parse(data)
    choice = int(rng.integers(0, 12))
    if choice == 0:  # version / flags
        st.major, st.minor, st.flags = (
            int(rng.choice([st.major, 0, 2, 255])), int(rng.integers(0, 256)), int(rng.choice([0, 0, 1, 0x100, 0x8000]))
        )
    elif choice in (1, 2) and st.fields:  # header field value: interesting varint or mutated bytes
        i = int(rng.integers(len(st.fields)))
        tag, value = st.fields[i]
        new = encode_varint(_interesting_int(rng)) if choice == 1 else mutate_bytes(rng, value, others)
        st.fields[i] = (tag, new)
    elif choice == 3:  # add / drop / duplicate / retag a header field
        op = int(rng.integers(0, 4))
        if op == 0:
            st.fields.insert(int(rng.integers(len(st.fields) + 1)),
                             (int(rng.choice([7, 9, 11, 10, 12, 127, 129, 1 << 20])), bytes(rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8))))
        elif op == 1 and st.fields:
            del st.fields[int(rng.integers(len(st.fields)))]
        elif op == 2 and st.fields:
            st.fields.append(st.fields[int(rng.integers(len(st.fields)))])
        elif st.fields:
            i = int(rng.integers(len(st.fields)))
            st.fields[i] = (int(rng.integers(0, 16)), st.fields[i][1])
    elif st.blocks and choice in (4, 5, 6, 7, 8, 9, 10):
        block = st.blocks[int(rng.integers(len(st.blocks)))]
        section = block.sections[int(rng.integers(2))]
        if choice == 4:
            block.entries = _interesting_int(rng) if rng.random() < 0.5 else max(0, block.entries + int(rng.integers(-2, 3)))
        elif choice == 5:
            block.base = _interesting_int(rng) if rng.random() < 0.5 else max(0, block.base + int(rng.integers(-2, 3)))
        elif choice == 6:
            section.method = int(rng.choice([0, 1, 2, 3, 4, 255]))
        elif choice == 7:
            section.params = mutate_bytes(rng, section.params, others)
        elif choice in (8, 9):
            section.body = mutate_bytes(rng, section.body, others, max_ops=2 if choice == 8 else 6)
        else:  # swap a section with one from another block / another file's section
            donor = None
            if others and rng.random() < 0.5:
                try:
                    other = Structure.parse(others[int(rng.integers(len(others)))])
                    if other.blocks:
                        donor = other.blocks[int(rng.integers(len(other.blocks)))].sections[int(rng.integers(2))]
                except Exception:
                    donor = None
            if donor is None:
                donor = st.blocks[int(rng.integers(len(st.blocks)))].sections[int(rng.integers(2))]
            block.sections[int(rng.integers(2))] = Section(donor.method, donor.params, donor.body)
    elif choice == 11:  # blocks: drop, duplicate, or garbage after the trailer / bad end magic
        op = int(rng.integers(0, 3))
        if op == 0 and st.blocks:
            del st.blocks[int(rng.integers(len(st.blocks)))]
        elif op == 1 and st.blocks:
            st.blocks.append(st.blocks[-1])
        else:
            st.end_magic = bytes(rng.integers(0, 256, 4, dtype=np.uint8)) if rng.random() < 0.5 else st.end_magic
            st.tail = bytes(rng.integers(0, 256, int(rng.integers(0, 8)), dtype=np.uint8))
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
    start = time.perf_counter()
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
    if cli is None:
        cli = sample % CLI_EVERY == 1
    if cli:
        for variant in variants:
            problem = _run_cli(variant)
            if problem:
                findings.append(Finding("cli", problem.splitlines()[0][:120], problem, variant))
    elapsed = time.perf_counter() - start
    if elapsed > TIME_LIMIT_S:
        findings.append(Finding("slow", f"slow>{TIME_LIMIT_S}s", f"{elapsed:.2f} s for {len(data)} bytes", data))
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
