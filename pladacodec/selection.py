"""Which reference images to send: selection strategies, Safety-Net, byte budget.

numpy only (no torch).  The input is what :mod:`pladacodec.teacher` computes
for every reference image: the energy ``E(x) = -T * logsumexp(f(x) / T)``,
the teacher's argmax label and the softmax entropy.  The output is a
:class:`Selection`: sorted indices and their labels, ready for
:func:`pladacodec.encode`.

Rules
-----
Ordering.  Each strategy ranks images by a key, smallest first:
``lowest-energy`` by energy, ``highest-energy`` by minus energy (the paper's
choice for far-out-of-domain targets), ``entropy`` by softmax entropy, and
``random`` by a seeded random permutation.  Equal keys are ranked by index,
so every result is deterministic.

Non-finite scores.  An image whose energy is NaN (or, for ``entropy``, whose
entropy is NaN) is never selected and does not count in N_c; its label is
ignored.  ``-inf`` and ``+inf`` energies are ordinary extreme values: with
``lowest-energy`` an image whose logits overflowed to ``+inf`` comes first.
Asking for more images than there are eligible ones is an error.

Size.  ``count=K`` asks for K images; ``keep=p`` for ``round_half_up(p * N)``
with N the number of reference images (eligible or not).
:func:`select_budget` finds the largest K whose packed file fits a byte budget.

Safety-Net (``safety_net=s``, ``alpha=a``).  ``R = round_half_up(s * K)``
slots are reserved for per-class quotas K_c; the other ``K - R`` go to the
best-ranked images not already picked, whatever their class.  N_c counts the
eligible images whose teacher argmax is c; C+ is the number of classes with
N_c > 0.  A class with N_c = 0 gets no quota (for a < 0, N_c^a is undefined
there; for a >= 0 it would be useless).  Quotas:

* ``R >= C+``: every present class first gets one slot; the remaining
  ``R - C+`` are shared in proportion to ``w_c = N_c ** a`` by the
  largest-remainder (Hamilton) method, so the quotas sum to R exactly.
* ``R < C+``: the R present classes with the largest ``w_c`` get one slot
  each (the rarest classes for ``a < 0``, the commonest for ``a > 0``).
* Remainder ties, and ties in ``w_c``, go to the smaller class index.
* A quota above N_c is cut to N_c and the surplus is shared again, by the
  same rule, among the classes still below their N_c, until none exceeds it.
  (``K <= sum N_c`` always holds, so the quotas always sum to R.)

Each class's quota is filled with its best-ranked images under the chosen
strategy.  So with ``R >= C+`` every class that the teacher predicts at least
once appears in the selection.

Automatic choice (``strategy="auto"``).  The paper leaves open which strategy
suits a new task; ``auto`` tries candidates and keeps the one a cheap proxy
student likes best.  It needs per-image *features* of the reference set (any
fixed representation, e.g. what :func:`pladacodec.teacher.score` records with
``feature_module=``) and a labelled *validation* set of the target in the same
representation, ``(features, labels)``: never the test set.  Each candidate
(strategy x Safety-Net setting, :data:`AUTO_CANDIDATES`, at each size when
*keep* or *count* is a list) is selected; a multinomial logistic regression is
fitted on the features of (at most ``AUTO_MAX_TRAIN`` of) its images with
their teacher labels and scored by its accuracy on the validation set
(:func:`proxy_accuracy`).  The best proxy accuracy wins (ties: the earlier
candidate).  The result's :meth:`Selection.metadata` records the choice and
every candidate's score, so the written file says how it was made.

Cost.  Per candidate: one ranking (an argsort of N scores, at most ~1 GB of
index arrays at N = 14.2 M) and one fit on at most ``AUTO_MAX_TRAIN`` rows of
the features.  At ImageNet-21K scale (N = 14,197,122) the features belong on
disk: 256-d float16 is a 7.3 GB memory-mapped array (``score(...,
feature_dim=256)``), of which each candidate reads only its training rows
(20,000 x 512 B = 10 MB).  Measured on a shared 2-core x86-64 machine (load
average ~4, so an idle one is faster): ranking and picking 1 % took 14-19 s
per candidate at peak 1.0 GB RSS; a fit on 20,000 x 256 features took 205 s
with 1,000 classes (the cost grows with rows x dims x classes: about 40 s
with 200).  The five default candidates at one keep rate take about 20
minutes with 1,000 classes, 5 minutes with 200; every extra keep rate adds as
much again.  Lower ``AUTO_MAX_TRAIN`` (``proxy_accuracy(max_train=...)``) to
trade the proxy's fidelity for time.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PladaError

__all__ = [
    "STRATEGIES",
    "PladaSelectionError",
    "Selection",
    "select",
    "select_budget",
    "safety_net_quotas",
    "parse_size",
    "parse_keep",
    "Scores",
    "load_scores",
    "SCORES_FORMAT",
    "SCORES_VERSION",
    "SCORES_META",
    "shard_path",
    "shard_done_path",
    "FEATURE_DTYPE",
    "AUTO_CANDIDATES",
    "AUTO_MAX_TRAIN",
    "Candidate",
    "proxy_accuracy",
]

STRATEGIES: tuple[str, ...] = ("lowest-energy", "highest-energy", "entropy", "random")
#: ``select(strategy=...)`` also accepts "auto" (module docstring)
AUTO = "auto"
AUTO_MAX_TRAIN = 20_000
AUTO_SAFETY_NET = 0.5


@dataclass(frozen=True)
class Candidate:
    """One selection rule that ``strategy="auto"`` tries: a ranking strategy, and for a
    Safety-Net the share of slots reserved for class quotas and its exponent."""

    strategy: str
    safety_net: float = 0.0
    alpha: float | None = None

    @property
    def name(self) -> str:
        if self.safety_net:
            return f"safety-net(alpha={self.alpha:g})"
        return self.strategy


#: the default candidates: the paper's strategies (its two Safety-Net exponents, with
#: half of the slots reserved) and random; ``entropy`` joins when entropies are given
AUTO_CANDIDATES: tuple[Candidate, ...] = (
    Candidate("lowest-energy"),
    Candidate("lowest-energy", AUTO_SAFETY_NET, -0.2),
    Candidate("lowest-energy", AUTO_SAFETY_NET, 0.5),
    Candidate("highest-energy"),
    Candidate("random"),
)


class PladaSelectionError(PladaError, ValueError):
    """The selection request cannot be met (bad size, strategy, scores...)."""


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


# --------------------------------------------------------------------------
# Safety-Net quotas
# --------------------------------------------------------------------------


def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Split *total* integer slots in proportion to *weights* (Hamilton's method).

    Remainder ties go to the smaller index.  Entries with weight 0 get 0.
    """
    out = np.zeros(len(weights), dtype=np.int64)
    wsum = float(weights.sum())
    if total <= 0 or wsum <= 0.0:
        return out
    exact = weights * (total / wsum)
    base = np.floor(exact).astype(np.int64)
    # Guard against floating point giving sum(base) > total.
    while base.sum() > total:
        base[np.argmax(base)] -= 1
    left = total - int(base.sum())
    if left > 0:
        remainder = np.where(weights > 0, exact - base, -np.inf)
        order = np.lexsort((np.arange(len(weights)), -remainder))
        base[order[:left]] += 1
    return base


