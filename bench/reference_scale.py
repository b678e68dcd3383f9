"""Reference sets at ImageNet-21K scale: open time, peak memory, memory per DataLoader worker.

Writes a synthetic manifest of 14,197,122 paths in 21,841 synset folders
(``nXXXXXXXX/nXXXXXXXX_K.JPEG``, paths only, no images) and a 1 % task over it, then
measures, each in a fresh process:

* ``Reference.from_manifest`` (parse, check, fingerprint): wall time and peak RSS;
* the folder layout of that reference (what a task packed with ``--folders`` needs);
* ``PladaDataset(reference, task)`` for the 1 % task: open time and peak RSS (with and
  without the RSS that importing torch costs by itself);
* a ``DataLoader`` with 4 forked workers that walks the whole dataset: each worker's
  RSS and its private memory (what it did not share with the parent) at the end.

Usage::

    python3 -m pladacodec_bench.reference_scale [--n 14197122] [--folders 21841] [--workdir DIR]

It prints a table; ``--json FILE`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_IMAGENET21K = 14_197_122
FOLDERS_IMAGENET21K = 21_841


def write_manifest(path: Path, n: int, folders: int, seed: int = 0) -> None:
    """A manifest shaped like ImageNet-21K's: synset folders of uneven size, file names
    ``SYNSET_K.JPEG`` with K scattered numbers, sorted as the canonical order sorts them."""
    rng = np.random.default_rng(seed)
    sizes = rng.gamma(2.0, n / folders / 2.0, size=folders)
    sizes = np.maximum(1, np.floor(sizes * (n / sizes.sum()))).astype(np.int64)
    sizes[: n - int(sizes.sum())] += 1 if n > sizes.sum() else 0
    while sizes.sum() > n:
        sizes[np.argmax(sizes)] -= int(sizes.sum() - n)
    synsets = np.sort(rng.choice(20_000_000, size=folders, replace=False)) + 1_000_000
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for syn, size in zip(synsets.tolist(), sizes.tolist()):
            name = f"n{syn:08d}"
            ks = rng.choice(max(2 * size, 100), size=size, replace=False)
            files = sorted(f"{name}_{k}.JPEG" for k in ks.tolist())
            f.write("".join(f"{name}/{x}\n" for x in files))
    os.replace(tmp, path)


_CHILD = r"""
import json, os, resource, sys, time
manifest, task, mode = sys.argv[1:4]
def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
def rss_mb():
    return _status("VmRSS")
def peak_mb():  # VmHWM: this process's own peak (ru_maxrss would include the parent's at fork)
    return _status("VmHWM")
def reset_peak():  # Linux: writing 5 to clear_refs resets VmHWM to the current RSS
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
out = {}
if mode != "reference":
    import torch  # noqa: F401  (its own memory, reported apart)
import pladacodec
from pladacodec.reference import Reference
out["rss_after_imports_mb"] = rss_mb()
out["peak_after_imports_mb"] = peak_mb()
reset_peak()
t, c = time.perf_counter(), time.process_time()
ref = Reference.from_manifest(manifest, root="/nonexistent-root")
out["open_s"], out["open_cpu_s"] = time.perf_counter() - t, time.process_time() - c
out["n"] = ref.n
if mode == "reference":
    out["peak_mb"] = peak_mb()
    out["rss_mb"] = rss_mb()
    t, c = time.perf_counter(), time.process_time()
    layout = ref.folder_layout()
    out["layout_s"], out["layout_cpu_s"] = time.perf_counter() - t, time.process_time() - c
    out["folders"] = layout.n_folders
    out["peak_with_layout_mb"] = peak_mb()
else:
    from pladacodec.data import PladaDataset
    t, c = time.perf_counter(), time.process_time()
    ds = PladaDataset(ref, task, loader=lambda f: 0)
    out["dataset_s"], out["dataset_cpu_s"] = time.perf_counter() - t, time.process_time() - c
    out["total_open_s"] = out["open_s"] + out["dataset_s"]
    out["total_open_cpu_s"] = out["open_cpu_s"] + out["dataset_cpu_s"]
    del ref
    import gc; gc.collect()
    out["k"] = len(ds)
    out["peak_mb"] = peak_mb()
    out["rss_mb"] = rss_mb()
    if mode == "workers":
        from torch.utils.data import DataLoader
        # the real __getitem__ (path lookup, label), with a loader that does not open the file
        loader = DataLoader(ds, batch_size=4096, num_workers=4, persistent_workers=True,
                            multiprocessing_context="fork")
        it = iter(loader)
        seen = sum(len(b[0]) for b in it)
        workers = []
        for w in it._workers:
            info = {}
            with open(f"/proc/{w.pid}/smaps_rollup") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in ("Rss", "Pss", "Private_Clean", "Private_Dirty", "Shared_Clean", "Shared_Dirty"):
                        info[k] = int(v.split()[0]) / 1024
            workers.append(info)
        out["items_seen"] = seen
        out["workers"] = workers
