"""Issue-2 acceptance: .plada size against the i.i.d. bound on uniform selections, and speed.

For N = 14,197,122 (ImageNet-21K), keep 0.1 %, 1 %, 10 % chosen uniformly at random, labels
Zipf-distributed (exponent 1) over 10, 100 and 1,000 classes, it prints the file size, the
bound B = log2 C(N,k) + k·H(labels) + log2 C(k+C-1, C-1) bits (the set, the labels under
their empirical distribution, and that distribution's histogram), the ratio of the size to
1.005·B/8 + 256 bytes (must be <= 1), and pack / unpack wall times (best of --repeats).

    python bench/bound.py            # or: python -m pladacodec_bench.bound
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import pladacodec

N_IN21K = 14_197_122


def log2_binomial(n: int, r: int) -> float:
    return (math.lgamma(n + 1) - math.lgamma(r + 1) - math.lgamma(n - r + 1)) / math.log(2)


def iid_bound_bits(n: int, labels: np.ndarray, n_classes: int) -> float:
    k = len(labels)
    counts = np.bincount(labels, minlength=n_classes)
    p = counts[counts > 0] / k
    entropy = float(-(p * np.log2(p)).sum())
    return log2_binomial(n, k) + k * entropy + log2_binomial(k + n_classes - 1, n_classes - 1)


def uniform_selection(n: int, keep: float, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, n_classes, round(keep * 1e6)])
    k = round(keep * n)
    indices = np.sort(rng.choice(n, size=k, replace=False)).astype(np.uint64)
    weights = 1.0 / np.arange(1, n_classes + 1)
    labels = rng.choice(n_classes, size=k, p=weights / weights.sum())
    return indices, labels


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keeps", default="0.001,0.01,0.1")
    parser.add_argument("--classes", default="10,100,1000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pladacodec.decode(pladacodec.encode([1], [0], 2))  # load the compiled kernels before timing

    print("| C | keep | k | .plada bytes | bound B/8 | size / (1.005·B/8 + 256) | methods | pack s | unpack s |")
    print("|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    worst = 0.0
    slowest = 0.0
    for n_classes in (int(c) for c in args.classes.split(",")):
        for keep in (float(k) for k in args.keeps.split(",")):
            indices, labels = uniform_selection(N_IN21K, keep, n_classes, args.seed)
            pack_s, blob = best_time(lambda: pladacodec.encode(indices, labels, N_IN21K, n_classes=n_classes), args.repeats)
            unpack_s, task = best_time(lambda: pladacodec.decode(blob), args.repeats)
            if not (np.array_equal(task.indices, indices) and np.array_equal(task.labels, labels)):
                raise SystemExit(f"round trip failed for C={n_classes} keep={keep}")
            bound_bytes = iid_bound_bits(N_IN21K, labels, n_classes) / 8
            ratio = len(blob) / (1.005 * bound_bytes + 256)
            methods = pladacodec.inspect(blob).methods()
            used = "+".join(sorted(methods["indices"])) + " / " + "+".join(sorted(methods["labels"]))
            worst = max(worst, ratio)
            if len(indices) >= 1_000_000:
                slowest = max(slowest, pack_s, unpack_s)
            print(
                f"| {n_classes:,} | {keep:.1%} | {len(indices):,} | {len(blob):,} | {bound_bytes:,.0f} | {ratio:.4f} "
                f"| {used} | {pack_s:.3f} | {unpack_s:.3f} |"
            )
    print()
    print(f"{'PASS' if worst <= 1.0 else 'FAIL'}  every file <= 1.005 x B + 256 bytes (worst ratio {worst:.4f})")
    if slowest:
        print(f"{'PASS' if slowest < 1.0 else 'FAIL'}  pack and unpack of >= 1 M entries each under 1 s (slowest {slowest:.3f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