def safety_net_quotas(class_counts: Sequence[int] | np.ndarray, reserved: int, alpha: float) -> np.ndarray:
    """Per-class quotas K_c for *reserved* slots (rules in the module docstring).

    >>> safety_net_quotas([1000, 10, 0, 1], 6, alpha=0.5).tolist()
    [4, 1, 0, 1]
    >>> safety_net_quotas([1000, 10, 0, 1], 2, alpha=-0.2).tolist()
    [0, 1, 0, 1]
    >>> safety_net_quotas([1000, 1, 0, 1], 20, alpha=-1.0).tolist()
    [18, 1, 0, 1]
    """
    n_c = np.asarray(class_counts, dtype=np.int64)
    if n_c.ndim != 1 or (n_c < 0).any():
        raise PladaSelectionError("class counts must be a 1-D array of non-negative integers")
    if reserved < 0:
        raise PladaSelectionError(f"reserved slots must be >= 0, found {reserved}")
    if reserved > int(n_c.sum()):
        raise PladaSelectionError(
            f"cannot reserve {reserved:,} slots: only {int(n_c.sum()):,} images are eligible"
        )
    if not math.isfinite(alpha):
        raise PladaSelectionError(f"alpha must be finite, found {alpha}")
    present = n_c > 0
    weights = np.zeros(len(n_c), dtype=np.float64)
    weights[present] = n_c[present].astype(np.float64) ** alpha
    quotas = np.zeros(len(n_c), dtype=np.int64)
    n_present = int(present.sum())
    if reserved == 0 or n_present == 0:
        return quotas
    if reserved < n_present:
        idx = np.flatnonzero(present)
        order = np.lexsort((idx, -weights[idx]))
        quotas[idx[order[:reserved]]] = 1
        return quotas
    quotas[present] = 1
    left = reserved - n_present
    open_ = present & (quotas < n_c)
    while left > 0:
        share = _largest_remainder(left, np.where(open_, weights, 0.0))
        quotas += share
        over = quotas > n_c
        left = int((quotas - n_c)[over].sum())
        quotas[over] = n_c[over]
        open_ = quotas < n_c
    return quotas


