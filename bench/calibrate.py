"""Print every baseline's size on every workload profile, next to the i.i.d. bound.

Run ``python -m pladacodec_bench.calibrate`` (after ``pip install -e .[bench]``) or
``python bench/calibrate.py``.  Options: ``--profiles in21k-c200,uniform``,
``--keeps 0.001,0.01,0.1``, ``--seed 0``, ``--check`` (decode every blob and compare).
The paper's CUB-200 figures for ``in21k-c200`` are printed underneath for comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
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

from pladacodec_bench.baselines import BASELINES, iid_bound_bits  # noqa: E402
from pladacodec_bench.workloads import PROFILES, make_selection  # noqa: E402

DEFAULT_PROFILES = [
    "in21k-c10",
    "in21k-c200",
    "in21k-c1000",
    "in1k-c10",
    "in1k-c100",
    "in1k-c1000",
    "uniform",
    "uniform-in1k-c100",
]
DEFAULT_KEEPS = [0.001, 0.01, 0.1]

# The paper's CUB-200 sizes over ImageNet-21K: keep -> (index list, bitmap), bytes (KB = 1,000).
PAPER_CUB200 = {0.001: (16_120, 14_070), 0.01: (97_410, 84_830), 0.1: (1_360_000, 1_300_000)}

_SHORT = {
    "paper-list-zstd19": "list-zstd",
    "paper-bitmap-zstd19": "bitmap-zstd",
    "brotli11-shuffled": "brotli11",
    "xz9e-shuffled": "xz9e",
    "npz-compressed": "npz",
    "parquet-zstd": "parquet",
    "roaring-zstd": "roaring",
}


def measure(profile: str, keep: float, seed: int, check: bool) -> dict[str, float]:
    """Sizes in bytes of every baseline and the bound on one selection."""
    sel = make_selection(profile, keep, seed)
    row: dict[str, float] = {"k": sel.k}
    for name, baseline in BASELINES.items():
        blob = baseline.encode(sel)
        if check:
            indices, labels = baseline.decode(blob, sel.n_reference, sel.n_classes)
            if not (np.array_equal(indices, sel.indices) and np.array_equal(labels, sel.labels)):
                raise AssertionError(f"{name} does not round-trip {sel.name}")
        row[name] = len(blob)
    row["iid-bound"] = iid_bound_bits(sel) / 8
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default=",".join(DEFAULT_PROFILES))
    parser.add_argument("--keeps", default=",".join(map(str, DEFAULT_KEEPS)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="decode every blob and compare")
    args = parser.parse_args(argv)
    profiles = args.profiles.split(",")
    keeps = [float(keep) for keep in args.keeps.split(",")]
    for profile in profiles:
        if profile not in PROFILES:
            parser.error(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")

    columns = list(BASELINES) + ["iid-bound"]
    header = f"{'profile':<20} {'keep':>6} {'k':>9} " + " ".join(
        f"{_SHORT.get(c, c):>11}" for c in columns
    ) + f" {'brotli/paper':>12} {'secs':>5}"
    print(header)
    print("-" * len(header))
    measured: dict[tuple[str, float], dict[str, float]] = {}
    for profile in profiles:
        for keep in keeps:
            start = time.perf_counter()
            row = measure(profile, keep, args.seed, args.check)
            measured[profile, keep] = row
            ratio = row["brotli11-shuffled"] / row["paper-list-zstd19"]
            print(
                f"{profile:<20} {keep:>6.2%} {row['k']:>9,} "
                + " ".join(f"{row[c]:>11,.0f}" for c in columns)
                + f" {ratio:>12.3f} {time.perf_counter() - start:>5.1f}",
                flush=True,
            )

    calibrated = [keep for keep in keeps if ("in21k-c200", keep) in measured and keep in PAPER_CUB200]
    if calibrated:
        print("\nin21k-c200 against the paper's CUB-200 (KB = 1,000 bytes):")
        print(
            f"{'keep':>6} {'paper list':>11} {'ours':>9} {'ratio':>6}"
            f" {'paper bitmap':>13} {'ours':>9} {'ratio':>6}"
        )
        for keep in calibrated:
            row, (paper_list, paper_bitmap) = measured["in21k-c200", keep], PAPER_CUB200[keep]
            ours_list, ours_bitmap = row["paper-list-zstd19"], row["paper-bitmap-zstd19"]
            print(
                f"{keep:>6.1%} {paper_list / 1e3:>11,.2f} {ours_list / 1e3:>9,.2f}"
                f" {ours_list / paper_list:>6.2f} {paper_bitmap / 1e3:>13,.2f}"
                f" {ours_bitmap / 1e3:>9,.2f} {ours_bitmap / paper_bitmap:>6.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
