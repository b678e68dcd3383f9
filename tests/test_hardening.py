"""Regression tests for issue 19: what careless and hostile use of the paths around the codec found.

Each test names the finding it pins (the issue's numbering).  Memory is measured in a child
process (its own peak RSS), and anything that would read without bound on a broken build runs
in a child under an address-space limit, so a regression fails the test instead of the machine.
"""

from __future__ import annotations

import functools
import io
import json
import os
import signal
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest

import pladacodec
from pladacodec import _container
from pladacodec import _spec as S
from pladacodec._bytes import Reader
from common import SMALL_INDICES, SMALL_LABELS, SMALL_N, write_small_npz



def run_cli(args):
    """``pladacodec ARGS`` in-process (stderr kept apart); exceptions propagate, so a traceback fails."""
    from click.testing import CliRunner

    from pladacodec_cli.app import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

INDICES, LABELS, N = SMALL_INDICES, SMALL_LABELS, SMALL_N
FINGERPRINT = bytes(range(32))


def assert_one_line_error(result, exit_code: int, pattern: str = "") -> None:
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert pattern.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def npz(tmp_path):
    return write_small_npz(tmp_path / "sel.npz")


@pytest.fixture
def task(tmp_path):
    path = tmp_path / "task.plada"
    pladacodec.write(path, INDICES, LABELS, N, reference_fingerprint=FINGERPRINT)
    return path


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@functools.lru_cache(maxsize=None)
def consecutive_file(blocks: int, block_entries: int = S.MAX_BLOCK_ENTRIES) -> bytes:
    """A valid file of ``blocks`` full blocks of consecutive indices, label 0: the issue's
    decompression bomb (a few dozen bytes per 2^20 entries).  One block is encoded; the
    others repeat its sections with their own base, which the sections do not depend on."""
    first = _first_block(block_entries)
    scanned = _container.scan_block(Reader(first), block_entries, True)
    (index_method, _, index), (label_method, _, label) = scanned.index, scanned.label
    index_bytes = first[index.offset : index.offset + index.size]
    label_bytes = first[label.offset : label.offset + label.size]
    k = blocks * block_entries
    parts = [_container.encode_header(_container.Header(k, k, 1, block_entries)), first]
    if blocks == 1:  # no header CRC: the block's covers the header (FORMAT.md §1)
        parts[1] = _container.seal_one_block(parts[0], first)
    parts += [
        _container.frame_block(index_method, index_bytes, label_method, label_bytes, b * block_entries, False)
        for b in range(1, blocks)
    ]
    return b"".join(parts)


@functools.lru_cache(maxsize=None)
def _first_block(block_entries: int) -> bytes:
    return _container.encode_block_options(  # static methods: their sections do not depend on the base
        np.arange(block_entries, dtype=np.uint64), np.zeros(block_entries, dtype=np.int64), 0, 1, True,
        [S.INDEX_GOLOMB], [S.LABEL_IID],
    ).data


_CHILD = """
import resource, sys
limit = int(sys.argv[1])
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from pladacodec_cli.app import main
args, code = sys.argv[3:], 0
while args and not code:  # commands separated by "::", one process (imports cost seconds)
    command = args[: args.index("::")] if "::" in args else args
    args = args[len(command) + 1 :]
    try:
        main(command, prog_name="pladacodec")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
with open(sys.argv[2], "w") as fh:
    fh.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024))
sys.exit(code)
"""