# --------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """The images to send: *indices* sorted ascending (int64) and their *labels* (int64).

    *quotas* holds the Safety-Net quota of each class (``None`` without one);
    *class_counts* is N_c over the eligible images.
    """

    indices: np.ndarray
    labels: np.ndarray
    n_reference: int
    n_classes: int
    strategy: str
    safety_net: float = 0.0
    alpha: float | None = None
    seed: int | None = None
    quotas: np.ndarray | None = None
    class_counts: np.ndarray | None = field(default=None, repr=False)
    auto: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def count(self) -> int:
        return len(self.indices)

    def metadata(self) -> dict[str, Any]:
        """A JSON-ready description of how the selection was made (for the file header)."""
        meta: dict[str, Any] = {"strategy": self.strategy, "count": self.count}
        if self.safety_net:
            meta["safety_net"] = self.safety_net
            meta["alpha"] = self.alpha
        if self.strategy == "random":
            meta["seed"] = self.seed
        if self.auto is not None:
            meta["auto"] = self.auto
        return meta


def _ranking_key(
    strategy: str, energy: np.ndarray, entropy: np.ndarray | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(key, eligible): smaller key = better; eligible is False where a score is NaN."""
    eligible = ~np.isnan(energy)
    if strategy == "lowest-energy":
        key = energy
    elif strategy == "highest-energy":
        key = -energy
    elif strategy == "entropy":
        if entropy is None:
            raise PladaSelectionError("strategy 'entropy' needs the entropy scores")
        if entropy.shape != energy.shape:
            raise PladaSelectionError(
                f"expected {len(energy):,} entropies (one per energy), found {len(entropy):,}"
            )
        key = entropy
        eligible &= ~np.isnan(entropy)
    elif strategy == "random":
        key = np.random.default_rng(seed).permutation(len(energy))
    else:
        raise PladaSelectionError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    return key, eligible


@dataclass(frozen=True)
class _Ranking:
    """Everything about a selection that does not depend on its size (computed once)."""

    labels: np.ndarray  # all labels, as given
    order: np.ndarray  # eligible indices, best first, ties by index
    order_labels: np.ndarray  # labels[order]
    rank_in_class: np.ndarray  # rank of order[i] among the eligible images of its class
    class_counts: np.ndarray  # N_c over the eligible images
    n_classes: int
    strategy: str
    seed: int

    @property
    def n_eligible(self) -> int:
        return len(self.order)


