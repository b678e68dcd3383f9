"""Scale benchmark: a 1 % selection of a 2,000,000,000-image pool (20 M entries).

Each phase runs in a fresh subprocess so its peak RSS (``ru_maxrss``) is its own:

* ``pack-stream``    generate the selection chunk by chunk and write it with :class:`StreamWriter`
* ``unpack-stream``  read it back block by block with :func:`iter_read` (whole-file CRC first)
* ``pack-memory``    the same selection as two whole arrays through ``pladacodec.encode`` + write
* ``unpack-memory``  ``pladacodec.read`` of the whole file

The selection is regenerated deterministically window by window (seeded per
window), so the unpack phases verify against a digest of the generated data
without holding it.  The selection is clustered-ish: window densities vary
(gamma), half the entries sit in clusters, labels follow a Zipf-like law over
1,000 classes.

    python bench/scale.py                                   # 20 M entries of 2e9 (the acceptance case)
    python bench/scale.py --entries 2000000 --pool 200000000  # a quicker look
    python bench/scale.py --skip-memory                     # streaming phases only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WINDOW = 10_000_000  # pool images per generation window
N_CLASSES = 1000
SEED = 2024


def _window_counts(entries: int, pool: int) -> np.ndarray:
    n_windows = (pool + WINDOW - 1) // WINDOW
    rng = np.random.default_rng([SEED, 0])
    weights = rng.gamma(2.0, 1.0, n_windows)
    sizes = np.minimum(WINDOW, pool - np.arange(n_windows) * WINDOW)
    weights *= sizes / WINDOW
    counts = rng.multinomial(entries, weights / weights.sum())
    # a window cannot hold more than half its images selected: move the excess on (rarely needed)
    cap = sizes // 2
    excess = 0
    for w in range(n_windows):
        counts[w] += excess
        excess = max(0, counts[w] - cap[w])
        counts[w] -= excess
    if excess:
        raise SystemExit("selection too dense for this pool")
    return counts


def generate(entries: int, pool: int):
    """Yield (indices uint64, labels int64) per window, sorted, deterministic."""
    counts = _window_counts(entries, pool)
    p = 1.0 / np.arange(1, N_CLASSES + 1) ** 0.8
    p /= p.sum()
    for w, count in enumerate(counts):
        if not count:
            continue
        rng = np.random.default_rng([SEED, 1, w])
        lo = w * WINDOW
        size = min(WINDOW, pool - lo)
        n_clustered = count // 2
        centres = rng.integers(0, size, max(1, n_clustered // 64))
        clustered = centres[rng.integers(0, len(centres), n_clustered)] + rng.normal(0, 300, n_clustered).astype(np.int64)
        pos = np.concatenate([clustered, rng.integers(0, size, count - n_clustered)])
        pos = np.unique(pos[(pos >= 0) & (pos < size)])
        while len(pos) < count:
            pos = np.unique(np.concatenate([pos, rng.integers(0, size, count - len(pos))]))
        if len(pos) > count:
            pos = np.sort(rng.choice(pos, count, replace=False))
        labels = rng.choice(N_CLASSES, count, p=p).astype(np.int64)
        yield (pos + lo).astype(np.uint64), labels


class Digest:
    """Digest of the index stream and the label stream, independent of how they are chunked."""

    def __init__(self) -> None:
        self.indices = hashlib.blake2b(digest_size=16)
        self.labels = hashlib.blake2b(digest_size=16)
        self.entries = 0

    def update(self, indices: np.ndarray, labels: np.ndarray) -> None:
        self.indices.update(np.ascontiguousarray(indices, dtype="<u8").tobytes())
        self.labels.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
        self.entries += len(indices)

    def hexdigest(self) -> str:
        return self.indices.hexdigest()[:16] + self.labels.hexdigest()[:16]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def phase(name: str, path: str, entries: int, pool: int) -> dict:
    import pladacodec
    from pladacodec._stream import StreamWriter, iter_read

    baseline = _peak_rss_mb()  # interpreter + numpy + numba + pladacodec imported
    digest = Digest()
    t0 = time.perf_counter()
    gen_s = 0.0
    if name == "pack-stream":
        with StreamWriter(path, n_reference=pool, n_selected=entries, n_classes=N_CLASSES) as writer:
            chunks = generate(entries, pool)
            while True:
                g = time.perf_counter()
                chunk = next(chunks, None)
                gen_s += time.perf_counter() - g
                if chunk is None:
                    break
                digest.update(*chunk)
                writer.write(*chunk)
    elif name == "unpack-stream":
        for indices, labels in iter_read(path):
            digest.update(indices, labels)
    elif name == "pack-memory":
        g = time.perf_counter()
        parts = list(generate(entries, pool))
        indices = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        del parts
        gen_s = time.perf_counter() - g
        digest.update(indices, labels)
        pladacodec.write(path, indices, labels, pool, n_classes=N_CLASSES)
    elif name == "unpack-memory":
        payload = pladacodec.read(path, max_entries=max(entries, 1))
        digest.update(payload.indices, payload.labels)
    else:
        raise SystemExit(f"unknown phase {name}")
    seconds = time.perf_counter() - t0
    return {
        "phase": name, "entries": digest.entries, "digest": digest.hexdigest(), "seconds": seconds,
        "codec_seconds": seconds - gen_s, "peak_rss_mb": _peak_rss_mb(), "baseline_rss_mb": baseline,
        "file_bytes": os.path.getsize(path),
    }


def run_phase(name: str, path: str, entries: int, pool: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--file", path, "--entries", str(entries), "--pool", str(pool)],
        check=True, stdout=subprocess.PIPE, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000_000)
    parser.add_argument("--pool", type=int, default=2_000_000_000)
    parser.add_argument("--dir", type=Path, default=None, help="where the .plada files go (default: a temp folder)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the in-memory encode/decode comparison")
    parser.add_argument("--limit-mb", type=float, default=1024.0, help="peak RSS budget for the streaming phases")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        print(json.dumps(phase(args.phase, args.file, args.entries, args.pool)))
        return 0

    tmp = tempfile.TemporaryDirectory() if args.dir is None else None
    folder = Path(tmp.name) if tmp else args.dir
    folder.mkdir(parents=True, exist_ok=True)
    stream_path, memory_path = str(folder / "scale-stream.plada"), str(folder / "scale-memory.plada")
    print(f"selection: {args.entries:,} entries of a {args.pool:,}-image pool "
          f"({100 * args.entries / args.pool:.2f} %), {N_CLASSES:,} classes")
    plan = [("pack-stream", stream_path), ("unpack-stream", stream_path)]
    if not args.skip_memory:
        plan += [("pack-memory", memory_path), ("unpack-memory", memory_path)]
    results = []
    for name, path in plan:
        r = run_phase(name, path, args.entries, args.pool)
        results.append(r)
        print(f"  {name:14s} done in {r['seconds']:.1f} s", flush=True)

    print()
    print(f"{'phase':14s} {'entries':>12s} {'codec s':>8s} {'entries/s':>12s} {'peak RSS MB':>12s} "
          f"{'(base MB)':>10s} {'file bytes':>13s} {'bits/entry':>10s}")
    for r in results:
        rate = r["entries"] / r["codec_seconds"] if r["codec_seconds"] else float("nan")
        print(f"{r['phase']:14s} {r['entries']:12,d} {r['codec_seconds']:8.1f} {rate:12,.0f} {r['peak_rss_mb']:12.0f} "
              f"{r['baseline_rss_mb']:10.0f} {r['file_bytes']:13,d} {8 * r['file_bytes'] / max(r['entries'], 1):10.2f}")
    digests = {r["digest"] for r in results}
    ok = len(digests) == 1 and all(r["entries"] == args.entries for r in results)
    if not args.skip_memory:
        same = Path(stream_path).read_bytes() == Path(memory_path).read_bytes()
        print(f"streamed file == in-memory file byte for byte: {same}")
        ok &= same
    print(f"round trip verified (digest {results[0]['digest']}): {ok}")
    stream_peak = max(r["peak_rss_mb"] for r in results if r["phase"].endswith("stream"))
    within = stream_peak < args.limit_mb
    print(f"streaming peak RSS {stream_peak:.0f} MB {'<' if within else '>='} {args.limit_mb:.0f} MB budget: "
          f"{'OK' if within else 'OVER'}")
    if tmp:
        tmp.cleanup()
    return 0 if ok and within else 1


if __name__ == "__main__":
    sys.exit(main())
