"""Hypothesis strategies for PLADA selections, with tunable sizes (cbor2's hypothesis_strategies is the model).

A :class:`Task` holds sorted, unique indices into ``range(n_reference)`` and one
label in ``range(n_classes)`` each.  Index sets are built from gaps, so they
shrink towards small, dense selections; the shapes cover what the coders see
in practice (uniform spread, clustered runs, dense prefixes).

>>> from hypothesis import given
>>> @given(tasks(max_n=1000, max_k=50))
... def test(task): assert task.k <= 50
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from hypothesis import strategies as st

from pladacodec import _spec as S

SHAPES = ("uniform", "clustered", "dense")
MAX_GAP = S.MAX_N_REFERENCE  # raw gaps are drawn up to this, then scaled to fit N


@dataclass(frozen=True)
class Task:
    """A valid selection, sorted by index."""

    indices: np.ndarray  # uint64, strictly increasing, < n_reference
    labels: np.ndarray  # int64 in [0, n_classes)
    n_reference: int
    n_classes: int

    @property
    def k(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:  # hypothesis prints this for a falsifying example
        return (
            f"Task(indices={self.indices.tolist()!r}, labels={self.labels.tolist()!r}, "
            f"n_reference={self.n_reference}, n_classes={self.n_classes})"
        )


def n_references(max_n: int = S.MAX_N_REFERENCE) -> st.SearchStrategy[int]:
    """Reference sizes from 1 to ``max_n``, biased towards tiny, medium, > 2**32 and the limit."""
    tiers = [st.integers(1, min(max_n, 64)), st.integers(1, min(max_n, 1 << 20)), st.integers(1, max_n), st.just(max_n)]
    if max_n > 1 << 32:
        tiers.append(st.integers((1 << 32) + 1, max_n))
    return st.one_of(tiers)


def class_counts(max_classes: int = S.MAX_CLASSES) -> st.SearchStrategy[int]:
    """C from 1 to ``max_classes``, biased towards 1, small, and the limit."""
    return st.one_of(st.just(1), st.integers(1, min(16, max_classes)), st.integers(1, max_classes), st.just(max_classes))


def _indices_from_gaps(gaps: Sequence[int], n: int) -> np.ndarray:
    """Indices whose skips are ``gaps``, scaled down (in exact integers) to fit below ``n``."""
    free = n - len(gaps)
    total = sum(gaps)
    if total > free:
        gaps = [g * free // total for g in gaps]
    out, position = [], -1
    for g in gaps:
        position += g + 1
        out.append(position)
    return np.array(out, dtype=np.uint64)


@st.composite
def index_sets(draw, n: int, k: int, shape: str | None = None) -> np.ndarray:
    """``k`` sorted unique indices below ``n`` in the given shape (drawn if None)."""
    shape = shape if shape is not None else draw(st.sampled_from(SHAPES))
    if k == 0:
        return np.zeros(0, dtype=np.uint64)
    if shape == "uniform":
        gap = st.one_of(st.integers(0, 3), st.integers(0, MAX_GAP))
        gaps = draw(st.lists(gap, min_size=k, max_size=k))
    elif shape == "clustered":
        runs = draw(st.lists(st.integers(1, 64), min_size=1, max_size=k))
        between = draw(st.lists(st.integers(0, MAX_GAP), min_size=len(runs), max_size=len(runs)))
        gaps = []
        for run, big in zip(runs, between):
            gaps += [big] + [0] * (run - 1)
        gaps = (gaps + [0] * k)[:k]
    elif shape == "dense":
        gaps = draw(st.lists(st.integers(0, 2), min_size=k, max_size=k))
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    return _indices_from_gaps(gaps, n)


@st.composite
def label_arrays(draw, k: int, n_classes: int) -> np.ndarray:
    """``k`` labels below ``n_classes``: uniform, drawn from a few classes, or constant."""
    kind = draw(st.sampled_from(("uniform", "few", "constant")))
    if kind == "uniform":
        values = draw(st.lists(st.integers(0, n_classes - 1), min_size=k, max_size=k))
    else:
        palette = draw(st.lists(st.integers(0, n_classes - 1), min_size=1, max_size=1 if kind == "constant" else 4))
        values = draw(st.lists(st.sampled_from(palette), min_size=k, max_size=k))
    return np.array(values, dtype=np.int64)


@st.composite
def tasks(
    draw,
    *,
    max_n: int = S.MAX_N_REFERENCE,
    max_k: int = 200,
    max_classes: int = S.MAX_CLASSES,
    min_k: int = 0,
    shape: str | None = None,
) -> Task:
    """Valid selections: N in [1, max_n], k in [min_k, min(N, max_k)], C in [1, max_classes]."""
    n = draw(n_references(max_n).filter(lambda n: n >= min_k))
    k = draw(st.integers(min_k, min(n, max_k)))
    indices = draw(index_sets(n, k, shape))
    n_classes = draw(class_counts(max_classes))
    labels = draw(label_arrays(k, n_classes))
    return Task(indices, labels, n, n_classes)


def permutations_of(k: int) -> st.SearchStrategy[np.ndarray]:
    """An order in which to hand ``k`` entries to the encoder (shrinks towards sorted)."""
    return st.permutations(range(k)).map(lambda p: np.array(p, dtype=np.int64))


_json_text = st.text(st.characters(codec="utf-8"), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64) | st.floats(allow_nan=False, allow_infinity=False) | _json_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_json_text, inner, max_size=4),
    max_leaves=12,
)
metadata_dicts = st.dictionaries(_json_text, json_values, max_size=5)
fingerprints = st.binary(min_size=S.FINGERPRINT_SIZE, max_size=S.FINGERPRINT_SIZE)


def class_name_lists(n_classes: int) -> st.SearchStrategy[list[str]]:
    """Exactly ``n_classes`` distinct, non-empty UTF-8-encodable names (keep ``n_classes`` small)."""
    return st.lists(
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=20), min_size=n_classes, max_size=n_classes,
        unique=True,
    )


@st.composite
def header_extras(draw, n_classes: int) -> dict:
    """Optional header fields as ``encode`` keyword arguments (class names only for C <= 64)."""
    extras = {}
    if n_classes <= 64 and draw(st.booleans()):
        extras["class_names"] = draw(class_name_lists(n_classes))
    if draw(st.booleans()):
        extras["reference_fingerprint"] = draw(fingerprints)
    if draw(st.booleans()):
        extras["metadata"] = draw(metadata_dicts)
    return extras