def _rank(
    energy: np.ndarray,
    labels: np.ndarray,
    strategy: str,
    entropy: np.ndarray | None,
    n_classes: int | None,
    seed: int,
) -> _Ranking:
    energy = np.asarray(energy)
    labels = np.asarray(labels)
    if energy.ndim != 1 or labels.shape != energy.shape:
        raise PladaSelectionError(
            f"expected 1-D energy and label arrays of one length, found shapes {energy.shape} and {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise PladaSelectionError(f"labels must be integers, found dtype {labels.dtype}")
    energy = energy.astype(np.float64, copy=False)
    entropy = None if entropy is None else np.asarray(entropy, dtype=np.float64)
    key, eligible = _ranking_key(strategy, energy, entropy, seed)
    candidates = np.flatnonzero(eligible)
    order = candidates[np.argsort(key[candidates], kind="stable")]  # ties keep index order
    order_labels = labels[order].astype(np.int64)
    if len(order) and int(order_labels.min()) < 0:
        raise PladaSelectionError(f"labels must be >= 0, found {int(order_labels.min())}")
    max_label = int(order_labels.max()) if len(order) else -1
    if n_classes is None:
        n_classes = max_label + 1
    elif max_label >= n_classes:
        raise PladaSelectionError(f"label {max_label} is out of range for {n_classes} classes")
    class_counts = np.bincount(order_labels, minlength=n_classes).astype(np.int64)
    # Group the ranked images by class, keeping rank order inside each class.
    by_class = np.argsort(order_labels, kind="stable")
    starts = np.concatenate(([0], np.cumsum(class_counts)[:-1]))
    rank_in_class = np.empty(len(order), dtype=np.int64)
    rank_in_class[by_class] = np.arange(len(order)) - np.repeat(starts, class_counts)
    return _Ranking(labels, order, order_labels, rank_in_class, class_counts, int(n_classes), strategy, seed)


def _pick(r: _Ranking, count: int, safety_net: float, alpha: float) -> Selection:
    n = len(r.labels)
    if count < 0 or count > r.n_eligible:
        raise PladaSelectionError(
            f"asked for {count:,} images but {r.n_eligible:,} of the {n:,} reference images are eligible"
            + (" (the others have NaN scores)" if r.n_eligible < n else "")
        )
    if not 0.0 <= safety_net <= 1.0:
        raise PladaSelectionError(f"safety_net must be a fraction in [0, 1], found {safety_net}")
    picked = np.zeros(n, dtype=bool)
    quotas = None
    reserved = _round_half_up(safety_net * count) if safety_net else 0
    if safety_net:
        quotas = safety_net_quotas(r.class_counts, reserved, alpha)
        picked[r.order[r.rank_in_class < quotas[r.order_labels]]] = True
    rest = r.order[~picked[r.order]][: count - reserved]
    picked[rest] = True
    indices = np.flatnonzero(picked).astype(np.int64)
    return Selection(
        indices=indices,
        labels=r.labels[indices].astype(np.int64),
        n_reference=n,
        n_classes=r.n_classes,
        strategy=r.strategy,
        safety_net=float(safety_net),
        alpha=float(alpha) if safety_net else None,
        seed=r.seed if r.strategy == "random" else None,
        quotas=quotas,
        class_counts=r.class_counts if safety_net else None,
    )


def select(
    energy: np.ndarray,
    labels: np.ndarray,
    *,
    count: int | None = None,
    keep: float | None = None,
    strategy: str = "lowest-energy",
    entropy: np.ndarray | None = None,
    safety_net: float = 0.0,
    alpha: float = 0.5,
    n_classes: int | None = None,
    seed: int = 0,
    features: np.ndarray | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    candidates: Sequence[Candidate] | None = None,
) -> Selection:
    """Pick *count* images (or the fraction *keep* of all) from per-image teacher scores.

    *energy*, *labels* (and *entropy* for the ``entropy`` strategy) hold one
    value per reference image.  ``strategy="auto"`` also needs *features* (one
    row per reference image) and *validation* = ``(features, labels)`` of
    labelled target images, and accepts lists for *keep* / *count*; it tries
    *candidates* (default :data:`AUTO_CANDIDATES`).  Rules: module docstring.

    >>> import numpy as np
    >>> select(np.array([2.0, 1.0, 1.0, 0.5]), np.array([1, 0, 2, 0]), count=3).indices.tolist()
    [1, 2, 3]
    """
    if (count is None) == (keep is None):
        raise PladaSelectionError("give exactly one of count= and keep=")
    if strategy == AUTO:
        sizes = _sizes(count, keep, len(np.asarray(energy)))
        cands = _auto_candidates(candidates, entropy, safety_net)

        def make(cand: Candidate, size: int) -> Selection:
            return select(energy, labels, count=size, strategy=cand.strategy, entropy=entropy,
                          safety_net=cand.safety_net, alpha=cand.alpha if cand.safety_net else alpha,
                          n_classes=n_classes, seed=seed)

        return _choose(make, cands, sizes, features, validation, n_classes, seed,
                       keep_of={s: k for s, k in zip(sizes, _as_list(keep))} if keep is not None else {})
    if candidates is not None or validation is not None:
        raise PladaSelectionError("candidates= and validation= are for strategy='auto'")
    ranking = _rank(energy, labels, strategy, entropy, n_classes, seed)
    if keep is not None:
        if not 0.0 <= keep <= 1.0:
            raise PladaSelectionError(f"keep must be a fraction in [0, 1], found {keep}")
        count = _round_half_up(keep * len(ranking.labels))
    return _pick(ranking, int(count), safety_net, alpha)


def select_budget(
    energy: np.ndarray,
    labels: np.ndarray,
    budget: int,
    *,
    size_of: Callable[[Selection], int],
    strategy: str = "lowest-energy",
    entropy: np.ndarray | None = None,
    safety_net: float = 0.0,
    alpha: float = 0.5,
    n_classes: int | None = None,
    seed: int = 0,
    features: np.ndarray | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    candidates: Sequence[Candidate] | None = None,
) -> Selection:
    """The largest selection whose packed size, ``size_of(selection)``, fits *budget* bytes.

    With ``strategy="auto"`` each candidate gets its own largest selection under
    the budget and the proxy student picks among those.

    Binary search over the count (the packed size grows with the count; where
    entropy coding makes it dip locally the search may stop below the true
    maximum, but the result always fits).  The other arguments are those of
    :func:`select`.  Raises :class:`PladaSelectionError` when even an empty
    selection does not fit.

    >>> import numpy as np
    >>> e = np.arange(100.0); l = np.zeros(100, dtype=np.int64)
    >>> select_budget(e, l, 40, size_of=lambda s: 10 + s.count).count
    30
    """
    if strategy == AUTO:
        cands = _auto_candidates(candidates, entropy, safety_net)

        def make(cand: Candidate, _size: None) -> Selection:
            return select_budget(energy, labels, budget, size_of=size_of, strategy=cand.strategy,
                                 entropy=entropy, safety_net=cand.safety_net,
                                 alpha=cand.alpha if cand.safety_net else alpha, n_classes=n_classes, seed=seed)

        chosen = _choose(make, cands, [None], features, validation, n_classes, seed, keep_of={})
        chosen.auto["budget"] = int(budget)
        return chosen
    ranking = _rank(energy, labels, strategy, entropy, n_classes, seed)

    def attempt(k: int) -> tuple[Selection, int]:
        sel = _pick(ranking, k, safety_net, alpha)
        return sel, int(size_of(sel))

    best, size = attempt(0)
    if size > budget:
        raise PladaSelectionError(f"a budget of {budget:,} bytes is too small: an empty task takes {size:,}")
    sel_all, size_all = attempt(ranking.n_eligible)
    if size_all <= budget:
        return sel_all
    lo, hi = 0, ranking.n_eligible - 1  # size(lo) fits; every count above hi fails or is untested
    while lo < hi:
        mid = (lo + hi + 1) // 2
        sel, size = attempt(mid)
        if size <= budget:
            lo, best = mid, sel
        else:
            hi = mid - 1
    return best


# --------------------------------------------------------------------------
# Automatic choice
# --------------------------------------------------------------------------


def _as_list(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple, np.ndarray)) else [x]


