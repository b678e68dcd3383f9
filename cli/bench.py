"""``pladacodec bench``: the acceptance benchmark (:mod:`pladacodec_bench.run`) on the command line.

Needs the ``bench`` extra (zstandard, brotli, pyarrow, pyroaring, matplotlib, pyppmd, zpaq); the
benchmark module loads only when the command runs, so ``pladacodec --help`` stays light.
"""

from __future__ import annotations

import click

from ._common import PladaCommand, UserError

__all__ = ["bench"]


@click.command(cls=PladaCommand)
@click.option("--profiles", help="Comma-separated workload profiles (default: every structured and uniform profile).")
@click.option("--keeps", help="Comma-separated keep ratios, 0.01 or 1% (default: 0.1%,1%,10%).")
@click.option("--repeats", type=click.IntRange(min=1), default=None, help="Timing repeats, best kept (default: 3).")
@click.option("--seed", type=int, default=0, show_default=True, help="Workload seed.")
@click.option(
    "--out", type=click.Path(file_okay=False), default="bench-results", show_default=True, help="Output folder."
)
@click.option("--quick", is_flag=True, help="Two small profiles at keep 0.1% and 1%, 1 repeat (< 30 s).")
@click.option("--no-cache", is_flag=True, help="Recompute the baselines instead of reading baselines-cache.json.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option(
    "--real/--no-real",
    default=None,
    help="Also the real selections in bench/data/real and bench/data/real-demo (default: on, off with --quick).",
)
def bench(profiles, keeps, repeats, seed, out, quick, no_cache, no_plots, real):
    """Measure .plada against the paper's pipeline, brotli/xz/PPMd/ZPAQ and the i.i.d. bound.

    Prints a markdown table and a PASS/FAIL summary against the acceptance
    targets, and writes results.md, results.json, bytes_per_entry.png and
    timings.png to --out.  Exits 1 if any decode fails to round-trip.
    """
    try:
        from pladacodec_bench import run as bench_run
    except ImportError as exc:
        raise UserError(f"the benchmark needs the bench extra: pip install 'pladacodec[bench]' ({exc})") from None
    try:
        config = bench_run.build_config(profiles, keeps, repeats, seed, out, quick, not no_cache, not no_plots, real)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    document = bench_run.run(config)
    if not all(all(row["round_trip"].values()) for row in document["rows"]):
        raise UserError("a decode did not give back the selection (see the round trip column)")
