"""The real selections as the yardstick: ``.plada`` against every general-purpose compressor.

For every real selection (each ``.npz`` under ``bench/data/real`` and ``bench/data/real-demo``,
recursively; data/real/README.md gives the fields) it encodes the selection with the current
codec and prints one markdown table row: entries, the ``.plada`` size (and, when the file
carries its pool's folder layout, the size given that layout), the index and label sections
(:meth:`pladacodec.TaskInfo.section_bytes`), brotli-11, xz-9e, PPMd and ZPAQ-5 on the same
byte-shuffled gaps + labels as ``pladacodec bench``, the paper's pipeline (the smaller of its
list and bitmap variants), and the ratios ``.plada`` / min(brotli-11, xz-9e) and ``.plada`` /
min(all four); then the geometric mean of each ratio and a line counting the files larger
than some general-purpose compressor's output (issue 20's acceptance).

Baseline sizes never depend on the codec: they are cached by a SHA-256 of the selection in the
bench's cache file (``bench-results/baselines-cache.json``, shared with ``pladacodec bench``,
invalidated when ``baselines.py`` changes), so a rerun after a codec change only re-encodes
the ``.plada`` files.  A file the codec fails to encode or decode exactly is listed as FAILED
(and the exit status is 1); the others are still measured.

    python bench/real_eval.py                        # every real selection
    python bench/real_eval.py --methods 2:3          # .plada restricted to index method 2, label method 3
    python bench/real_eval.py --methods 1,2: --json /tmp/real.json
    python bench/real_eval.py --dirs bench/data/real-demo/generic
    python bench/real_eval.py --bits                 # also: where the bits go, against reference costs

``--bits`` adds a table of each section against what a model of its kind could reach at
best, and what the whole file would be if both sections reached it.  Index: the i.i.d.
bound log2 C(N, k) and a *windowed reference*, the best over W = 4 ... 1,024 equal windows of
sum_w log2 C(n_w, k_w) + 1/2 sum_w log2(n_w + 1) (a piecewise-uniform density with its
parameters at their asymptotic cost, the window count picked in hindsight: optimistic for a
model that must learn where density changes).  Labels: k times the entropy of the file's own
label histogram, with the histogram free (optimistic for any order-0 model).  Both are
reference points, not lower bounds for every model: a model of other structure (exact
repeats, periodic pools) can go below them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make bench/ importable as pladacodec_bench
    import importlib.util

    _here = Path(__file__).resolve().parent
    _spec = importlib.util.spec_from_file_location(
        "pladacodec_bench", _here / "__init__.py", submodule_search_locations=[str(_here)]
    )
    _package = importlib.util.module_from_spec(_spec)
    sys.modules["pladacodec_bench"] = _package
    _spec.loader.exec_module(_package)

import numpy as np  # noqa: E402

import pladacodec  # noqa: E402
from pladacodec_bench.bound import log2_binomial  # noqa: E402
from pladacodec_bench.run import (  # noqa: E402
    CACHE_FILE,
    DEFAULT_OUT,
    GENERAL,
    GENERIC,
    PAPER_BITMAP,
    PAPER_LIST,
    BaselineCache,
    measure_baselines,
    geometric_mean,
    selection_digest,
)
from pladacodec_bench.workloads import REAL_DIRS, RealTask, real_tasks  # noqa: E402

__all__ = ["DEFAULT_CACHE", "evaluate_task", "main", "markdown_table", "parse_methods", "summary_lines"]

DEFAULT_CACHE = Path(DEFAULT_OUT) / CACHE_FILE
_COLUMNS = {"brotli11-shuffled": "brotli-11", "xz9e-shuffled": "xz-9e", "ppmd-shuffled": "PPMd", "zpaq5-shuffled": "ZPAQ-5"}


@dataclass(frozen=True)
class Methods:
    """The coding methods the ``.plada`` encode may try (None: the codec's default)."""

    index: list[int] | None = None
    label: list[int] | None = None

    def __str__(self) -> str:
        def text(ids):
            return "default" if ids is None else ",".join(map(str, ids))

        return f"index {text(self.index)}, label {text(self.label)}"


def parse_methods(text: str | None) -> Methods:
    """``"2,3:1,3"`` -> index methods [2, 3], label methods [1, 3]; an empty side keeps the default."""
    if text is None:
        return Methods()
    if text.count(":") != 1:
        raise ValueError(f"--methods wants INDEX_IDS:LABEL_IDS such as 2,3:1 or :3, found {text!r}")

    def ids(part: str) -> list[int] | None:
        items = [item.strip() for item in part.split(",") if item.strip()]
        if not items:
            return None
        try:
            return [int(item) for item in items]
        except ValueError:
            raise ValueError(f"method ids are integers, found {part!r}") from None

    index, label = text.split(":")
    return Methods(ids(index), ids(label))


def _baseline_sizes(task: RealTask, cache: BaselineCache) -> tuple[dict, bool]:
    """The cached or freshly measured baseline entry (sizes and round trips) and whether it was cached."""
    sel = task.selection
    key = selection_digest(sel)
    entry = cache.get(key)
    if entry is not None:
        return entry, True
    entry, _ = measure_baselines(sel, repeats=1)
    cache.put(key, {"profile": task.profile, "keep": task.keep, "seed": None, "k": sel.k, **entry})
    return entry, False


def evaluate_task(task: RealTask, cache: BaselineCache, methods: Methods = Methods()) -> dict:
    """One row: the ``.plada`` sizes (checked to decode back), section bytes, baselines and ratios."""
    sel = task.selection

    def encode(folders=None) -> bytes:
        return pladacodec.encode(
            sel.indices, sel.labels, sel.n_reference, n_classes=sel.n_classes,
            index_methods=methods.index, label_methods=methods.label, folders=folders,
        )

    blob = encode()
    info = pladacodec.inspect(blob)  # decodes and verifies the whole file
    if not (np.array_equal(info.payload.indices, sel.indices) and np.array_equal(info.payload.labels, sel.labels)):
        raise RuntimeError(f"{task.path}: the .plada file does not decode back to the selection")
    sections = info.section_bytes()
    with_folders = None
    if task.folder_starts is not None:
        layout = pladacodec.FolderLayout(task.folder_starts[:-1], sel.n_reference)
        folder_blob = encode(layout)
        decoded = pladacodec.decode(folder_blob, folders=layout)
        if not (np.array_equal(decoded.indices, sel.indices) and np.array_equal(decoded.labels, sel.labels)):
            raise RuntimeError(f"{task.path}: the .plada file given the folder layout does not decode back")
        with_folders = len(folder_blob)
    entry, cached = _baseline_sizes(task, cache)
    sizes = entry["sizes"]
    if not all(entry["round_trip"].values()):
        raise RuntimeError(f"{task.path}: a baseline does not round-trip: {entry['round_trip']}")
    plada = len(blob)
    general = {name: sizes[name] for name in GENERAL}
    smallest = min(general, key=general.get)
    paper = min(sizes[PAPER_LIST], sizes[PAPER_BITMAP])
    return {
        "profile": task.profile,
        "path": str(task.path),
        "k": sel.k,
        "n_reference": sel.n_reference,
        "n_classes": sel.n_classes,
        "plada": plada,
        "plada_folders": with_folders,
        "index_bytes": sections.get("indices"),
        "label_bytes": sections.get("labels"),
        "general": general,
        "smallest_general": smallest,
        "paper": paper,
        "vs_generic": plada / min(sizes[name] for name in GENERIC),
        "vs_general": plada / general[smallest],
        "vs_paper": plada / paper,
        "folders_vs_general": with_folders / general[smallest] if with_folders else None,
        "baselines_cached": cached,
    }


WINDOW_COUNTS = (4, 8, 16, 32, 64, 128, 256, 512, 1024)


def section_references(indices: np.ndarray, labels: np.ndarray, n_reference: int, n_classes: int) -> dict:
    """Reference costs in bytes (module docstring): i.i.d. and windowed index, histogram-entropy labels."""
    k = len(indices)
    iid = log2_binomial(n_reference, k) / 8
    windowed = iid
    for windows in WINDOW_COUNTS:
        if windows > n_reference:
            break
        edges = np.linspace(0, n_reference, windows + 1).astype(np.int64)
        in_window = np.histogram(indices.astype(np.int64), bins=edges)[0]
        sizes = np.diff(edges)
        bits = sum(log2_binomial(int(n), int(c)) + 0.5 * math.log2(n + 1) for n, c in zip(sizes, in_window))
        windowed = min(windowed, bits / 8)
    counts = np.bincount(labels.astype(np.int64), minlength=n_classes)
    used = counts[counts > 0]
    label_entropy = float(-(used * np.log2(used / k)).sum() / 8) if k else 0.0
    return {"index_iid": iid, "index_windowed": windowed, "label_entropy": label_entropy}


def bits_row(row: dict, task: RealTask) -> dict:
    """Where the bits of one file go (``--bits``): sections against their references."""
    sel = task.selection
    refs = section_references(sel.indices, sel.labels, sel.n_reference, sel.n_classes)
    framing = row["plada"] - row["index_bytes"] - row["label_bytes"]
    ceiling = framing + refs["index_windowed"] + refs["label_entropy"]
    generic = min(row["general"][name] for name in GENERIC)
    return {**refs, "framing": framing, "ceiling": ceiling, "ceiling_vs_generic": ceiling / generic,
            "ceiling_vs_general": ceiling / row["general"][row["smallest_general"]]}


def bits_table(rows: list[dict]) -> str:
    """One row per selection: sections against their references, and the file if both reached them."""
    header = ["selection", "framing B", "index B", "i.i.d. B", "windowed B", "index/windowed", "label B",
              "histogram H B", "label/H", "both at reference B", "that /brotli-xz", "that /general"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in rows:
        b = row["bits"]
        lines.append("| " + " | ".join([
            row["profile"], f"{b['framing']:,}", f"{row['index_bytes']:,}", f"{b['index_iid']:,.0f}",
            f"{b['index_windowed']:,.0f}", f"{row['index_bytes'] / max(b['index_windowed'], 1):.3f}", f"{row['label_bytes']:,}",
            f"{b['label_entropy']:,.0f}", f"{row['label_bytes'] / max(b['label_entropy'], 1):.3f}",
            f"{b['ceiling']:,.0f}", f"{b['ceiling_vs_generic']:.3f}", f"{b['ceiling_vs_general']:.3f}",
        ]) + " |")
    if rows:
        lines.append("| " + " | ".join([
            f"**geometric mean ({len(rows)} files)**", "", "", "", "",
            f"{geometric_mean(r['index_bytes'] / max(r['bits']['index_windowed'], 1) for r in rows if r['k'] < r['n_reference']):.3f}", "", "",
            f"{geometric_mean(r['label_bytes'] / max(r['bits']['label_entropy'], 1) for r in rows):.3f}", "",
            f"{geometric_mean(r['bits']['ceiling_vs_generic'] for r in rows):.3f}",
            f"{geometric_mean(r['bits']['ceiling_vs_general'] for r in rows):.3f}",
        ]) + " |")
    return "\n".join(lines)


def markdown_table(rows: list[dict]) -> str:
    """One row per selection, then the geometric means of the ratios."""
    header = (
        ["selection", "entries", ".plada", ".plada+folders", "index B", "label B"]
        + [_COLUMNS.get(name, name) for name in GENERAL]
        + ["paper best", "/brotli-xz", "/general", "smallest general"]
    )
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 2) + "---|"]

    def count(value) -> str:
        return "—" if value is None else f"{value:,}"

    for row in rows:
        cells = [
            row["profile"], count(row["k"]), count(row["plada"]), count(row["plada_folders"]),
            count(row["index_bytes"]), count(row["label_bytes"]),
            *(count(row["general"][name]) for name in GENERAL),
            count(row["paper"]), f"{row['vs_generic']:.3f}", f"{row['vs_general']:.3f}",
            _COLUMNS.get(row["smallest_general"], row["smallest_general"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if rows:
        blank = [""] * (len(header) - 4)
        means = [f"{geometric_mean(r['vs_generic'] for r in rows):.3f}", f"{geometric_mean(r['vs_general'] for r in rows):.3f}"]
        lines.append("| " + " | ".join([f"**geometric mean ({len(rows)} files)**", *blank[1:], "", *means, ""]) + " |")
    return "\n".join(lines)


def summary_lines(rows: list[dict]) -> list[str]:
    """The geometric means against issue 20's targets and the files larger than some general-purpose output."""
    if not rows:
        return ["no real selection found"]
    larger = [row for row in rows if row["vs_general"] > 1.0]
    names = ", ".join(_COLUMNS.get(name, name) for name in GENERAL)
    lines = [
        f"geometric mean .plada / min(brotli-11, xz-9e): {geometric_mean(r['vs_generic'] for r in rows):.4f}"
        f" (target <= 0.92), range {min(r['vs_generic'] for r in rows):.3f}-{max(r['vs_generic'] for r in rows):.3f}",
        f"geometric mean .plada / min({names}): {geometric_mean(r['vs_general'] for r in rows):.4f}"
        f" (target <= 0.94), range {min(r['vs_general'] for r in rows):.3f}-{max(r['vs_general'] for r in rows):.3f}",
        f"geometric mean .plada / paper pipeline: {geometric_mean(r['vs_paper'] for r in rows):.4f}",
        f"files larger than some general-purpose compressor's output: {len(larger)} of {len(rows)} (target 0)"
        + (": " + ", ".join(f"{r['profile']} ({r['vs_general']:.3f} x {_COLUMNS.get(r['smallest_general'])})"
                            for r in larger) if larger else ""),
    ]
    with_folders = [row for row in rows if row["plada_folders"] is not None]
    if with_folders:
        lines.append(
            f"given the folder layout ({len(with_folders)} files): geometric mean .plada+folders / min({names}):"
            f" {geometric_mean(r['folders_vs_general'] for r in with_folders):.4f},"
            f" .plada+folders / .plada: {geometric_mean(r['plada_folders'] / r['plada'] for r in with_folders):.4f}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--methods",
        help="coding methods the .plada encode may try, INDEX_IDS:LABEL_IDS (e.g. 2,3:1,3; an empty side: the default)",
    )
    parser.add_argument(
        "--dirs", nargs="+", type=Path, default=list(REAL_DIRS),
        help="folders searched recursively for .npz selections (default: bench/data/real bench/data/real-demo)",
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"baseline cache (default: {DEFAULT_CACHE})")
    parser.add_argument("--no-cache", action="store_true", help="recompute every baseline (and write no cache)")
    parser.add_argument("--json", type=Path, help="also write the rows and the summary as JSON here")
    parser.add_argument("--bits", action="store_true", help="also print where the bits go (module docstring)")
    args = parser.parse_args(argv)
    try:
        methods = parse_methods(args.methods)
    except ValueError as exc:
        parser.error(str(exc))

    started = time.perf_counter()
    tasks = real_tasks(tuple(args.dirs))
    cache = BaselineCache(args.cache, not args.no_cache)
    rows, failures = [], []
    for task in tasks:
        try:
            rows.append(evaluate_task(task, cache, methods))
            if args.bits:
                rows[-1]["bits"] = bits_row(rows[-1], task)
        except (pladacodec.PladaError, RuntimeError) as exc:  # a codec under construction: report, go on
            failures.append(f"{task.profile} ({task.path}): {type(exc).__name__}: {exc}")
    measured = sum(not row["baselines_cached"] for row in rows)
    summary = summary_lines(rows) + [f"FAILED {line}" for line in failures]
    print(markdown_table(rows))
    print()
    print("\n".join(summary))
    if args.bits and rows:
        print()
        print(bits_table(rows))
    print(
        f"({len(rows)} files, .plada methods: {methods}, pladacodec format"
        f" {pladacodec.FORMAT_VERSION[0]}.{pladacodec.FORMAT_VERSION[1]}; baselines measured for {measured},"
        f" cached for {len(rows) - measured} ({args.cache if not args.no_cache else 'no cache'});"
        f" {time.perf_counter() - started:.1f} s)",
        file=sys.stderr,
    )
    if args.json:
        args.json.write_text(json.dumps({"methods": str(methods), "rows": rows, "summary": summary}, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
