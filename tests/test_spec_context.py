"""FORMAT.md §5.2, §5.3, §6.2-§6.5 and §7.2 read literally: an independent decoder of the adaptive
rANS stream and of every adaptive model (index 2 "context", 3 "context-folders"; label 2 "drift",
3 "context", 4 "context-folders", 5 "mix"), in plain Python integers, checked against every golden file
(with test_spec_static.py's container and static decoders) and against what the encoder writes.

Nothing here imports the library's coders or kernels (pladacodec only *writes* the inputs of the
last tests): if the spec text and the implementation ever disagree, these tests say so.  The
golden files cover every path of the label model's literals (C <= 32 with the candidates
excluded, 33 <= C <= 256, C > 256 in high and low parts), run boundaries from jumps and from a
folder layout, and a window whose mode is often tied (label-context-noisy pins §6.3's update).
"""

from __future__ import annotations

import functools
from bisect import bisect_right

import numpy as np
import pytest

from test_spec_static import (
    INDEX_DECODERS,
    INDEX_METHODS,
    LABEL_DECODERS,
    LABEL_METHODS,
    MANIFEST,
    RANS_L,
    Cursor,
    check_golden,
    decode,
    need,
    parse,
)
from common import GOLDEN_DIR

BITS = 15
M = 1 << BITS


# --- §7.2 adaptive rANS and its tables ----------------------------------------------------------


class Stream:
    """One 64-bit state, 32-bit words, the first two words the initial state (high first)."""

    def __init__(self, words: list[int]) -> None:
        need(len(words) >= 2, "an adaptive stream has at least two words")
        self.words, self.pos = words, 2
        self.x = (words[0] << 32) | words[1]
        need(RANS_L <= self.x < 1 << 63, "initial state out of range")

    def decode(self, freq: list[int], cum: list[int]) -> int:
        slot = self.x & (M - 1)
        s = bisect_right(cum, slot) - 1  # cum_s <= slot < cum_(s+1); skips symbols of frequency 0
        self.x = freq[s] * (self.x >> BITS) + slot - cum[s]
        if self.x < RANS_L:
            need(self.pos < len(self.words), "the stream ran out of words")
            self.x = (self.x << 32) | self.words[self.pos]
            self.pos += 1
        return s

    def finish(self) -> None:
        need(self.x == RANS_L and self.pos == len(self.words), "final state 2^31, every word used")


class Rule:
    """How a table's contexts are built (§7.2): observation weight without a prior or strength
    with one, the halving threshold, the rebuild step, the first point after a build at seen = 0."""

    def __init__(self, weight: int = 8, strength: int = 0, halve_at: int = 1 << 16, step: int = 1024, first: int = 1):
        self.weight, self.strength, self.halve_at, self.step, self.first = weight, strength, halve_at, step, first


