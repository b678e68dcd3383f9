"""Seeds for the .plada fuzzers (format 2.0): every pair of coding methods, many shapes.

The full seed corpus is built in memory, never stored: :func:`build_corpus` forces every
(index method, label method) pair of :data:`pladacodec._methods.METHODS` (a method added
there gets seeds without touching this file) through every shape: empty, tiny, sparse with
every optional header field, dense, several blocks, constant labels, clustered runs, N at
the 2**40 limit and C at the 65,535 limit.  Everything is seeded, so it is the same on every
run.  Only a small seed set is committed under ``corpus/`` (the coverage-guided fuzzer
starts from a folder): one file per method pair plus a few special shapes, each under
``SEED_MAX_BYTES``.

    python tests/fuzzers/make_corpus.py             # (re)write the seed set in tests/fuzzers/corpus/
    python tests/fuzzers/make_corpus.py --check     # fail if the committed seed set is stale
    python tests/fuzzers/make_corpus.py --all --out DIR   # the full corpus (the campaign's seeds)
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import sys
from pathlib import Path

import numpy as np

import pladacodec
from pladacodec import _methods
from pladacodec import _spec as S

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
SEED_MAX_BYTES = 4096  # a committed seed stays small


@functools.lru_cache(maxsize=64)
def synthetic_folders(n_reference: int) -> pladacodec.FolderLayout:
    """The folder layout the tests and the fuzzer use for a reference of ``n_reference``
    images: folders of 1-61 images (a fixed pattern) over the first ~1 M indices, then one
    folder holding the rest.  Files of the folder methods (index 3, label 4) are coded with
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


def method_pairs() -> list[tuple[int, int]]:
    """Every (index method, label method) pair of the format."""
    return [(i, c) for i in sorted(_methods.BY_KIND["index"]) for c in sorted(_methods.BY_KIND["label"])]


def seed_name(index_method: int, label_method: int, shape: str) -> str:
    iname = _methods.method_name("index", index_method)
    lname = _methods.method_name("label", label_method)
    return f"{iname}_{lname}_{shape}.plada"


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


def encode_seed(index_method: int, label_method: int, indices, labels, n_reference: int, **kwargs) -> bytes:
    """One file forced through one method pair (with the synthetic layout, which the folder
    methods need and the others ignore)."""
    return pladacodec.encode(
        indices, labels, n_reference, index_methods=[index_method], label_methods=[label_method],
        folders=synthetic_folders(n_reference), **kwargs,
    )


@functools.lru_cache(maxsize=1)
def _corpus() -> tuple[tuple[str, bytes], ...]:
    out: dict[str, bytes] = {"empty.plada": pladacodec.encode([], [], 10, n_classes=2)}
    shapes = list(_shapes())
    for index_method, label_method in method_pairs():
        for shape, indices, labels, n_reference, kwargs in shapes:
            try:
                data = encode_seed(index_method, label_method, indices, labels, n_reference, **kwargs)
            except pladacodec.PladaEncodeError:
                continue  # a method that cannot code this shape
            out[seed_name(index_method, label_method, shape)] = data
    return tuple(out.items())


def build_corpus() -> dict[str, bytes]:
    """Every seed as ``{file name: bytes}`` (built once per process); shapes a method cannot
    code are skipped, but every method pair has seeds."""
    return dict(_corpus())


# The committed seed set: one file per method pair (its clustered shape: runs, jumps and folder
# changes, what the adaptive models are for), and the special shapes on one pair each.
SEED_SPECIAL = (
    ("empty.plada", None),
    (seed_name(S.INDEX_GOLOMB, S.LABEL_IID, "sparse"), "every optional header field"),
    (seed_name(S.INDEX_GOLOMB, S.LABEL_IID, "huge_n"), "N = 2**40"),
    (seed_name(S.INDEX_CONTEXT, S.LABEL_CONTEXT, "wide_c"), "C = 65,535"),
    (seed_name(S.INDEX_CONTEXT, S.LABEL_DRIFT, "blocks"), "several blocks"),
    (seed_name(S.INDEX_CONTEXT_FOLDERS, S.LABEL_CONTEXT_FOLDERS, "blocks"), "several blocks, folder methods"),
    (seed_name(S.INDEX_GOLOMB, S.LABEL_IID, "one"), "one entry, one class"),
)


def seed_set(corpus: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """The small set of seeds committed under ``corpus/``."""
    corpus = build_corpus() if corpus is None else corpus
    names = [seed_name(i, c, "clustered") for i, c in method_pairs()] + [name for name, _ in SEED_SPECIAL]
    return {name: corpus[name] for name in names}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CORPUS_DIR)
    parser.add_argument("--all", action="store_true", help="write the full corpus, not the committed seed set")
    parser.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    args = parser.parse_args(argv)
    corpus = build_corpus() if args.all else seed_set()
    if args.check:
        on_disk = {p.name for p in args.out.glob("*.plada")}
        stale = [n for n, d in corpus.items() if not (args.out / n).is_file() or (args.out / n).read_bytes() != d]
        stale += sorted(on_disk - set(corpus))
        for name in stale:
            print(f"stale, missing or extra: {name}")
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.plada"):
        if old.name not in corpus:
            old.unlink()
    for name, data in sorted(corpus.items()):
        (args.out / name).write_bytes(data)
        print(f"{name:50s} {len(data):7,d} B  sha256 {hashlib.sha256(data).hexdigest()[:12]}")
    print(f"{len(corpus)} seeds in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
