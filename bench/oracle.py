"""Reference codes that are *told* the folder layout: how many bytes the structure leaves.

The structured workloads (:mod:`pladacodec_bench.workloads`) select images folder by
folder: within a folder every image is equally likely to be picked (its score is the
folder's relevance plus i.i.d. noise), and labels are the folder's dominant label with
some purity, else uniform.  ``.plada`` is not told where folders start (it infers runs
from the gaps, or uses a layout only when given one: ``.plada+folders``); these codes are.

**Folder oracle** (:func:`folder_oracle_bits`), a two-part code per block of the selection:

* **indices** — which of the ``F`` folders are used (``log2 C(F, u)`` bits), each used
  folder's count ``k_f`` (``log2 n_f`` bits) and which ``k_f`` of its ``n_f`` images
  (``log2 C(n_f, k_f)`` bits: positions inside a folder are exchangeable);
* **labels** — per used folder its most frequent label ``m_f`` (``log2 C`` bits) and a
  purity ``pi`` from {0.9, 0.7, 0.5} (``log2 3`` bits), then every label at
  ``-log2(pi * [l = m_f] + (1 - pi) / C)`` bits with the best of the three ``pi``.

It knows the structure but learns nothing across folders: its count and mode fields cost
the same in every folder.

**Generative oracle** (:func:`generative_oracle_bits`), the code issue 3 calls "an oracle
that knows the generating process exactly": the selection's probability under the
generator's own model and parameters, given the layout, as one arithmetic code would spend
it (``-log2 P``; ``k`` is sent first).  Each folder has a latent type: *relevant*
(probability ``n_relevant_folders / F``), *Safety Net* (``safety_net_folders / F``) or
*background*; a latent relevance ``r`` drawn from the type's normal law; each image is
picked independently with ``p(r) = P(r + noise > t)``, ``t`` being the score threshold at
which the expected count is ``k`` minus the Safety Net (from the parameters and ``k``), plus,
in a Safety-Net folder, with the Safety Net's rate; labels come from a uniformly drawn
dominant label with the type's purity (in a Safety-Net folder: the expected share of its
picks that are Safety-Net picks, which carry the folder's class).  The relevance is
integrated out on a grid, the type and the dominant label are summed out.

It is a proper code (its probabilities over every selection and labelling sum to 1;
``tests/test_bench_workloads.py`` checks it by enumeration, and that the generator's own
parameters give shorter codes than wrong ones).  Where it simplifies the generator
(relevant folders drawn independently rather than in neighbourhoods: a few hundred bytes
on ImageNet-21K; the top-``k`` rule as independent picks above ``t``; a Safety-Net folder's
picks mixed by their expected shares) it can only come out *longer* than the
generator's entropy.  So no coder can expect to beat it by more than that on these
workloads, and a coder that is *not* told the layout pays, on top, for inferring the
folder boundaries.

>>> from pladacodec_bench.workloads import PROFILES, folder_starts, make_selection
>>> sel = make_selection("in1k-c10", 0.01)
>>> index_bits, label_bits = folder_oracle_bits(sel, folder_starts("in1k-c10"))
>>> 4_000 < index_bits / 8 < 5_000 and 1_000 < label_bits / 8 < 1_500
True
>>> bits = generative_oracle_bits(sel, folder_starts("in1k-c10"), PROFILES["in1k-c10"])
>>> 5_000 < bits / 8 < (index_bits + label_bits) / 8
True
"""

from __future__ import annotations

import math

import numpy as np

from pladacodec_bench.workloads import Selection, WorkloadParams

__all__ = ["folder_oracle_bits", "generative_oracle_bits", "ORACLE_PURITIES"]

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


# --- the generative oracle -------------------------------------------------------------------

_GRID = 601  # relevance grid points per folder type, over mean +- 7 sd
_LN2 = math.log(2.0)