def run_child(args, tmp_path, *, limit_bytes: int = 6 << 30, timeout: float = 120, stdout: list | None = None):
    """``pladacodec ARGS`` in a child process (several commands: separated by ``"::"``); returns
    (exit status, stderr, peak RSS in MB), and appends its stdout to ``stdout`` if given."""
    rss_file = tmp_path / f"rss-{len(list(tmp_path.iterdir()))}.txt"
    cmd = [sys.executable, "-c", _CHILD, str(limit_bytes), str(rss_file), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    rss = int(rss_file.read_text()) if rss_file.exists() else None
    if stdout is not None:
        stdout.append(proc.stdout)
    return proc.returncode, proc.stderr, rss


@pytest.fixture(scope="module")
def baseline_rss(tmp_path_factory):
    """Peak RSS (MB) of ``verify`` and ``unpack`` on a 6-entry task: the process's own size."""
    root = tmp_path_factory.mktemp("baseline")
    pladacodec.write(root / "small.plada", INDICES, LABELS, N)
    code, stderr, rss = run_child(
        ["verify", root / "small.plada", "::", "unpack", root / "small.plada", "-o", root / "small.csv"], root
    )
    assert code == 0, stderr
    return rss


def assert_child_error(code, stderr, exit_code, pattern=""):
    assert code == exit_code, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern.lower() in lines[0].lower(), stderr


# --- 1. the output path ---------------------------------------------------------------------


def _fifo_reader(path, into: list):
    def read():
        with open(path, "rb") as fh:
            into.append(fh.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("command", ["pack", "unpack"])
def test_1_output_fifo_is_written_not_replaced(tmp_path, npz, task, command):
    fifo = tmp_path / ("out.plada" if command == "pack" else "out.csv")
    os.mkfifo(fifo)
    got: list = []
    thread = _fifo_reader(fifo, got)
    args = ["pack", npz, "-o", fifo, "--n-reference", N] if command == "pack" else ["unpack", task, "-o", fifo]
    result = run_cli(args)
    thread.join(30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    if command == "pack":
        assert pladacodec.decode(got[0]).k == len(INDICES)
    else:
        assert got[0].decode().splitlines()[0] == "index,label" and len(got[0].decode().splitlines()) == 7


def test_1_output_device_is_written_not_replaced(tmp_path, npz):
    device = tmp_path / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a private /dev/null
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    result = run_cli(["pack", npz, "-o", device, "--n-reference", N])
    assert result.exit_code == 0, result.output
    assert stat.S_ISCHR(os.lstat(device).st_mode)


def test_1_output_dev_stdout_to_a_pipe(tmp_path, npz):
    """`-o /dev/stdout` is a link to a pipe: written in place, not renamed over."""
    proc = subprocess.run(
        [sys.executable, "-c", "from pladacodec_cli.app import main; main()", "pack", str(npz), "-o", "/dev/stdout",
         "--n-reference", str(N)], capture_output=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(S.MAGIC)


def test_1_output_symlink_is_followed_and_its_target_replaced(tmp_path, npz):
    target = tmp_path / "real" / "task.plada"
    target.parent.mkdir()
    target.write_bytes(b"old")
    link = tmp_path / "link.plada"
    link.symlink_to(target)
    result = run_cli(["pack", npz, "-o", link, "--n-reference", N])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert pladacodec.read(target).k == len(INDICES)
    assert [p.name for p in target.parent.iterdir()] == ["task.plada"]  # the temp file was in the target's folder
    dangling = tmp_path / "dangling.plada"
    dangling.symlink_to(tmp_path / "real" / "new.plada")
    pladacodec.write(dangling, INDICES, LABELS, N)
    assert dangling.is_symlink() and pladacodec.read(tmp_path / "real" / "new.plada").k == len(INDICES)


def test_1_output_directory_is_a_clear_error(tmp_path, npz):
    (tmp_path / "dir.plada").mkdir()
    assert_one_line_error(run_cli(["pack", npz, "-o", tmp_path / "dir.plada", "--n-reference", N]), 1, "directory")


# --- 2. file modes --------------------------------------------------------------------------


def test_2_new_files_honour_the_umask(tmp_path, npz, task, umask_022):
    assert run_cli(["pack", npz, "-o", tmp_path / "a.plada", "--n-reference", N]).exit_code == 0
    assert run_cli(["unpack", task, "-o", tmp_path / "a.csv"]).exit_code == 0
    assert run_cli(["unpack", task, "-o", tmp_path / "a.npz"]).exit_code == 0
    pladacodec.write(tmp_path / "b.plada", INDICES, LABELS, N)
    from pladacodec._stream import write_stream

    write_stream(tmp_path / "c.plada", [(np.array([1, 2]), np.array([0, 1]))], n_reference=N, n_selected=2, n_classes=2)
    for name in ("a.plada", "a.csv", "a.npz", "b.plada", "c.plada"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name


def test_2_a_replaced_file_keeps_its_mode(tmp_path, npz, task, umask_022):
    for name in ("a.plada", "a.csv", "b.plada"):
        (tmp_path / name).write_bytes(b"old")
        os.chmod(tmp_path / name, 0o640)
    assert run_cli(["pack", npz, "-o", tmp_path / "a.plada", "--n-reference", N]).exit_code == 0
    assert run_cli(["unpack", task, "-o", tmp_path / "a.csv"]).exit_code == 0
    pladacodec.write(tmp_path / "b.plada", INDICES, LABELS, N)
    for name in ("a.plada", "a.csv", "b.plada"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o640, name


# --- 3. bounded reading ---------------------------------------------------------------------


def test_3_a_small_file_reads_under_an_address_space_limit(tmp_path, task):
    """Reading asked for MAX_FILE_SIZE + 1 bytes up front: a 77-byte file failed under ulimit -v 4 GB."""
    args = ["inspect", task, "::", "verify", task, "::", "unpack", task, "-o", tmp_path / "x.csv"]
    code, stderr, _ = run_child(args, tmp_path, limit_bytes=3_500 << 20)
    assert code == 0, stderr  # pladacodec.read() under the same limit: test_3_reading_checks_the_magic_first...


class _Endless(io.RawIOBase):
    """An endless stream of one byte that fails the test if asked for a large read."""

    def __init__(self, byte: bytes = b"\0", limit: int = 16 << 20):
        self.byte, self.limit, self.total = byte, limit, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        assert len(buffer) <= self.limit, f"asked for {len(buffer):,} bytes at once"
        assert self.total < self.limit, "kept reading a stream that is not a .plada file"
        buffer[:] = self.byte * len(buffer)
        self.total += len(buffer)
        return len(buffer)


_ENDLESS_READS = """
import io, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3_500 << 20, 3_500 << 20))
sys.path.insert(0, sys.argv[1])
import pytest, pladacodec
from test_hardening import _Endless
for source in (_Endless(), io.BufferedReader(_Endless())):
    with pytest.raises(pladacodec.PladaFormatError, match="magic"):
        pladacodec.read(source)
with pytest.raises(pladacodec.PladaFormatError, match="magic"):
    pladacodec.inspect(io.BufferedReader(_Endless()))
task = sys.argv[2]  # a small file reads under the limit (it asked for 4 GiB up front)
assert pladacodec.read(task).k == 6
with open(task, "rb") as fh:
    assert pladacodec.read(fh).k == 6
"""


def test_3_reading_checks_the_magic_first_and_reads_in_bounded_chunks(tmp_path, task, baseline_rss):
    """An endless stream is refused after its first bytes (in a child: a regression reads for ever)."""
    proc = subprocess.run([sys.executable, "-c", _ENDLESS_READS, os.path.dirname(__file__), str(task)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # A valid preamble followed by endless bytes: read in chunks, refused at the size limit at the latest.
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:  # sparse: 300 MB of zeros without writing them
        fh.truncate(300 << 20)
    code, stderr, rss = run_child(["inspect", big], tmp_path)
    assert_child_error(code, stderr, 2, "magic")
    assert rss < baseline_rss + 100, (rss, baseline_rss)  # the 300 MB file is never read whole


def test_3_inspect_dev_zero_is_refused_at_once(tmp_path):
    code, stderr, rss = run_child(["inspect", "/dev/zero"], tmp_path, limit_bytes=3_500 << 20, timeout=60)
    assert_child_error(code, stderr, 2, "magic")


def test_3_verify_reference_reads_a_fifo_task_once(tmp_path, task):
    """`verify --reference` read the task twice: a FIFO hung it, `<(cat task.plada)` read as empty."""
    from pladacodec.reference import Reference

    (tmp_path / "ref").mkdir()
    for i in range(N):
        (tmp_path / "ref" / f"{i:03d}.png").write_bytes(b"")
    pladacodec.write(task, INDICES, LABELS, N, reference_fingerprint=Reference.from_dir(tmp_path / "ref").fingerprint)
    fifo = tmp_path / "task.fifo"
    os.mkfifo(fifo)
    proc = subprocess.run(  # one child: the task from a FIFO, then from bash's <(cat task.plada)
        ["bash", "-c", 'cat "$3" > "$4" & "$0" -c "$1" 0 "$2" verify "$4" --reference "$5" :: '
         'verify <(cat "$3") --reference "$5"',
         sys.executable, _CHILD, str(tmp_path / "rss.txt"), str(task), str(fifo), str(tmp_path / "ref")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("matches") == 2, proc.stdout


# --- 4. decompression bombs -------------------------------------------------------------------


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    path = tmp_path_factory.mktemp("bomb") / "bomb.plada"
    path.write_bytes(consecutive_file(16))  # 2^24 entries
    return path


def test_4_verify_and_inspect_peak_memory_does_not_grow_with_k(tmp_path, bomb, baseline_rss):
    assert bomb.stat().st_size < 4096
    out: list = []
    code, stderr, rss = run_child(["verify", bomb, "::", "inspect", "--json", bomb], tmp_path, stdout=out)
    assert code == 0, stderr
    assert rss - baseline_rss < 120, (rss, baseline_rss)  # the whole task would be 256 MB, 700 MB with copies
    report = json.loads(out[0][out[0].index("{") :])
    assert report["k"] == 1 << 24 and report["blocks"] == 16 and report["class_histogram"] == [1 << 24]


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_4_unpack_streams(tmp_path, suffix, baseline_rss):
    path = tmp_path / "bomb4.plada"
    path.write_bytes(consecutive_file(4))  # 2^22 entries: 64 MB of arrays, 40 MB of CSV
    code, stderr, rss = run_child(["unpack", path, "-o", tmp_path / f"out{suffix}"], tmp_path)
    assert code == 0, stderr
    assert rss - baseline_rss < 120, (rss, baseline_rss)
    out = tmp_path / f"out{suffix}"
    if suffix == ".csv":
        with open(out, "rb") as fh:
            assert fh.readline() == b"index,label\n" and fh.readline() == b"0,0\n"
            fh.seek(-20, os.SEEK_END)
            assert fh.read().endswith(f"\n{(1 << 22) - 1},0\n".encode())
        k = 1 << 22
        digits = sum((min(k, 10**d) - min(k, 10 ** (d - 1) if d > 1 else 0)) * d for d in range(1, 8))
        assert out.stat().st_size == digits + 3 * k + len("index,label\n")
    else:
        with np.load(out) as z:
            assert np.array_equal(z["indices"], np.arange(1 << 22, dtype=np.uint64))
            assert not z["labels"].any() and z["labels"].dtype == np.int64 and int(z["n_reference"]) == 1 << 22


def test_4_unpack_streamed_output_matches_decode(tmp_path):
    rng = np.random.default_rng(4)
    idx = np.sort(rng.choice(10**12, 3000, replace=False))
    lab = rng.integers(0, 300, 3000)
    names = [f"c{i}" for i in range(300)]
    task = tmp_path / "t.plada"
    pladacodec.write(task, idx, lab, 10**12, class_names=names, block_entries=700)
    assert run_cli(["unpack", task, "-o", tmp_path / "t.csv"]).exit_code == 0
    rows = np.loadtxt(tmp_path / "t.csv", delimiter=",", skiprows=1, dtype=np.int64)
    assert np.array_equal(rows[:, 0], idx) and np.array_equal(rows[:, 1], lab)
    assert run_cli(["unpack", task, "-o", tmp_path / "t.npz"]).exit_code == 0
    with np.load(tmp_path / "t.npz") as z:
        assert np.array_equal(z["indices"], idx) and np.array_equal(z["labels"], lab)
        assert list(z["class_names"]) == names


def test_4_a_damaged_bomb_leaves_no_output(tmp_path):
    data = bytearray(consecutive_file(2))
    data[-1] ^= 1  # the last block's checksum: its first block was good
    path = tmp_path / "bad.plada"
    path.write_bytes(bytes(data))
    for out in ("out.csv", "out.npz"):
        assert_one_line_error(run_cli(["unpack", path, "-o", tmp_path / out]), 2, "checksum")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.plada"]


def test_4_decode_max_entries_is_documented_and_enforced():
    doc = pladacodec.decode.__doc__
    assert "max_entries" in doc and "bytes per entry" in doc
    blob = consecutive_file(2, 1 << 10)
    assert pladacodec.decode(blob).k == 1 << 11
    with pytest.raises(pladacodec.PladaFormatError, match="max_entries"):
        pladacodec.decode(blob, max_entries=(1 << 11) - 1)


def test_4_memory_error_is_a_plada_error(monkeypatch, task, tmp_path):
    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(_container, "decode_container", no_memory)
    with pytest.raises(pladacodec.PladaError, match="memory") as info:
        pladacodec.read(task)
    assert isinstance(info.value, MemoryError)
    monkeypatch.setattr(_container, "decode_block", no_memory)
    for args in (["verify", task], ["inspect", task], ["unpack", task, "-o", tmp_path / "x.csv"]):
        assert_one_line_error(run_cli(args), 1, "memory")


# --- 6. class names and metadata --------------------------------------------------------------


@pytest.mark.parametrize("names, pattern", [(["a", "b", "a"], "duplicate"), (["a", "", "c"], "empty")])
def test_6_duplicate_and_empty_class_names_are_refused(names, pattern, tmp_path, npz):
    with pytest.raises(pladacodec.PladaEncodeError, match=pattern):
        pladacodec.encode([0, 1, 2], [0, 1, 2], 5, class_names=names)
    classes = tmp_path / "names.txt"
    classes.write_text("\n".join(names) + "\n")
    result = run_cli(["pack", npz, "-o", tmp_path / "t.plada", "--n-reference", N, "--classes", classes])
    assert_one_line_error(result, 1, pattern)


def test_6_inspect_escapes_control_characters_in_names(tmp_path):
    path = tmp_path / "t.plada"
    pladacodec.write(path, [1, 2, 3], [0, 1, 2], 5, class_names=["\x1b[31mred", "two\nforged: line", "tab\there\u202e"])
    result = run_cli(["inspect", path])
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout and "\t" not in result.stdout
    assert "\\x1b[31mred" in result.stdout and "two\\nforged: line" in result.stdout
    assert not any(line.startswith("forged") for line in result.stdout.splitlines())


def test_6_nan_in_metadata_is_refused_on_write(tmp_path, npz):
    for value in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(pladacodec.PladaEncodeError):
            pladacodec.encode([1], [0], 3, metadata={"x": [value]})
    result = run_cli(["pack", npz, "-o", tmp_path / "t.plada", "--n-reference", N, "--metadata", '{"x": NaN}'])
    assert_one_line_error(result, 1, "metadata")


def test_6_inspect_json_stays_json_for_a_file_holding_nan(tmp_path, monkeypatch):
    """A file from a writer that let NaN through: `inspect --json` printed invalid JSON."""
    data = pladacodec.encode([1], [0], 3)
    header = pladacodec.read_header(data)
    old_head = _container.encode_header(header)
    assert data.startswith(old_head)
    monkeypatch.setattr(_container, "canonical_json", lambda obj: json.dumps(obj).encode())  # NaN allowed
    head = _container.encode_header(_container.Header(3, 1, 1, header.block_entries, metadata={"x": float("nan")}))
    monkeypatch.undo()
    path = tmp_path / "nan.plada"
    path.write_bytes(head + _container.seal_one_block(head, data[len(old_head) :]))  # one block: its CRC covers the header
    result = run_cli(["inspect", "--json", path])
    if result.exit_code == 0:
        json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    else:
        assert_one_line_error(result, 2, "metadata")


# --- 7. tracebacks on user input --------------------------------------------------------------


def test_7_csv_integer_of_5000_digits(tmp_path):
    path = tmp_path / "sel.csv"
    path.write_text("index,label\n" + "9" * 5000 + ",0\n")
    assert_one_line_error(run_cli(["pack", path, "-o", tmp_path / "t.plada", "--n-reference", N]), 1, "line 2")


def test_7_metadata_nested_5000_deep(tmp_path, npz):
    deep = "[" * 5000 + "]" * 5000
    result = run_cli(["pack", npz, "-o", tmp_path / "t.plada", "--n-reference", N, "--metadata", f'{{"a": {deep}}}'])
    assert_one_line_error(result, 1, "metadata")
    nested: dict = {}
    for _ in range(5000):
        nested = {"a": nested}
    with pytest.raises(pladacodec.PladaEncodeError, match="metadata"):
        pladacodec.encode([1], [0], 3, metadata=nested)


def test_7_read_of_a_text_mode_file(task):
    with open(task, encoding="latin-1") as fh, pytest.raises(pladacodec.PladaError, match="binary"):
        pladacodec.read(fh)
    with open(task, encoding="utf-8") as fh, pytest.raises(pladacodec.PladaError, match="binary"):
        pladacodec.read(fh)
    with pytest.raises(pladacodec.PladaError, match="binary"):
        pladacodec.inspect(io.StringIO("text"))


def test_7_write_to_a_text_stream():
    with pytest.raises(pladacodec.PladaError, match="binary"):
        pladacodec.write(io.StringIO(), INDICES, LABELS, N)
    buffer = io.BytesIO()
    assert pladacodec.write(buffer, INDICES, LABELS, N) == len(buffer.getvalue())


def test_7_csv_input_symlinked_to_dev_zero(tmp_path):
    link = tmp_path / "sel.csv"
    link.symlink_to("/dev/zero")
    code, stderr, _ = run_child(["pack", link, "-o", tmp_path / "t.plada", "--n-reference", N], tmp_path,
                                limit_bytes=3_500 << 20, timeout=60)
    assert_child_error(code, stderr, 1, "line 1")
    classes = tmp_path / "names.txt"
    classes.symlink_to("/dev/zero")
    npz = tmp_path / "sel.npz"
    np.savez(npz, indices=np.array(INDICES), labels=np.array(LABELS))
    code, stderr, _ = run_child(["pack", npz, "-o", tmp_path / "t.plada", "--n-reference", N, "--classes", classes],
                                tmp_path, limit_bytes=3_500 << 20, timeout=60)
    assert_child_error(code, stderr, 1, "names.txt")


# --- 8. smaller items -------------------------------------------------------------------------


def test_8_pack_prints_what_it_wrote_without_reading_it_back(tmp_path, npz, monkeypatch):
    import pathlib

    def no_reread(self, *args, **kwargs):
        raise AssertionError(f"re-read {self}")

    monkeypatch.setattr(pathlib.Path, "read_bytes", no_reread)
    result = run_cli(["pack", npz, "-o", tmp_path / "t.plada", "--n-reference", N])
    assert result.exit_code == 0, result.output
    assert "k = 6 of N = 100, C = 3" in result.stdout


_KILLED_WRITER = """
import os, signal, sys
import pladacodec
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # dies between write and rename
pladacodec.write(sys.argv[1], [1, 2, 3], [0, 1, 0], 10)
"""


def test_8_stale_temp_files_of_a_killed_writer_are_removed(tmp_path):
    target = tmp_path / "task.plada"
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(target)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0] != "task.plada", left  # the killed writer's temp file
    other = tmp_path / "other.plada"
    pladacodec.write(other, [1], [0], 3)  # another target's writer leaves it alone ...
    assert len(list(tmp_path.iterdir())) == 2
    pladacodec.write(target, [1], [0], 3)  # ... the same target's next writer removes it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.plada", "task.plada"]


def test_8_unpack_pack_through_npz_keeps_every_header_field(tmp_path):
    task = tmp_path / "t.plada"
    names = ["a\0", "b\0\0", "c"]
    metadata = {"teacher": "vit", "nested": {"x": [1, 2.5, None]}}
    pladacodec.write(task, INDICES, LABELS, N, class_names=names, reference_fingerprint=FINGERPRINT, metadata=metadata)
    assert run_cli(["unpack", task, "-o", tmp_path / "sel.npz"]).exit_code == 0
    assert run_cli(["pack", tmp_path / "sel.npz", "-o", tmp_path / "again.plada"]).exit_code == 0
    before, after = pladacodec.read(task), pladacodec.read(tmp_path / "again.plada")
    assert after == before
    assert after.class_names == tuple(names) and after.metadata == metadata and after.reference_fingerprint == FINGERPRINT
    # Options on the command line win over what the selection file carries.
    result = run_cli(["pack", tmp_path / "sel.npz", "-o", tmp_path / "c.plada", "--metadata", '{"b": 1}',
                      "--fingerprint", "ab" * 32])
    assert result.exit_code == 0, result.output
    third = pladacodec.read(tmp_path / "c.plada")
    assert third.metadata == {"b": 1} and third.reference_fingerprint == bytes([0xAB]) * 32


def test_3_4_block_by_block_report_equals_the_in_memory_one(tmp_path):
    """The CLI's inspect (one block at a time, pipes too) reports what pladacodec.inspect does."""
    from pladacodec._stream import iter_read, summarize

    rng = np.random.default_rng(34)
    idx = np.sort(rng.choice(10**6, 3000, replace=False))
    lab = rng.integers(0, 5, 3000)
    for block_entries in (None, 700):
        blob = pladacodec.encode(idx, lab, 10**6, class_names=list("abcde"), metadata={"m": 1},
                                 reference_fingerprint=FINGERPRINT, block_entries=block_entries,
                                 label_methods=[S.LABEL_IID])
        read_end, write_end = os.pipe()
        threading.Thread(target=lambda: (os.write(write_end, blob), os.close(write_end)), daemon=True).start()
        with os.fdopen(read_end, "rb") as pipe:
            assert summarize(pipe).as_dict() == pladacodec.inspect(blob).as_dict()
    read_end, write_end = os.pipe()
    threading.Thread(target=lambda: (os.write(write_end, blob), os.close(write_end)), daemon=True).start()
    with os.fdopen(read_end, "rb") as pipe:
        assert pladacodec.read(pipe) == pladacodec.decode(blob)  # read() of a pipe: chunks, no seek
    read_end, write_end = os.pipe()
    threading.Thread(target=lambda: (os.write(write_end, blob), os.close(write_end)), daemon=True).start()
    with os.fdopen(read_end, "rb") as pipe, pytest.raises(pladacodec.PladaError, match="verify_first=False"):
        list(iter_read(pipe))
    with pytest.raises(pladacodec.PladaFormatError, match="unexpected bytes"):
        summarize(io.BufferedReader(io.BytesIO(blob + b"x")))