def _sizes(count: Any, keep: Any, n: int) -> list[int]:
    if keep is not None:
        keeps = [float(k) for k in _as_list(keep)]
        if any(not 0.0 <= k <= 1.0 for k in keeps):
            raise PladaSelectionError(f"keep must be fractions in [0, 1], found {keeps}")
        return [_round_half_up(k * n) for k in keeps]
    return [int(c) for c in _as_list(count)]


def _auto_candidates(candidates: Sequence[Candidate] | None, entropy: np.ndarray | None,
                     safety_net: float) -> list[Candidate]:
    if candidates is not None:
        cands = list(candidates)
    else:
        share = safety_net or AUTO_SAFETY_NET
        cands = [Candidate(c.strategy, share if c.safety_net else 0.0, c.alpha) for c in AUTO_CANDIDATES]
        if entropy is not None:
            cands.insert(1, Candidate("entropy"))
    if not cands:
        raise PladaSelectionError("strategy 'auto' needs at least one candidate")
    for c in cands:
        if c.strategy not in STRATEGIES:
            raise PladaSelectionError(f"unknown candidate strategy {c.strategy!r}; expected one of {', '.join(STRATEGIES)}")
    return cands


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(0)
    sd = x.std(0)
    return mu, np.where(sd > 1e-6, sd, 1.0)