def _log_normal_cdf(x: np.ndarray) -> np.ndarray:
    """ln Phi(x), accurate in both tails (erfc below -30 would underflow: asymptotic series there)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    far = x < -30.0
    near = ~far
    out[near] = np.log(0.5 * np.vectorize(math.erfc, otypes=[float])(-x[near] / math.sqrt(2.0)))
    z = x[far]
    out[far] = -0.5 * z * z - np.log(-z) - 0.5 * math.log(2.0 * math.pi) + np.log1p(-1.0 / (z * z) + 3.0 / z**4)
    return out


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(a - top), axis=axis))


def _pick_share(t: float, mean: float, sd: float, noise_sd: float) -> float:
    """P(r + noise > t) for a relevance r ~ N(mean, sd): the expected share of a folder type's images
    above the threshold."""
    return 0.5 * math.erfc((t - mean) / math.hypot(sd, noise_sd) / math.sqrt(2.0))


def _threshold(params: WorkloadParams, n_main: int) -> float:
    """The score threshold t at which the expected number of images above it is n_main."""
    types = _folder_types(params, params.n_folders, 0, 0.0)  # without a Safety Net t is not used
    lo, hi = -50.0, 50.0
    for _ in range(200):
        t = 0.5 * (lo + hi)
        expected = sum(
            weight * params.n_reference * _pick_share(t, mean, sd, params.image_noise_sd)
            for weight, mean, sd, _, _ in types
        )
        lo, hi = (t, hi) if expected > n_main else (lo, t)
    return 0.5 * (lo + hi)


def _folder_types(params: WorkloadParams, n_folders: int, n_safety: int, t: float) -> list[tuple]:
    """(weight, relevance mean, relevance sd, extra pick rate, label purity) of the three folder
    types: relevant, Safety-Net (background folders that also get the Safety Net's picks, whose
    labels are the folder's class), background."""
    n_relevant = min(params.n_relevant_folders, n_folders)
    n_net = min(params.safety_net_folders, n_folders - n_relevant) if n_safety else 0
    types = [(n_relevant / n_folders, params.relevance_mean, params.relevance_sd, 0.0, params.label_purity)]
    if n_net:
        mean_size = params.n_reference / n_folders
        net_picks = n_safety / n_net  # per Safety-Net folder, spread over its images
        main_picks = mean_size * _pick_share(t, 0.0, params.background_sd, params.image_noise_sd)
        # a pick there carries the folder's class if it is a Safety-Net pick; read that as a purity
        types.append((n_net / n_folders, 0.0, params.background_sd, min(net_picks / mean_size, 0.5), net_picks / (net_picks + main_picks)))
    types.append(((n_folders - n_relevant - n_net) / n_folders, 0.0, params.background_sd, 0.0, params.background_purity))
    return types


def _folder_log_probs(
    n_f: np.ndarray, k_f: np.ndarray, label_keys: np.ndarray, label_counts: np.ndarray, params: WorkloadParams, t: float,
    n_safety: int = 0,
) -> np.ndarray:
    """Natural-log probability of each folder's picks and labels under the generator's model at
    threshold t with ``n_safety`` Safety-Net picks.  ``label_keys`` / ``label_counts``: (folder,
    count) of every (folder, label) pair present, sorted by folder."""
    n_folders = len(n_f)
    c = params.n_classes
    present = np.bincount(label_keys, minlength=n_folders)
    per_type = []
    for weight, mean, sd, extra, purity in _folder_types(params, n_folders, n_safety, t):
        if weight <= 0.0:
            continue
        sd = max(sd, 1e-9)  # a degenerate type: every folder of it has relevance `mean`
        grid = np.linspace(mean - 7.0 * sd, mean + 7.0 * sd, _GRID)
        log_w = -0.5 * ((grid - mean) / sd) ** 2
        log_w -= _logsumexp(log_w, axis=0)
        log_pick = _log_normal_cdf((grid - t) / params.image_noise_sd)
        log_skip = _log_normal_cdf((t - grid) / params.image_noise_sd)
        if extra > 0.0:  # picked by the threshold or by the extra draw
            log_pick = np.logaddexp(math.log(extra), math.log1p(-extra) + log_pick)
            log_skip = log_skip + math.log1p(-extra)
        picks = _logsumexp(log_w[None, :] + k_f[:, None] * log_pick[None, :] + (n_f - k_f)[:, None] * log_skip[None, :], axis=1)
        # labels: a dominant label d drawn uniformly; each label is d w.p. purity, else uniform
        hit, miss = math.log(purity + (1.0 - purity) / c), math.log((1.0 - purity) / c)
        terms = label_counts * hit + (k_f[label_keys] - label_counts) * miss
        labels = np.full(n_folders, -np.inf)
        np.logaddexp.at(labels, label_keys, terms)
        absent = c - present  # dominant labels that no pick of the folder carries
        with np.errstate(divide="ignore"):
            labels = np.logaddexp(labels, np.where(absent > 0, np.log(np.maximum(absent, 1)) + k_f * miss, -np.inf))
        labels = np.where(k_f > 0, labels - math.log(c), 0.0)
        per_type.append(math.log(weight) + picks + labels)
    return _logsumexp(np.stack(per_type), axis=0)


def generative_oracle_bits(sel: Selection, starts: np.ndarray, params: WorkloadParams) -> float:
    """Bits of the generative oracle (module docstring) for ``sel`` over the folders ``starts``
    (first index of each folder, then N), with the generator's parameters ``params``."""
    n_f = np.diff(starts).astype(np.float64)
    folder = np.searchsorted(starts, sel.indices.astype(np.int64), side="right") - 1
    k_f = np.bincount(folder, minlength=len(n_f)).astype(np.float64)
    keys, label_counts = np.unique(folder.astype(np.int64) * sel.n_classes + sel.labels.astype(np.int64), return_counts=True)
    n_safety = min(params.safety_net_per_class * sel.n_classes, round(params.safety_net_max_fraction * sel.k))
    t = _threshold(params, max(sel.k - n_safety, 1))
    log_p = _folder_log_probs(n_f, k_f, keys // sel.n_classes, label_counts.astype(np.float64), params, t, n_safety)
    return math.log2(sel.n_reference + 1) - float(log_p.sum()) / _LN2