print(json.dumps(out))
"""


def _run(manifest: Path, task: Path, mode: str) -> dict:
    res = subprocess.run([sys.executable, "-c", _CHILD, str(manifest), str(task), mode],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=N_IMAGENET21K)
    ap.add_argument("--folders", type=int, default=FOLDERS_IMAGENET21K)
    ap.add_argument("--keep", type=float, default=0.01)
    ap.add_argument("--workdir", type=Path, default=None, help="Keep the manifest here (reused when present).")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import pladacodec

    work = args.workdir or Path(tempfile.mkdtemp(prefix="plada-refscale-"))
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / f"synthetic-{args.n}-{args.folders}.manifest"
    if not manifest.exists():
        t = time.perf_counter()
        write_manifest(manifest, args.n, args.folders)
        print(f"wrote {manifest} ({manifest.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s",
              file=sys.stderr)
    from pladacodec.reference import Reference

    ref = Reference.from_manifest(manifest)  # to make the task (the measured runs are fresh processes)
    rng = np.random.default_rng(1)
    k = int(round(args.keep * ref.n))
    indices = np.sort(rng.choice(ref.n, size=k, replace=False))
    labels = rng.integers(0, 100, size=k)
    task = work / "task.plada"
    pladacodec.write(task, indices, labels, ref.n, n_classes=100, reference_fingerprint=ref.fingerprint)
    del ref

    r = _run(manifest, task, "reference")
    d = _run(manifest, task, "dataset")
    w = _run(manifest, task, "workers")
    rows = [
        ("Reference.from_manifest", f"{r['open_s']:.2f} s ({r['open_cpu_s']:.2f} s CPU)",
         f"{max(r['peak_mb'], r['peak_after_imports_mb']):.0f} MB",
         f"peak {r['peak_mb'] - r['rss_after_imports_mb']:.0f} MB above the {r['rss_after_imports_mb']:.0f} MB "
         f"after `import pladacodec`; holds {r['rss_mb'] - r['rss_after_imports_mb']:.0f} MB after"),
        ("  then folder_layout()", f"{r['layout_s']:.2f} s ({r['layout_cpu_s']:.2f} s CPU)",
         f"{r['peak_with_layout_mb']:.0f} MB", f"{r['folders']:,} folders"),
        (f"Reference.from_manifest + PladaDataset, {d['k']:,}-image task",
         f"{d['total_open_s']:.2f} s ({d['total_open_cpu_s']:.2f} s CPU)",
         f"{max(d['peak_mb'], d['peak_after_imports_mb']):.0f} MB",
         f"peak {d['peak_mb'] - d['rss_after_imports_mb']:.0f} MB above the {d['rss_after_imports_mb']:.0f} MB "
         f"after importing torch and pladacodec; RSS after open {d['rss_mb']:.0f} MB (reference dropped)"),
    ]
    for i, info in enumerate(w["workers"]):
        private = info.get("Private_Clean", 0) + info.get("Private_Dirty", 0)
        rows.append((f"DataLoader worker {i + 1} of 4", "", f"{info['Rss']:.0f} MB",
                     f"private {private:.0f} MB, PSS {info['Pss']:.0f} MB (after {w['items_seen']:,} items)"))
    print(f"\nreference: {r['n']:,} paths in {r['folders']:,} folders, manifest "
          f"{manifest.stat().st_size / 1e6:.0f} MB; task keeps {args.keep:.1%}\n")
    width = max(len(x[0]) for x in rows)
    print(f"| {'step':<{width}} | time | peak RSS | notes |")
    print(f"|{'-' * (width + 2)}|---:|---:|---|")
    for name, t, m, note in rows:
        print(f"| {name:<{width}} | {t} | {m} | {note} |")
    result = {"reference": r, "dataset": d, "workers": w}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