def proxy_accuracy(
    features: np.ndarray,
    indices: np.ndarray,
    labels: np.ndarray,
    val_features: np.ndarray,
    val_labels: np.ndarray,
    n_classes: int,
    *,
    max_train: int = AUTO_MAX_TRAIN,
    steps: int = 100,
    lr: float = 0.05,
    l2: float = 1e-3,
    seed: int = 0,
) -> float:
    """Validation accuracy of a logistic-regression "student" fitted on a selection.

    ``features[indices]`` (at most *max_train* rows, a seeded random subset of
    them) with the selection's *labels* train a multinomial logistic regression
    (standardised features, full-batch Adam, *steps* steps, L2 penalty *l2*);
    the result is its accuracy on ``(val_features, val_labels)``.  numpy only.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 5)); y = (x[:, 0] > 0).astype(int)
    >>> proxy_accuracy(x, np.arange(100), y[:100], x[100:], y[100:], 2) > 0.9
    True
    """
    indices = np.asarray(indices)
    labels = np.asarray(labels, dtype=np.int64)
    if len(indices) == 0:
        return 0.0
    if len(indices) > max_train:
        pick = np.sort(np.random.default_rng(seed).choice(len(indices), size=max_train, replace=False))
        indices, labels = indices[pick], labels[pick]
    x = np.asarray(features[indices], dtype=np.float32).reshape(len(indices), -1)
    xv = np.asarray(val_features, dtype=np.float32).reshape(len(val_features), -1)
    if xv.shape[1] != x.shape[1]:
        raise PladaSelectionError(
            f"validation features have {xv.shape[1]} dimensions but the reference's have {x.shape[1]}")
    mu, sd = _standardiser(x)
    x = (x - mu) / sd
    xv = (xv - mu) / sd
    n, d = x.shape
    w = np.zeros((d, n_classes), dtype=np.float32)
    b = np.zeros(n_classes, dtype=np.float32)
    onehot = np.zeros((n, n_classes), dtype=np.float32)
    onehot[np.arange(n), labels] = 1.0
    m = [np.zeros_like(w), np.zeros_like(b)]
    v = [np.zeros_like(w), np.zeros_like(b)]
    beta1, beta2 = 0.9, 0.999
    for t in range(1, steps + 1):
        z = x @ w + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / n
        grads = (x.T @ g + l2 * w, g.sum(0))
        for i, (param, grad) in enumerate(zip((w, b), grads)):
            m[i] = beta1 * m[i] + (1 - beta1) * grad
            v[i] = beta2 * v[i] + (1 - beta2) * grad * grad
            param -= lr * (m[i] / (1 - beta1**t)) / (np.sqrt(v[i] / (1 - beta2**t)) + 1e-8)
    pred = (xv @ w + b).argmax(1)
    return float((pred == np.asarray(val_labels)).mean()) if len(pred) else 0.0


