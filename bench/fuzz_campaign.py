"""Fuzz campaign for the .plada decoder (format 2.0): >= 1,000,000 executions, findings, slowest input.

Runs worker processes (``--jobs`` at a time) of two kinds over a fresh seed
corpus of every pair of coding methods in every shape (``tests/fuzzers/make_corpus.py
--all``, written to the work folder: only a small seed set is committed):

* ``atheris``: coverage-guided libFuzzer over ``tests/fuzzers/fuzz_decode.py``;
  each execution decodes the input as is and with the header and block checksums recomputed;
* ``loop``: the pure-Python mutator (byte mutations as is / checksums fixed,
  and structure-aware edits of the 2.0 layout re-serialised with right lengths and CRCs).

Findings (non-PladaError exceptions, broken payload invariants, CLI crashes,
inputs taking more than 2 s of CPU time to decode) are written to ``<workdir>/findings``
and summarised; "max ms/input" is the most CPU time one input's decodes took.

    python bench/fuzz_campaign.py                        # 1,000,000 executions, 2 processes
    python bench/fuzz_campaign.py --executions 200000 --atheris-share 0
    python bench/fuzz_campaign.py --short 20             # the bounded CI mode (no atheris)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZERS = ROOT / "tests" / "fuzzers"
sys.path.insert(0, str(FUZZERS))


def short_run(seconds: float, executions: int = 1_000_000, seed: int = 0) -> dict:
    """Bounded, deterministic (fixed seed; stops at ``seconds``) pure-Python campaign."""
    import fuzz_decode

    seeds = fuzz_decode.load_seeds(None)
    return fuzz_decode.mutation_loop(seeds, executions, seed=seed, time_budget_s=seconds, cli_every=97)


def _loop_worker(args) -> int:
    import fuzz_decode

    seeds = fuzz_decode.load_seeds(Path(args.corpus))
    stats = fuzz_decode.mutation_loop(
        seeds, args.executions, seed=args.seed, findings_dir=Path(args.findings), progress_every=50_000
    )
    Path(args.stats).write_text(json.dumps(stats))
    return 0


def _has_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def _job_commands(args, work: Path, seeds_dir: Path) -> list[tuple[str, list[str], Path, Path]]:
    findings = work / "findings"
    jobs = []
    n_atheris = int(args.executions * args.atheris_share) if _has_atheris() else 0
    n_loop = args.executions - n_atheris
    per_kind = max(1, args.jobs)
    for i in range(per_kind):
        if n_atheris:
            runs = n_atheris // per_kind + (i < n_atheris % per_kind)
            corpus = work / f"atheris-corpus-{i}"
            corpus.mkdir(parents=True, exist_ok=True)
            stats, log = work / f"atheris-{i}.json", work / f"atheris-{i}.log"
            cmd = [sys.executable, str(FUZZERS / "fuzz_decode.py"), "--findings", str(findings), "--stats", str(stats),
                   f"-runs={runs}", f"-seed={args.seed + i + 1}", "-max_len=65536", "-timeout=20",
                   "-rss_limit_mb=4096", "-print_final_stats=1", str(corpus), str(seeds_dir)]
            jobs.append(("atheris", cmd, stats, log))
        if n_loop:
            runs = n_loop // per_kind + (i < n_loop % per_kind)
            stats, log = work / f"loop-{i}.json", work / f"loop-{i}.log"
            cmd = [sys.executable, __file__, "--worker", "--executions", str(runs), "--seed", str(args.seed + 100 + i),
                   "--corpus", str(seeds_dir), "--findings", str(findings), "--stats", str(stats)]
            jobs.append(("loop", cmd, stats, log))
    return jobs


def _collect(kind: str, stats_path: Path, log_path: Path, returncode: int) -> dict:
    out = {"kind": kind, "executions": 0, "max_time_s": 0.0, "unique": {}, "returncode": returncode}
    if stats_path.exists():
        stats = json.loads(stats_path.read_text())
        out["executions"] = stats.get("executions", 0)
        out["max_time_s"] = stats.get("max_time_s", 0.0)
        out["unique"] = stats.get("unique") or stats.get("unique_findings") or {}
        out["decoded_ok"] = stats.get("decoded_ok")
    if kind == "atheris" and log_path.exists():
        log = log_path.read_text(errors="replace")
        done = re.findall(r"Done (\d+) runs in (\d+) second", log)
        if done:
            out["executions"] = int(done[-1][0])  # libFuzzer's own count
        if returncode != 0:  # a crash libFuzzer caught itself (timeout, OOM, signal)
            tail = log[-2000:]
            kind_of = "timeout" if "timeout" in tail.lower() else "oom" if "out-of-memory" in tail else "crash"
            out["unique"][f"libfuzzer-{kind_of}"] = kind_of
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=2, help="processes at a time")
    parser.add_argument("--atheris-share", type=float, default=0.5, help="fraction of executions for atheris")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--short", type=float, metavar="SECONDS", help="bounded in-process run (CI)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--findings", help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _loop_worker(args)
    if args.short is not None:
        stats = short_run(args.short, seed=args.seed)
        print(f"executions {stats['executions']:,} in {stats['seconds']:.1f} s, findings {stats['findings']}, "
              f"max time per input {stats['max_time_s'] * 1000:.1f} ms, decoded ok {stats['decoded_ok']:,}")
        for key, kind in stats["unique_findings"].items():
            print(f"  {kind}: {key}")
        return 1 if stats["findings"] else 0

    import make_corpus

    work = args.workdir or Path(tempfile.mkdtemp(prefix="plada-fuzz-"))
    seeds_dir = work / "seeds"
    make_corpus.main(["--all", "--out", str(seeds_dir)])
    jobs = _job_commands(args, work, seeds_dir)
    print(f"campaign: {args.executions:,} executions in {len(jobs)} jobs, {args.jobs} at a time; workdir {work}",
          flush=True)
    started = time.time()
    pending, running, results = list(jobs), [], []
    while pending or running:
        while pending and len(running) < args.jobs:
            kind, cmd, stats, log = pending.pop(0)
            fh = open(log, "w")
            running.append((kind, subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT), stats, log, fh))
        time.sleep(1.0)
        for job in list(running):
            kind, proc, stats, log, fh = job
            if proc.poll() is not None:
                fh.close()
                running.remove(job)
                results.append(_collect(kind, stats, log, proc.returncode))
                r = results[-1]
                print(f"  {kind:8s} done: {r['executions']:,} executions, {len(r['unique'])} unique findings, "
                      f"max {r['max_time_s'] * 1000:.1f} CPU ms/input ({time.time() - started:.0f} s)", flush=True)
    wall = time.time() - started
    total = sum(r["executions"] for r in results)
    unique: dict[str, str] = {}
    for r in results:
        unique.update(r["unique"])
    print()
    print(f"{'kind':10s} {'executions':>12s} {'max CPU ms/in':>13s} {'findings':>9s}")
    for kind in ("atheris", "loop"):
        rs = [r for r in results if r["kind"] == kind]
        if rs:
            print(f"{kind:10s} {sum(r['executions'] for r in rs):12,d} {max(r['max_time_s'] for r in rs) * 1000:13.1f} "
                  f"{sum(len(r['unique']) for r in rs):9d}")
    print(f"{'total':10s} {total:12,d} {max(r['max_time_s'] for r in results) * 1000:13.1f} {len(unique):9d}")
    print(f"wall {wall:.0f} s ({total / wall:,.0f} executions/s); findings in {work / 'findings'}")
    for key, kind in sorted(unique.items()):
        print(f"  {kind}: {key}")
    return 1 if unique or total < args.executions * 0.99 else 0


if __name__ == "__main__":
    sys.exit(main())
