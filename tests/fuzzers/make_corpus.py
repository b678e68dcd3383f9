"""Build the seed corpus of real ``.plada`` files: every coding method, many shapes.

Seeds are forced through each index method and each label method of the
container registry (``_INDEX_CODERS`` x ``_LABEL_CODERS``), so a method added
there gets seeds without touching this file.  Shapes cover empty, tiny, sparse,
dense, multi-block, constant labels, N near the 2**40 limit and every optional
header field.  Everything is seeded, so the corpus is the same on every run.

    python tests/fuzzers/make_corpus.py            # (re)write tests/fuzzers/corpus/
    python tests/fuzzers/make_corpus.py --check    # fail if the committed corpus is stale
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import sys
from pathlib import Path

import numpy as np

import pladacodec
from pladacodec import _container
from pladacodec import _spec as S

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"


@functools.lru_cache(maxsize=64)
def synthetic_folders(n_reference: int) -> pladacodec.FolderLayout:
    """The folder layout the tests and the fuzzer use for a reference of ``n_reference``
    images: folders of 1-61 images (a fixed pattern) over the first ~1 M indices, then one
    folder holding the rest.  Files of the folder methods (index 6, label 5) are coded with
    it, and every decode in the damage tests and the fuzzer passes it."""
    k = np.arange(1 << 15, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(1 + (k * 7919) % 61)))
    return pladacodec.FolderLayout(starts[starts < n_reference], n_reference)


def folders_for(data) -> pladacodec.FolderLayout | None:
    """:func:`synthetic_folders` for the N a (possibly damaged) file's header claims, else None."""
    try:
        return synthetic_folders(pladacodec.read_header(data).n_reference)
    except pladacodec.PladaError:
        return None


def _shapes():
    """(name, indices, labels, n_reference, encode kwargs) for every seed shape."""
    rng = np.random.default_rng(20240601)
    yield "tiny", [3, 7, 12], [0, 1, 1], 100, {}
    yield "one", [41], [0], 42, {"n_classes": 1}
    idx = np.sort(rng.choice(1_000_000, 400, replace=False))
    yield "sparse", idx, rng.integers(0, 10, 400), 1_000_000, {
        "class_names": [f"class {c} ☃" for c in range(10)],
        "reference_fingerprint": bytes(range(32)),
        "metadata": {"teacher": "tiny", "budget": 0.01, "nested": {"a": [1, 2, None]}},
    }
    idx = np.sort(rng.choice(3000, 1500, replace=False))
    yield "dense", idx, rng.integers(0, 5, 1500), 3000, {}
    idx = np.sort(rng.choice(100_000, 300, replace=False))
    yield "blocks", idx, rng.integers(0, 300, 300), 100_000, {"block_entries": 64, "n_classes": 300}
    idx = np.sort(rng.choice(50_000, 200, replace=False))
    yield "constant", idx, np.full(200, 3), 50_000, {"n_classes": 7}
    clustered = np.unique(np.concatenate([s + np.arange(40) for s in rng.choice(10**6, 8, replace=False)]))
    yield "clustered", clustered, rng.integers(0, 3, len(clustered)), 10**6 + 64, {}
    idx = np.unique(rng.integers(0, S.MAX_N_REFERENCE, 60, dtype=np.uint64))
    yield "huge_n", idx, rng.integers(0, 3, len(idx)), S.MAX_N_REFERENCE, {}
    yield "wide_c", [0, 1, 2, 3], [0, S.MAX_CLASSES - 1, 17, 65000], 4, {"n_classes": S.MAX_CLASSES}


def build_corpus() -> dict[str, bytes]:
    """Every seed as ``{file name: bytes}``; shapes a method cannot code are skipped."""
    out: dict[str, bytes] = {
        "empty.plada": pladacodec.encode([], [], 10, n_classes=2),
    }
    for index_method in sorted(_container._INDEX_CODERS):
        for label_method in sorted(_container._LABEL_CODERS):
            iname = _container.METHOD_NAMES.get(("index", index_method), f"index{index_method}")
            lname = _container.METHOD_NAMES.get(("label", label_method), f"label{label_method}")
            for shape, indices, labels, n_reference, kwargs in _shapes():
                try:
                    data = pladacodec.encode(
                        indices, labels, n_reference, index_methods=[index_method], label_methods=[label_method],
                        folders=synthetic_folders(n_reference), **kwargs,
                    )
                except (pladacodec.PladaEncodeError, TypeError):
                    continue  # e.g. a bitmap cannot span 2**40 (TypeError before the fix of _best)
                out[f"{iname}_{lname}_{shape}.plada"] = data
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CORPUS_DIR)
    parser.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    args = parser.parse_args(argv)
    corpus = build_corpus()
    if args.check:
        stale = [n for n, d in corpus.items() if not (args.out / n).is_file() or (args.out / n).read_bytes() != d]
        for name in stale:
            print(f"stale or missing: {name}")
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.plada"):
        if old.name not in corpus:
            old.unlink()
    for name, data in sorted(corpus.items()):
        (args.out / name).write_bytes(data)
        print(f"{name:45s} {len(data):7,d} B  sha256 {hashlib.sha256(data).hexdigest()[:12]}")
    print(f"{len(corpus)} seeds in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
