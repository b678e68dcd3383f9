"""A folder-aware reference code: how many bytes a coder needs that is *told* the folder layout.

The structured workloads (:mod:`pladacodec_bench.workloads`) select images folder by
folder: within a folder every image is equally likely to be picked (its score is the
folder's relevance plus i.i.d. noise), and labels are the folder's dominant label with
some purity, else uniform.  A coder that knows where every folder starts (``.plada`` does
not: it has to infer runs from the gaps) can send, per block of the selection:

* **indices** — which of the ``F`` folders are used (``log2 C(F, u)`` bits), each used
  folder's count ``k_f`` (``log2 n_f`` bits) and which ``k_f`` of its ``n_f`` images
  (``log2 C(n_f, k_f)`` bits: positions inside a folder are exchangeable);
* **labels** — per used folder its most frequent label ``m_f`` (``log2 C`` bits) and a
  purity ``pi`` from {0.9, 0.7, 0.5} (``log2 3`` bits), then every label at
  ``-log2(pi * [l = m_f] + (1 - pi) / C)`` bits with the best of the three ``pi``.

This is a two-part code, not a lower bound (a smarter count or purity model can do a few
per cent better, and it is told each folder's mode for ``log2 C`` bits), but it knows the
generator's structure exactly; issue 3 calls this "an oracle that knows the generating
process".  ``bench/run.py`` reports it as ``folder oracle`` next to the baselines, and flags
rows whose target lies below it.

>>> from pladacodec_bench.workloads import folder_starts, make_selection
>>> sel = make_selection("in1k-c10", 0.01)
>>> index_bits, label_bits = folder_oracle_bits(sel, folder_starts("in1k-c10"))
>>> 4_000 < index_bits / 8 < 5_000 and 1_000 < label_bits / 8 < 1_500
True
"""

from __future__ import annotations

import math

import numpy as np

from pladacodec_bench.workloads import Selection

__all__ = ["folder_oracle_bits", "ORACLE_PURITIES"]

ORACLE_PURITIES = (0.9, 0.7, 0.5)


def _log2_binomial(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    lg = np.vectorize(math.lgamma, otypes=[float])
    return (lg(n + 1.0) - lg(k + 1.0) - lg(n - k + 1.0)) / math.log(2)


def folder_oracle_bits(sel: Selection, starts: np.ndarray) -> tuple[float, float]:
    """(index bits, label bits) of the folder-aware code for ``sel`` over the folders ``starts``
    (first index of each folder, then N: :func:`~pladacodec_bench.workloads.folder_starts`)."""
    n_folders = len(starts) - 1
    if sel.k == 0:
        return 0.0, 0.0
    folder = np.searchsorted(starts, sel.indices.astype(np.int64), side="right") - 1
    k_f = np.bincount(folder, minlength=n_folders)
    used = np.flatnonzero(k_f)
    n_f = np.diff(starts)[used].astype(np.float64)
    index_bits = float(
        _log2_binomial(np.array([n_folders], float), np.array([len(used)], float))[0]
        + np.log2(n_f).sum()
        + _log2_binomial(n_f, k_f[used].astype(np.float64)).sum()
    )
    # labels: per used folder the count of its most frequent label
    c = sel.n_classes
    keys, counts = np.unique(folder.astype(np.int64) * c + sel.labels.astype(np.int64), return_counts=True)
    key_folder = keys // c
    first = np.flatnonzero(np.r_[True, key_folder[1:] != key_folder[:-1]])
    hits = np.maximum.reduceat(counts, first).astype(np.float64)
    sizes = k_f[key_folder[first]].astype(np.float64)
    costs = [
        -(hits * math.log2(pi + (1 - pi) / c) + (sizes - hits) * math.log2((1 - pi) / c))
        for pi in ORACLE_PURITIES
    ]
    label_bits = float(np.minimum.reduce(costs).sum() + len(used) * (math.log2(c) + math.log2(len(ORACLE_PURITIES))))
    if c == 1:
        label_bits = 0.0
    return index_bits, label_bits