class Context:
    """One context: counts, seen, rebuild point (None: built on first use), freq / cum once built."""

    def __init__(self, n_symbols: int, rule: Rule, point: int | None = None) -> None:
        self.rule = rule
        self.counts = [0] * n_symbols
        self.seen = 0
        self.point = point
        self.freq: list[int] | None = None
        self.cum: list[int] = []

    def build(self, prior: list[int] | None = None) -> None:
        rule, a = self.rule, len(self.counts)
        if sum(self.counts) >= rule.halve_at:
            self.counts = [(c + 1) >> 1 for c in self.counts]
        spread = M - a
        if prior is None:
            weights = [rule.weight * c + 1 for c in self.counts]
            total = rule.weight * sum(self.counts) + a
        else:
            weights = [8 * M * c + 8 * rule.strength * p for c, p in zip(self.counts, prior)]
            total = 8 * M * (sum(self.counts) + rule.strength)
        freq = [1 + w * spread // total for w in weights]
        freq[freq.index(max(freq))] += M - sum(freq)
        self.freq = freq
        self.cum = [0]
        for f in freq:
            self.cum.append(self.cum[-1] + f)
        seen = self.seen
        self.point = rule.first if seen == 0 else (2 * seen if seen < rule.step else seen + rule.step)

    @property
    def built(self) -> bool:
        return self.freq is not None

    def count(self, s: int) -> bool:
        """Count symbol s; True if the context is due for a rebuild."""
        self.counts[s] += 1
        self.seen += 1
        return self.seen >= self.point

    def decode(self, stream: Stream, prior: list[int] | None = None) -> int:
        """Build on first use, decode, count, rebuild if due (a context without a parent chain)."""
        if not self.built:
            self.build(prior)
        s = stream.decode(self.freq, self.cum)
        if self.count(s):
            self.build(prior)
        return s


def folder_of(starts: list[int], x: int) -> int:
    """The folder holding index x (an index at or past N: the last folder)."""
    return bisect_right(starts, x) - 1


# --- §5.2 / §5.3 the gap model ------------------------------------------------------------------


def half_octave(v: int) -> int:
    b = v.bit_length()
    return min(2 * b + ((v >> (b - 2)) & 1 if b >= 2 else 0), 39)


def run_half_octave(run_sum: int, n: int) -> int:
    """The half-octave of 16·S'/n + 1, from u = floor(4·(16·S' + n) / n)."""
    u = 4 * (16 * run_sum + n) // n
    b = u.bit_length()
    return min(2 * b + ((u >> (b - 2)) & 1) - 4, 39)


def token_range(t: int) -> tuple[int, int]:
    """(lo_t, w_t)."""
    if t < 8:
        return t, 1
    e = (t - 8) // 4 + 3
    w = 1 << (e - 2)
    return (1 << e) + ((t - 8) % 4) * w, w


@functools.lru_cache(maxsize=None)
def geometric_table(level: int, n_tok: int) -> tuple[int, ...]:
    """G[level] over T tokens, in Q31 integers."""
    one = 1 << 31
    b = level >> 1
    r8 = 12 if b < 2 else (1 << (b + 2)) + (2 * (level & 1) + 1) * (1 << b)
    num = 5 * (r8 - 8) + 32
    qpow = [num * (1 << 31) // (num + 640)]
    for _ in range(41):
        qpow.append(qpow[-1] * qpow[-1] >> 31)

    def surv(a: int) -> int:
        s, j = one, 0
        while a:
            if a & 1:
                s = s * qpow[j] >> 31
            a >>= 1
            j += 1
        return s

    mass = []
    for t in range(n_tok):
        lo, w = token_range(t)
        mass.append(max(0, surv(lo) - surv(lo + w)) if t < n_tok - 1 else surv(lo))
    total = sum(mass)
    g = [1 + x * (M - n_tok) // total for x in mass]
    g[g.index(max(g))] += M - sum(g)
    return tuple(g)


class RawBits:
    def __init__(self, data: bytes) -> None:
        self.value, self.size, self.pos = int.from_bytes(data, "little"), len(data), 0

    def take(self, n: int) -> int:
        need(self.pos + n <= 8 * self.size, "raw bits ran out")
        out = (self.value >> self.pos) & ((1 << n) - 1)
        self.pos += n
        return out

    def finish(self) -> None:
        need((self.pos + 7) // 8 == self.size, "a whole unused raw byte")
        need(self.value >> self.pos == 0, "non-zero padding bits")


GAP_GRAND = Rule(weight=8)
GAP_PARENT = Rule(strength=256, first=16)
GAP_CHILD = Rule(strength=256)


def index_context(section: Cursor, count: int, base: int, n_reference: int, starts: list[int] | None) -> list[int]:
    """Index method 2 (``starts`` None: jumps are run boundaries) or 3 (folder changes)."""
    n_tok = section.varint()
    need(1 <= n_tok <= 160, "token alphabet")
    stream = Stream(section.words(section.varint()))
    raw = RawBits(section.take(section.remaining))
    grand = Context(n_tok, GAP_GRAND)
    parents = [Context(n_tok, GAP_PARENT) for _ in range(40)]
    children = [Context(n_tok, GAP_CHILD, point=16) for _ in range(320)]  # young until 16 symbols
    n_min = 4 if starts is None else 2

    def parent_prior(level: int) -> list[int]:
        return [(g + 3 * h) // 4 for g, h in zip(grand.freq, geometric_table(level, n_tok))]

    last16, s16 = [0] * 16, 0  # the last 16 skips (a ring) and their sum S
    n, run_sum = 0, 0
    mag = 0
    x_prev = None
    skips = []
    for i in range(count):
        level = half_octave(s16 + 1)
        if n >= n_min:
            run = run_half_octave(run_sum, n)
            if n < 16 or abs(run - level) < 4:
                level = run
            else:  # drifted from the last 16 skips: the run restarts from them
                n, run_sum = 16, s16
        child, parent = children[level * 8 + min(mag, 7)], parents[level]
        if not parent.built:
            if not grand.built:
                grand.build()
            parent.build(parent_prior(level))
        table = child if child.seen >= 16 else parent
        t = stream.decode(table.freq, table.cum)
        child_due = child.count(t)
        if grand.count(t):
            grand.build()
        if parent.count(t):
            parent.build(parent_prior(level))
        if child_due:
            child.build(parent.freq)
        if t < 8:
            v = t
        else:
            lo, w = token_range(t)
            v = lo + raw.take(w.bit_length() - 1)
        mag = t if t < 8 else 8 + (t - 8) // 4
        x = base + v if x_prev is None else x_prev + v + 1
        if starts is None:
            boundary = i >= 16 and v > 4 * (s16 // 16) + 8
        else:
            boundary = x_prev is not None and folder_of(starts, x) != folder_of(starts, x_prev)
        if boundary:
            n, run_sum = 0, 0
        elif n < 4096:
            n, run_sum = n + 1, run_sum + v
        s16 += v - last16[i % 16]
        last16[i % 16] = v
        skips.append(v)
        x_prev = x
    stream.finish()
    raw.finish()
    return skips


# --- §6.2 drift ---------------------------------------------------------------------------------


def label_drift(section: Cursor, count: int, n_classes: int, skips, base: int, starts) -> list[int]:
    h = section.u8()
    need(4 <= h <= 16, "halving exponent")
    stream = Stream(section.words_to_end())
    rule = Rule(weight=2, halve_at=1 << h, step=1 << max(h - 5, 0))
    labels = []
    if n_classes <= 256:
        table = Context(n_classes, rule)
        labels = [table.decode(stream) for _ in range(count)]
    else:
        n_hi = -(-n_classes // 256)
        high, lows = Context(n_hi, rule), [Context(256, rule) for _ in range(n_hi)]
        for _ in range(count):
            hi = high.decode(stream)
            labels.append((hi << 8) + lows[hi].decode(stream))
    need(all(label < n_classes for label in labels), "a label beyond C")
    stream.finish()
    return labels


# --- §6.3 / §6.4 the label context model --------------------------------------------------------

LABEL_PARENT = Rule(weight=8)
LABEL_CHILD = Rule(strength=32)
LITERAL = Rule(weight=1)


def label_context(section: Cursor, count: int, n_classes: int, skips: list[int], base: int, starts) -> list[int]:
    """Label method 3 (``starts`` None: jumps are run boundaries) or 4 (folder changes, hit = 0 there)."""
    stream = Stream(section.words_to_end())
    parents = [Context(4, LABEL_PARENT) for _ in range(36)]
    children = [Context(4, LABEL_CHILD) for _ in range(288)]
    split, exclude = n_classes > 256, n_classes <= 32
    n_hi = -(-n_classes // 256)
    literal = Context(n_classes, LITERAL) if not split else None
    high = Context(n_hi, LITERAL) if split else None
    lows = [Context(256, LITERAL) for _ in range(n_hi)] if split else None
    window: list[int] = []  # up to the last 8 labels since the last reset, oldest first
    mode, d = None, 0  # D and its count in the window
    recent: list[int] = []  # up to 4 distinct labels, most recent first
    hit = 0
    labels: list[int] = []
    last16, s16 = [0] * 16, 0
    x_prev = None
    for i, v in enumerate(skips):
        # 1. candidates
        by_rank = ([mode] + [label for label in recent if label != mode][:2] + [None, None])[:3]
        cands = [c for c in by_rank if c is not None]
        # 2. run boundary
        x = base + v if x_prev is None else x_prev + v + 1
        if starts is None:
            boundary = i >= 16 and v > 4 * (s16 // 16) + 8
        else:
            boundary = x_prev is not None and folder_of(starts, x) != folder_of(starts, x_prev)
        if boundary:
            window, mode, d = [], None, 0
            if starts is not None:
                hit = 0
        s16 += v - last16[i % 16]
        last16[i % 16] = v
        # 3. context
        mag = min(v if v < 8 else v.bit_length() + 4, 23)
        strength = (d - 1) * 4 // 8 if d > 0 else 0
        state = hit
        if not hit and len(labels) >= 2 and labels[-1] == labels[-2] and mode is not None and labels[-1] != mode:
            state = 2
        coarse = 0 if mag < 8 else 1 if mag < 15 else 2
        child = children[mag * 12 + strength * 3 + state]
        parent = parents[coarse * 12 + strength * 3 + state]
        if not child.built:
            if not parent.built:
                parent.build()
            child.build(parent.freq)
        # 4. r and the updates
        r = stream.decode(child.freq, child.cum)
        child_due = child.count(r)
        if parent.count(r):
            parent.build()
        if child_due:
            child.build(parent.freq)
        # 5. the label
        if r < 3:
            label = by_rank[r]
            need(label is not None, "a candidate that does not exist")
        elif exclude:
            if not literal.built:
                literal.build()
            gone = sum(literal.freq[c] for c in cands)
            need(M - gone > 0, "no room for a literal")
            scale = M * (1 << 16) // (M - gone)
            f2 = [0 if s in cands else literal.freq[s] * scale >> 16 for s in range(n_classes)]
            f2[f2.index(max(f2))] += M - sum(f2)
            cum2 = [0]
            for f in f2:
                cum2.append(cum2[-1] + f)
            label = stream.decode(f2, cum2)
            if literal.count(label):
                literal.build()
        elif not split:
            label = literal.decode(stream)
        else:
            hi = high.decode(stream)
            label = (hi << 8) + lows[hi].decode(stream)
        need(label < n_classes, "a label beyond C")
        # 6. the state
        labels.append(label)
        hit = 1 if r == 0 else 0
        if label in recent:
            recent.remove(label)
        recent = [label] + recent[:3]
        dropped = window[0] if len(window) == 8 else None
        window = window[-7:] + [label]
        n_label = window.count(label)
        if mode is None:
            mode = label
        elif label == mode:
            pass
        elif n_label >= d:  # d: D's count before this entry
            mode = label
        elif dropped == mode:  # rescan from the most recent label to the oldest
            best = max(window.count(lab) for lab in window)
            mode = next(lab for lab in reversed(window) if window.count(lab) == best)
        d = window.count(mode)
        x_prev = x
    stream.finish()
    return labels


# --- §6.5 mix -----------------------------------------------------------------------------------


def label_mix(section: Cursor, count: int, n_classes: int, skips, base: int, starts) -> list[int]:
    need(n_classes <= 64, "method 5 serves at most 64 classes")
    p = section.u8()
    h0, h1 = 4 + (p >> 4), 4 + (p & 15)
    need(h0 <= 12 and h1 <= 12, "halving exponents")
    stream = Stream(section.words_to_end())
    c = n_classes
    c0, t0 = [0] * c, 0
    c1, t1 = [[0] * c for _ in range(c + 1)], [0] * (c + 1)
    w, u = 1 << 15, c
    labels = []
    for _ in range(count):
        big_a, t = 2 * t0 + c, t1[u] + 8
        a = [2 * c0[s] + 1 for s in range(c)]
        b = [c1[u][s] * big_a + 8 * a[s] for s in range(c)]
        n = [((1 << 16) - w) * t * a[s] + w * b[s] for s in range(c)]
        total = (t * big_a) << 16
        assert sum(n) == total
        sh = max(total.bit_length() - 24, 0)
        scale = ((M - c) << 32) // (total >> sh)
        freq = [1 + (((n[s] >> sh) * scale) >> 32) for s in range(c - 1)]
        freq.append(M - sum(freq))
        cum = [sum(freq[:s]) for s in range(c)]
        y = stream.decode(freq, cum)
        labels.append(y)
        post = ((w * b[y]) << 16) // n[y]
        w = post - (post >> 6) + ((1 << 15) >> 6)
        c0[y] += 1
        t0 += 1
        if t0 >= 1 << h0:
            c0 = [(v + 1) >> 1 for v in c0]
            t0 = sum(c0)
        c1[u][y] += 1
        t1[u] += 1
        if t1[u] >= 1 << h1:
            c1[u] = [(v + 1) >> 1 for v in c1[u]]
            t1[u] = sum(c1[u])
        u = y
    stream.finish()
    return labels


ALL_INDEX = {**INDEX_DECODERS, 2: index_context, 3: index_context}
ALL_LABEL = {**LABEL_DECODERS, 2: label_drift, 3: label_context, 4: label_context, 5: label_mix}


def decode_all(data: bytes, starts=None):
    return decode(data, starts, ALL_INDEX, ALL_LABEL)


# --- the golden files ---------------------------------------------------------------------------


def test_the_spec_decoders_cover_every_method_of_the_library():
    """FORMAT.md's method table (as test_spec_static.py copies it) is the library's registry, and
    this file decodes every method of it: a method added without a from-spec decoder fails."""
    from pladacodec import _methods

    assert {m.id: m.name for m in _methods.METHODS if m.kind == "index"} == INDEX_METHODS
    assert {m.id: m.name for m in _methods.METHODS if m.kind == "label"} == LABEL_METHODS
    assert set(ALL_INDEX) == set(INDEX_METHODS) and set(ALL_LABEL) == set(LABEL_METHODS)


def test_every_method_has_a_golden_file():
    """A missing golden file fails, never skips."""
    used = {"index": set(), "label": set()}
    for name in MANIFEST:
        for block in parse((GOLDEN_DIR / f"{name}.plada").read_bytes()).blocks:
            used["index"].add(block.index_method)
            used["label"].add(block.label_method)
    assert used["index"] == set(INDEX_METHODS), f"index methods without a golden file: {set(INDEX_METHODS) - used['index']}"
    assert used["label"] == set(LABEL_METHODS), f"label methods without a golden file: {set(LABEL_METHODS) - used['label']}"
    assert {p.stem for p in GOLDEN_DIR.glob("*.plada")} == set(MANIFEST)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_spec_decoder_reads_the_golden_files(name):
    check_golden(name, ALL_INDEX, ALL_LABEL)


# --- what the encoder writes --------------------------------------------------------------------


def structured(n_classes: int, seed: int, n_reference: int = 100_000):
    """~1,500 entries: dense runs inside folders of 300-699 images with a dominant label each, some
    runs spilling over a folder boundary, scattered singles; and the folders' first indices."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(300, 700, n_reference // 300)
    starts = np.concatenate(([0], np.cumsum(sizes)))
    starts = starts[starts < n_reference]
    indices, labels = [], []
    for folder in rng.choice(len(starts) - 1, 12, replace=False):
        lo = int(starts[folder]) + int(rng.integers(0, 100))
        run = lo + np.flatnonzero(rng.random(int(rng.integers(50, 450))) < rng.uniform(0.1, 0.9))
        noisy = rng.random(run.size) < 0.1
        indices.append(run)
        labels.append(np.where(noisy, rng.integers(0, n_classes, run.size), rng.integers(0, n_classes)))
    indices.append(rng.integers(0, n_reference, 80))
    labels.append(rng.integers(0, n_classes, 80))
    indices, first = np.unique(np.concatenate(indices), return_index=True)
    return indices, np.concatenate(labels)[first], n_reference, starts


def uniform(n_classes: int, seed: int, n_reference: int = 1_000_000):
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(n_reference, 1200, replace=False))
    return indices, rng.integers(0, n_classes, indices.size), n_reference, np.arange(0, n_reference, 997)


SELECTIONS = {
    "structured-c10": lambda: structured(10, 1),
    "structured-c100": lambda: structured(100, 2),
    "structured-c300": lambda: structured(300, 3),
    "uniform-c20": lambda: uniform(20, 4),
    "uniform-c1000": lambda: uniform(1000, 5),
}
PAIRS = [(2, 3), (3, 4), (2, 2), (1, 4), (3, 1), (2, 5)]


@pytest.mark.parametrize(
    "selection, index_method, label_method",
    [(sel, i, lab) for sel in SELECTIONS for i, lab in PAIRS if lab != 5 or int(sel.rsplit("-c", 1)[1]) <= 64],
)  # label method 5 serves at most 64 classes (test_mix_refuses_more_classes)
def test_spec_decoder_reads_what_the_encoder_writes(selection, index_method, label_method):
    """Each adaptive method forced on small structured and uniform selections, several blocks."""
    import pladacodec

    indices, labels, n_reference, starts = SELECTIONS[selection]()
    folders = pladacodec.FolderLayout(starts, n_reference) if index_method == 3 or label_method == 4 else None
    n_classes = int(selection.rsplit("-c", 1)[1])
    data = pladacodec.encode(indices, labels, n_reference, n_classes=n_classes, block_entries=700,
                             index_methods=[index_method], label_methods=[label_method], folders=folders)
    f, got_indices, got_labels = decode_all(data, [int(s) for s in starts] if folders is not None else None)
    assert {(b.index_method, b.label_method) for b in f.blocks} == {(index_method, label_method)}
    assert got_indices == indices.tolist()
    assert got_labels == labels.tolist()


@pytest.mark.parametrize("h", [4, 7, 16])
def test_spec_decoder_reads_drift_with_every_halving_regime(h, monkeypatch):
    """§6.2 with h forced (the encoder alone picks from 6-16): h = 4 rebuilds after every label and
    halves at 16; C = 300 codes high and low parts."""
    import pladacodec
    from pladacodec import _context

    monkeypatch.setattr(_context, "DRIFT_TRIALS", (h,))
    for selection in ("structured-c10", "structured-c300"):
        indices, labels, n_reference, _ = SELECTIONS[selection]()
        n_classes = int(selection.rsplit("-c", 1)[1])
        data = pladacodec.encode(indices, labels, n_reference, n_classes=n_classes, label_methods=[2])
        f, _, got = decode_all(data)
        assert {b.label_method for b in f.blocks} == {2}
        assert {data[b.label.pos] for b in parse(data).blocks} == {h}
        assert got == labels.tolist()


@pytest.mark.parametrize("h0, h1", [(4, 12), (12, 4), (6, 6)])
@pytest.mark.parametrize("n_classes", [1, 2, 10, 64])
def test_spec_decoder_reads_mix_with_any_exponents(h0, h1, n_classes, monkeypatch):
    """§6.5 with (h0, h1) forced at the ends of their range, and C from 1 to the limit of 64."""
    import pladacodec
    from pladacodec import _context

    monkeypatch.setattr(_context, "mix_trials", lambda n: ((h0, h1),))
    monkeypatch.setattr(_context, "MIX_NEIGHBOURS", ((0, 0),))
    indices, labels, n_reference, _ = SELECTIONS["structured-c100"]()
    labels = labels % n_classes
    data = pladacodec.encode(indices, labels, n_reference, n_classes=n_classes, label_methods=[5])
    f, _, got = decode_all(data)
    assert {b.label_method for b in f.blocks} == {5}
    assert {data[b.label.pos] for b in parse(data).blocks} == {(h0 - 4) << 4 | (h1 - 4)}
    assert got == labels.tolist()


def test_mix_refuses_more_classes():
    """The encoder never tries method 5 beyond 64 classes, refuses it when it is the only one
    allowed, and a reader refuses a file that claims it with more classes."""
    import pladacodec
    from pladacodec.errors import PladaEncodeError, PladaFormatError
    from common import repair_checksums

    def varint_size(v: int) -> int:
        return max(1, -(-v.bit_length() // 7))

    indices, labels, n_reference, _ = SELECTIONS["structured-c100"]()
    data = pladacodec.encode(indices, labels, n_reference, n_classes=100)
    assert 5 not in {b.label_method for b in parse(data).blocks}
    with pytest.raises(PladaEncodeError, match="classes"):
        pladacodec.encode(indices, labels, n_reference, n_classes=100, label_methods=[5])
    small = pladacodec.encode(indices, labels % 64, n_reference, n_classes=64, label_methods=[5])
    at = 7 + varint_size(n_reference) + varint_size(len(indices))  # C: the header's third varint (§3)
    assert small[6] < 128 and small[at] == 64
    forged = bytearray(small)
    forged[at] = 65
    with pytest.raises(PladaFormatError, match="64 classes"):
        pladacodec.decode(repair_checksums(bytes(forged), pladacodec.inspect(small).layout))
