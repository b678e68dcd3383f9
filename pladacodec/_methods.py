"""The coding methods of format 2.0, each declared once (FORMAT.md §5, §6), and the encoder's policy.

Every other table (names, ids per kind, the folder methods, what the encoder tries) is
derived from :data:`METHODS`.  Coders share one signature per kind:

* index: ``encode(indices, base, folders) -> bytes``,
  ``decode(section, count, base, n_reference, folders) -> indices``
* label: ``encode(labels, n_classes, indices, base, folders) -> bytes``,
  ``decode(section, count, n_classes, indices, base, folders) -> labels``

where ``section`` is a :class:`~pladacodec._bytes.Reader` over the section's bytes and
``folders`` the layout the header names (None for methods that take none).
Adding a method: an id in ``_spec``, a coder pair, one line here, a golden file
(``tests/make_golden.py``), a section of FORMAT.md and the from-spec decoder in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import _coders, _context
from . import _spec as S


@dataclass(frozen=True)
class Method:
    kind: str  # "index" or "label"
    id: int  # the nibble in the block's method byte (FORMAT.md §4)
    name: str
    static: bool  # a fixed table per section (fast to decode) rather than an adaptive model
    folders: bool  # codes against the folder layout the header names (FORMAT.md §3)
    encode: Callable
    decode: Callable
    spec: str  # the FORMAT.md section that defines it
    max_classes: int = S.MAX_CLASSES  # label methods: the most classes it serves (the encoder tries it up to this)


METHODS: tuple[Method, ...] = (
    Method("index", S.INDEX_GOLOMB, "golomb", True, False,
           _coders.indices_golomb_encode, _coders.indices_golomb_decode, "§5.1"),
    Method("index", S.INDEX_CONTEXT, "context", False, False,
           _context.indices_context_encode, _context.indices_context_decode, "§5.2"),
    Method("index", S.INDEX_CONTEXT_FOLDERS, "context-folders", False, True,
           _context.indices_context_encode, _context.indices_context_decode, "§5.3"),
    Method("label", S.LABEL_IID, "iid", True, False,
           _coders.labels_iid_encode, _coders.labels_iid_decode, "§6.1"),
    Method("label", S.LABEL_DRIFT, "drift", False, False,
           _context.labels_drift_encode, _context.labels_drift_decode, "§6.2"),
    Method("label", S.LABEL_CONTEXT, "context", False, False,
           _context.labels_context_encode, _context.labels_context_decode, "§6.3"),
    Method("label", S.LABEL_CONTEXT_FOLDERS, "context-folders", False, True,
           _context.labels_context_encode, _context.labels_context_decode, "§6.4"),
    Method("label", S.LABEL_MIX, "mix", False, False,
           _context.labels_mix_encode, _context.labels_mix_decode, "§6.5", S.MIX_MAX_CLASSES),
)

KINDS = ("index", "label")
BY_KIND: dict[str, dict[int, Method]] = {kind: {m.id: m for m in METHODS if m.kind == kind} for kind in KINDS}


def method(kind: str, method_id: int) -> Method | None:
    return BY_KIND[kind].get(method_id)


def method_name(kind: str, method_id: int) -> str:
    m = method(kind, method_id)
    return m.name if m is not None else f"method-{method_id}"


# --- the reference encoder's policy (not part of the format: a reader accepts any choice) -----

# The static methods decode several times faster than the adaptive models, so an adaptive
# method is kept only when it is more than this much smaller than the best static one.
ADAPTIVE_MIN_SAVING = 0.01


def candidates(kind: str, allowed, folders: bool, n_classes: int = 1) -> list[Method]:
    """The methods the encoder tries for ``kind``: ``allowed`` ids (None: all), the folder
    methods only with a layout, the label methods that serve ``n_classes``."""
    table = BY_KIND[kind]
    ids = sorted(table) if allowed is None else list(allowed)
    return [table[i] for i in ids if (folders or not table[i].folders) and n_classes <= table[i].max_classes]


def choose(coded: list[tuple[Method, bytes]]) -> tuple[Method, bytes]:
    """The smallest (method, section); ties go to the lowest id; a static method is preferred to
    an adaptive one that saves at most ADAPTIVE_MIN_SAVING of it."""
    best = min(coded, key=lambda item: (len(item[1]), item[0].id))
    statics = [item for item in coded if item[0].static]
    if statics:
        best_static = min(statics, key=lambda item: (len(item[1]), item[0].id))
        if len(best_static[1]) <= len(best[1]) * (1 + ADAPTIVE_MIN_SAVING):
            return best_static
    return best
