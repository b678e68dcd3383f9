"""Bounded fuzzing of the command line itself (issue 19): not only ``decode``, but ``pack``,
``unpack``, ``inspect`` and ``verify`` on mutated files and arguments.

Hypothesis draws a command, its options and input files (valid seeds with flipped bits,
truncations, spliced bytes, or raw bytes) and runs it in-process through click's CliRunner.
Every run must end with a documented exit status (0-4), no traceback, and on failure exactly
one ``error: ...`` line on stderr (click's own usage errors keep their ``Usage:`` form).
About 150 runs, a few seconds: the long campaign for the decoder is
``python bench/fuzz_campaign.py``.
"""

from __future__ import annotations

import os
import tempfile
import traceback

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pladacodec

N = 1000
_INDICES = np.array([3, 14, 15, 92, 653, 589, 793, 238, 462, 643, 383, 279, 0, 999])
_LABELS = np.array([0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 2, 1])


def _seeds() -> dict[str, bytes]:
    from io import BytesIO

    task = pladacodec.encode(
        _INDICES, _LABELS, N, class_names=["cat", "dog", "éléphant"], reference_fingerprint=bytes(range(32)),
        metadata={"teacher": "fuzz", "n": [1, 2.5, None]},
    )
    blocks = pladacodec.encode(_INDICES, _LABELS, N, block_entries=4)
    empty = pladacodec.encode([], [], 10, n_classes=2)
    csv = "index,label\n" + "".join(f"{i},{c}\n" for i, c in zip(_INDICES, _LABELS))
    buffer = BytesIO()
    np.savez(buffer, indices=_INDICES, labels=_LABELS, n_reference=np.int64(N), class_names=np.array(["a", "b", "c"]))
    return {
        "task": task, "blocks": blocks, "empty": empty, "csv": csv.encode(), "npz": buffer.getvalue(),
        "names": b"cat\ndog\nelephant\n",
    }


SEEDS = _seeds()

mutated = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 16), st.just(0)),
    st.tuples(st.just("splice"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("keep"), st.just(0), st.just(0)),
)


def _mutate(data: bytes, how) -> bytes:
    kind, at, arg = how
    if not data or kind == "keep":
        return data
    at %= len(data)
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ (1 << arg)]) + data[at + 1 :]
    if kind == "truncate":
        return data[:at]
    return data[:at] + arg + data[at + len(arg) :]


def input_files(kinds):
    return st.one_of(st.tuples(st.sampled_from(kinds), mutated), st.tuples(st.just("raw"), st.binary(max_size=64)))


numbers = st.sampled_from(["0", "1", "3", "14", "999", "1000", "1001", "-1", "1099511627777", "x", "1e3", "9" * 50])
texts = st.sampled_from(['{"a": 1}', "{}", "[]", "nope", '{"a": NaN}', '{"a": ' * 50, "", "null", '{"a": "\\u0000"}'])
PLADA = ["task", "blocks", "empty"]
# Each command with its own inputs, options and outputs, so that most runs get past parsing.
COMMANDS = {
    "pack": (
        ["csv", "npz", "task"],
        [
            st.tuples(st.just("--n-reference"), st.one_of(st.just("1000"), numbers)),
            st.tuples(st.just("--n-classes"), numbers),
            st.tuples(st.just("--classes"), st.just("@names")),
            st.tuples(st.just("--fingerprint"), st.sampled_from(["00" * 32, "zz", "ab" * 31, ""])),
            st.tuples(st.just("--metadata"), texts),
            st.tuples(st.just("--format-version"), st.sampled_from(["2.0", "1.5", "x"])),
        ],
        ["out.plada", "out.plada", "dir", "missing/out.plada", "link.csv"],
    ),
    "unpack": (
        PLADA,
        [st.tuples(st.just("--reference-manifest"), st.sampled_from(["@missing", "@input"]))],
        ["out.csv", "out.npz", "out.csv", "out.npz", "out.txt", "dir", "missing/out.csv", "link.csv"],
    ),
    "inspect": (PLADA, [st.tuples(st.just("--json"), st.none()), st.tuples(st.just("--top"), numbers)], [None]),
    "verify": (PLADA, [st.tuples(st.just("--reference"), st.sampled_from(["@ref", "@missing", "@input"]))], [None]),
}
suffixes = {"task": ".plada", "blocks": ".plada", "empty": ".plada", "csv": ".csv", "npz": ".npz", "names": ".txt"}


def _setup(root: str, source, command: str) -> str:
    kind, how = source
    data = _mutate(SEEDS[kind], how) if kind != "raw" else how
    suffix = suffixes.get(kind, ".csv" if command == "pack" else ".plada")
    path = os.path.join(root, "input" + suffix)
    with open(path, "wb") as fh:
        fh.write(data)
    with open(os.path.join(root, "names.txt"), "wb") as fh:
        fh.write(SEEDS["names"])
    os.mkdir(os.path.join(root, "dir"))
    os.mkdir(os.path.join(root, "ref"))
    for i in range(3):
        open(os.path.join(root, "ref", f"{i}.png"), "wb").close()
    os.symlink(os.path.join(root, "target.csv"), os.path.join(root, "link.csv"))
    return path


def _check(result, args) -> None:
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        pytest.fail(f"`pladacodec {' '.join(args)}` raised {type(exc).__name__}\n{tb}")
    assert result.exit_code in (0, 1, 2, 3, 4), (args, result.exit_code, result.output)
    assert "Traceback" not in result.output, (args, result.output)
    if result.exit_code and not result.stderr.startswith("Usage:"):
        lines = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(st.data())
def test_cli_on_mutated_inputs_and_arguments(data):
    from click.testing import CliRunner

    from pladacodec_cli.app import main

    command = data.draw(st.sampled_from(sorted(COMMANDS)), "command")
    kinds, option_strategies, outputs = COMMANDS[command]
    source = data.draw(input_files(kinds), "input")
    opts = data.draw(st.lists(st.one_of(option_strategies), max_size=3), "options")
    output = data.draw(st.sampled_from(outputs), "output")
    with tempfile.TemporaryDirectory() as root:
        path = _setup(root, source, command)
        args = [command, path]
        if output is not None:
            args += ["-o", os.path.join(root, output)]
        places = {"@names": os.path.join(root, "names.txt"), "@ref": os.path.join(root, "ref"),
                  "@missing": os.path.join(root, "missing"), "@input": path}
        for name, value in opts:
            args += [name] if value is None else [name, places.get(value, value)]
        result = CliRunner().invoke(main, args, catch_exceptions=True)
        _check(result, args)
        leftovers = [name for name in os.listdir(root) if name.endswith(".plada-tmp")]
        assert not leftovers, (args, leftovers)