def _choose(make: Callable[[Candidate, Any], Selection], cands: list[Candidate], sizes: list,
            features: np.ndarray | None, validation: tuple[np.ndarray, np.ndarray] | None,
            n_classes: int | None, seed: int, keep_of: dict) -> Selection:
    if features is None or validation is None:
        raise PladaSelectionError(
            "strategy 'auto' needs features= (one row per reference image) and "
            "validation=(features, labels) of labelled target images")
    val_x, val_y = validation
    val_y = np.asarray(val_y, dtype=np.int64)
    if len(val_x) != len(val_y) or len(val_y) == 0:
        raise PladaSelectionError(
            f"validation needs as many labels as feature rows (at least one); found {len(val_x)} and {len(val_y)}")
    best: tuple[float, Selection, str] | None = None
    scored: dict[str, float] = {}
    for size in sizes:
        for cand in cands:
            sel = make(cand, size)
            if len(features) != sel.n_reference:
                raise PladaSelectionError(
                    f"expected one feature row per reference image ({sel.n_reference:,}), found {len(features):,}")
            acc = proxy_accuracy(features, sel.indices, sel.labels, val_x, val_y,
                                 max(sel.n_classes, int(val_y.max()) + 1), seed=seed)
            key = cand.name
            if len(sizes) > 1:
                key += f"@{keep_of[size]:g}" if size in keep_of else f"@{sel.count}"
            scored[key] = round(acc, 4)
            if best is None or acc > best[0]:
                best = (acc, sel, key)
    assert best is not None
    acc, sel, key = best
    # compact on purpose: it travels in every file's header
    auto = {"chosen": key, "proxy_accuracy": round(acc, 4), "validation_images": int(len(val_y)),
            "candidates": scored}
    return replace(sel, auto=auto)


_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9,
    "kib": 2**10, "mib": 2**20, "gib": 2**30,
    "k": 10**3, "m": 10**6, "g": 10**9,
}


def parse_size(text: str) -> int:
    """Bytes in a size such as ``"100KB"`` (10^3), ``"64KiB"`` (2^10), ``"1.5MB"``, ``"900"``.

    >>> parse_size("100KB"), parse_size("2 KiB"), parse_size("512")
    (100000, 2048, 512)
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise PladaSelectionError(f"expected a size like 100KB, 64KiB or 5000, found {text!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_keep(text: str) -> float:
    """A fraction from ``"1%"`` (0.01) or ``"0.01"``.

    >>> parse_keep("2.5%"), parse_keep("0.1")
    (0.025, 0.1)
    """
    t = text.strip()
    try:
        value = float(t[:-1]) / 100.0 if t.endswith("%") else float(t)
    except ValueError:
        raise PladaSelectionError(f"expected a fraction like 1% or 0.01, found {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise PladaSelectionError(f"keep must lie between 0% and 100%, found {text!r}")
    return value


# --------------------------------------------------------------------------
# Scores directory (written by pladacodec.teacher, read here without torch)
# --------------------------------------------------------------------------
#
# SCORES_DIR/meta.json            {"format": "pladacodec-scores", "version": 1, "n": N,
#                                  "shard_size": S, "n_shards": ceil(N / S),
#                                  "reference_fingerprint": hex, "teacher": spec,
#                                  "temperature": T, "n_classes": C, "class_names": [...] | null, ...}
# SCORES_DIR/energy-00000.npy     float32, images [0, S) ; shard i covers [i*S, min((i+1)*S, N))
# SCORES_DIR/label-00000.npy      int32 teacher argmax
# SCORES_DIR/entropy-00000.npy    float32 softmax entropy (nats)
# SCORES_DIR/shard-00000.done     empty; written after the three arrays are flushed

SCORES_FORMAT = "pladacodec-scores"
SCORES_VERSION = 1
SCORES_META = "meta.json"
SCORE_ARRAYS: dict[str, str] = {"energy": "<f4", "label": "<i4", "entropy": "<f4"}
# optional: SCORES_DIR/feature-00000.npy, float16 (images, meta["feature_dim"]) (score(feature_module=...))
FEATURE_DTYPE = np.float16


def shard_path(scores_dir: str | Path, kind: str, shard: int) -> Path:
    """Path of one shard array: ``kind`` is ``energy``, ``label`` or ``entropy``."""
    return Path(scores_dir) / f"{kind}-{shard:05d}.npy"


def shard_done_path(scores_dir: str | Path, shard: int) -> Path:
    """Path of the marker that says a shard is complete."""
    return Path(scores_dir) / f"shard-{shard:05d}.done"


@dataclass(frozen=True)
class Scores:
    """Per-image teacher scores of a whole reference set, as read by :func:`load_scores`."""

    energy: np.ndarray
    label: np.ndarray
    entropy: np.ndarray
    n_classes: int
    class_names: tuple[str, ...] | None
    reference_fingerprint: bytes | None
    meta: dict[str, Any]
    features: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.energy)


def load_scores(scores_dir: str | Path) -> Scores:
    """Read a complete scores directory written by ``pladacodec score``."""
    scores_dir = Path(scores_dir)
    meta_path = scores_dir / SCORES_META
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PladaSelectionError(f"{str(scores_dir)!r} is not a scores directory: no {SCORES_META}") from None
    except (OSError, ValueError) as exc:
        raise PladaSelectionError(f"cannot read {str(meta_path)!r}: {exc}") from None
    if meta.get("format") != SCORES_FORMAT:
        raise PladaSelectionError(f"{str(meta_path)!r}: expected format {SCORES_FORMAT!r}, found {meta.get('format')!r}")
    if meta.get("version") != SCORES_VERSION:
        raise PladaSelectionError(
            f"{str(meta_path)!r}: scores version {meta.get('version')} is not {SCORES_VERSION}, the one this reader knows"
        )
    n, shard_size, n_shards = int(meta["n"]), int(meta["shard_size"]), int(meta["n_shards"])
    missing = [s for s in range(n_shards) if not shard_done_path(scores_dir, s).exists()]
    if missing:
        raise PladaSelectionError(
            f"{str(scores_dir)!r}: {n_shards - len(missing)} of {n_shards} shards are complete "
            f"(first missing: {missing[0]}); rerun `pladacodec score` to finish"
        )
    arrays: dict[str, np.ndarray] = {}
    for kind, dtype in SCORE_ARRAYS.items():
        parts = []
        for s in range(n_shards):
            part = np.load(shard_path(scores_dir, kind, s), mmap_mode="r")
            expected = min(shard_size, n - s * shard_size)
            if part.shape != (expected,) or part.dtype != np.dtype(dtype):
                raise PladaSelectionError(
                    f"{str(shard_path(scores_dir, kind, s))!r}: expected {expected:,} values of {np.dtype(dtype)}, "
                    f"found shape {part.shape} of {part.dtype}"
                )
            parts.append(part)
        arrays[kind] = np.concatenate(parts) if parts else np.empty(0, dtype=dtype)
    features = None
    if meta.get("feature_dim") is not None:
        dim = int(meta["feature_dim"])
        parts = []
        for s in range(n_shards):
            part = np.load(shard_path(scores_dir, "feature", s), mmap_mode="r")
            expected = (min(shard_size, n - s * shard_size), dim)
            if part.shape != expected or part.dtype != FEATURE_DTYPE:
                raise PladaSelectionError(
                    f"{str(shard_path(scores_dir, 'feature', s))!r}: expected {expected} float16 features, "
                    f"found shape {part.shape} of {part.dtype}")
            parts.append(part)
        features = parts[0] if len(parts) == 1 else np.concatenate(parts)
    fp = meta.get("reference_fingerprint")
    names = meta.get("class_names")
    return Scores(
        energy=arrays["energy"],
        label=arrays["label"].astype(np.int64),
        entropy=arrays["entropy"],
        n_classes=int(meta["n_classes"]),
        class_names=tuple(names) if names is not None else None,
        reference_fingerprint=bytes.fromhex(fp) if fp else None,
        meta=meta,
        features=features,
    )
