"""FORMAT.md §5.3, §5.6, §5.7, §5.9, §5.10, §6.2, §6.3, §6.5, §6.6, §6.7 and §6.8 read literally: an
independent decoder of every adaptive model (index methods 3, 4, 6, 7 and 8, label methods 2, 3, 5,
6, 7, 8 and 9), in plain Python integers, checked against the golden files.

Nothing here decodes with the library's coders or kernels (the container framing comes from
test_spec_static.py, which parses it from the spec too; the library only *writes* the files
of the last test, from benchmark workloads): if the spec text and the implementation ever
disagree, these tests say so.  The golden files cover every path of
the label model's literals: C <= 32 (candidates excluded), 33 <= C <= 256 (one table) and
C > 256 (high and low parts); young, mature and rebuilt contexts; run boundaries from
jumps (methods 4 / 3 / 6) and from a folder layout (methods 6 / 5 / 7), for both generations
of the label model (3 / 5 and 6 / 7: undoing any one of §6.6's four changes fails every method 6 / 7 file).
The noisy-l* files pin §6.2's mode update: reading `d` after the oldest label leaves (which
the text allowed before 1.4) fails all three.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from common import GOLDEN_DIR, load_sidecar
from test_spec_static import sections

RANS_L = 1 << 31
V10 = (12, 64)  # §5.6 (methods 3 / 2): 12-bit probabilities, a prior worth 64 observations
V11 = (15, 256)  # §5.7 (methods 4 / 3, and 6 / 5): 15 bits, 256 observations


def bitlen(v: int) -> int:
    return v.bit_length()


# --- §5.6 adaptive tables (with the changes of §5.7) ------------------------------------------


def next_point(point: int) -> int:
    """The rebuild points go 1, 2, 4, ..., 1,024, then +1,024 each time."""
    return point * 2 if point < 1024 else point + 1024


class Table:
    """One context of an adaptive table: counts, seen, rebuild point, frequencies."""

    def __init__(self, n_symbols: int, version: tuple[int, int], weight: int = 8) -> None:
        self.m, self.strength = 1 << version[0], version[1]
        self.weight = weight  # one observation, in a table without a prior (§5.6; 1 for §6.6's literals)
        self.counts = [0] * n_symbols
        self.seen = 0
        self.point = 0  # 0: not built yet
        self.freq: list[int] = []
        self.cum: list[int] = []

    def build(self, prior: list[int] | None) -> None:
        a = len(self.counts)
        if sum(self.counts) >= 1 << 16:
            self.counts = [(c + 1) >> 1 for c in self.counts]
        m = self.m
        spread = m - a
        if prior is None:
            weights = [self.weight * c + 1 for c in self.counts]
            total = self.weight * sum(self.counts) + a
        else:
            weights = [8 * m * c + 8 * self.strength * p for c, p in zip(self.counts, prior)]
            total = 8 * m * (sum(self.counts) + self.strength)
        freq = [1 + w * spread // total for w in weights]
        freq[freq.index(max(freq))] += m - sum(freq)
        self.freq = freq
        self.cum = [0]
        for f in freq:
            self.cum.append(self.cum[-1] + f)

    def first_use(self, prior: list[int] | None) -> None:
        if self.point == 0:
            self.build(prior)
            self.point = 1

    def count(self, s: int) -> None:
        self.counts[s] += 1
        self.seen += 1

    def due(self) -> bool:
        return self.seen >= self.point

    def rebuild(self, prior: list[int] | None) -> None:
        self.build(prior)
        self.point = next_point(self.point)


class Stream:
    """§5.6: 64-bit state, 32-bit words, the first two words the initial state (high first)."""

    def __init__(self, words: list[int], bits: int) -> None:
        assert len(words) >= 2
        self.bits = bits
        self.words, self.pos = words, 2
        self.x = (words[0] << 32) | words[1]

    def decode(self, freq: list[int], cum: list[int]) -> int:
        slot = self.x % (1 << self.bits)
        s = max(j for j in range(len(freq)) if cum[j] <= slot)
        assert cum[s] <= slot < cum[s] + freq[s]
        self.x = freq[s] * (self.x >> self.bits) + slot - cum[s]
        if self.x < RANS_L:
            self.x = (self.x << 32) | self.words[self.pos]
            self.pos += 1
        return s

    def finish(self) -> None:
        assert self.x == RANS_L and self.pos == len(self.words)


def read_words(body) -> list[int]:
    n_words = body.varint()
    return list(struct.unpack(f"<{n_words}I", body.take(4 * n_words)))


# --- §5.3 / §5.7 / §5.9 the gap model -----------------------------------------------------------


def half_octave(v: int) -> int:
    """§5.3: 2·bitlen(v) + (the second bit below the top of v, if bitlen >= 2), capped at 39."""
    b = bitlen(v)
    level = 2 * b + ((v >> (b - 2)) & 1 if b >= 2 else 0)
    return min(level, 39)


def token_range(t: int) -> tuple[int, int]:
    """(lo_t, w_t) of §5.7."""
    if t < 8:
        return t, 1
    e = (t - 8) // 4 + 3
    w = 1 << (e - 2)
    return (1 << e) + ((t - 8) % 4) * w, w


def geometric_row(level: int, n_tok: int, m: int = 1 << 15) -> list[int]:
    """G[level] of §5.7, in Q31 integers as the spec lists the steps."""
    one = 1 << 31
    b = level >> 1
    r8 = 12 if b < 2 else (1 << (b + 2)) + (2 * (level & 1) + 1) * (1 << b)
    num = 5 * (r8 - 8) + 32
    q = num * (1 << 31) // (num + 640)
    qpow = [q]
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
    g = [1 + w * (m - n_tok) // total for w in mass]
    g[g.index(max(g))] += m - sum(g)
    return g


class RawBits:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> int:
        value = 0
        for j in range(n):
            byte, bit = divmod(self.pos + j, 8)
            value |= ((self.data[byte] >> bit) & 1) << j
        self.pos += n
        return value

    def finish(self) -> None:
        assert (self.pos + 7) // 8 == len(self.data), "a whole unused raw byte"
        if self.pos % 8:
            assert self.data[-1] >> (self.pos % 8) == 0, "non-zero padding"


def folder_of(starts: list[int], x: int) -> int:
    lo, hi = 0, len(starts)  # the last start <= x
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if starts[mid] <= x:
            lo = mid
        else:
            hi = mid
    return lo


def run_level(run_sum: int, n: int) -> int:
    """§5.10: the half-octave of 16·S'/n + 1, from u = floor(4·(16·S' + n) / n)."""
    u = 4 * (16 * run_sum + n) // n
    b = bitlen(u)
    return min(2 * b + ((u >> (b - 2)) & 1) - 4, 39)


def decode_gaps(method: int, params, body, count: int, base: int, starts: list[int] | None) -> list[int]:
    """Index method 3, 4, 6, 7 or 8 (``starts``: the folder layout's first indices, for 6 and 8)."""
    v10 = method == 3
    v15 = method in (7, 8)  # §5.10: the whole run's density, restarts on drift, prior 3/4 geometric
    version = V10 if v10 else V11
    n_tok = 160 if v10 else params.varint()
    words = read_words(body)
    raw = RawBits(body.take(len(body.data) - body.pos))
    stream = Stream(words, version[0])
    grand = Table(n_tok, version)
    parents = [Table(n_tok, version) for _ in range(40)]
    geo: dict[int, list[int]] = {}
    children = [Table(n_tok, version) for _ in range(320)]
    young = 0 if v10 else 16  # §5.7: young children borrow their parent's table until 16 symbols
    for child in children:
        child.point = young
    fresh_min = 2 if starts is not None else 4

    def parent_prior(level: int) -> list[int]:
        if v10:  # §5.3: the parent's prior is the grandparent
            return grand.freq
        if v15:
            return [(g + 3 * h) // 4 for g, h in zip(grand.freq, geo[level])]
        return [(g + h) // 2 for g, h in zip(grand.freq, geo[level])]

    skips: list[int] = []
    since, since_sum = (0, 0) if v15 else (16, 0)  # methods 4 / 6: no run at the start of a block
    prev_tok = 0
    x_prev = None
    for i in range(count):
        s16 = sum(skips[-16:])
        level = half_octave(s16 + 1)
        if v15:
            if since >= fresh_min:
                run = run_level(since_sum, since)
                if since < 16 or abs(run - level) < 4:
                    level = run
                else:  # the run drifted from the last 16 skips: restart it from them
                    since, since_sum = 16, s16
        elif not v10 and fresh_min <= since < 16:
            level = half_octave(16 * since_sum // since + 1)
        mag = min(prev_tok if prev_tok < 8 else 8 + (prev_tok - 8) // 4, 7) if i else 0
        child, parent = children[level * 8 + mag], parents[level]
        if parent.point == 0:  # built on first use, from the grandparent (built on first use too)
            geo[level] = geometric_row(level, n_tok)
            grand.first_use(None)
            parent.first_use(parent_prior(level))
        if v10:
            child.first_use(parent.freq)
        table = child if child.seen >= young else parent
        tok = stream.decode(table.freq, table.cum)
        # updates: child, grandparent, parent (each rebuilt if due), then the child if due
        child.count(tok)
        grand.count(tok)
        if grand.due():
            grand.rebuild(None)
        parent.count(tok)
        if parent.due():
            parent.rebuild(parent_prior(level))
        if child.due():
            child.rebuild(parent.freq)
        if tok < 8:
            v = tok
        else:
            e = (tok - 8) // 4 + 3
            v = (1 << e) | (((tok - 8) % 4) << (e - 2)) | raw.take(e - 2)
        # run boundaries
        x = base + v if x_prev is None else x_prev + v + 1
        if v10:
            boundary = False
        elif starts is None:
            boundary = i >= 16 and v > 4 * (s16 // 16) + 8
        else:
            boundary = x_prev is not None and folder_of(starts, x) != folder_of(starts, x_prev)
        if boundary:
            since, since_sum = 0, 0
        elif since < (4096 if v15 else 16):
            since, since_sum = since + 1, since_sum + v
        skips.append(v)
        prev_tok = tok
        x_prev = x
    stream.finish()
    raw.finish()
    return skips


# --- §6.2 / §6.3 / §6.5 the label model ---------------------------------------------------------


def decode_labels(method: int, body, skips: list[int], base: int, n_classes: int, starts: list[int] | None) -> list[int]:
    """Label method 2, 3, 5, 6, 7 or 9 (``starts``: the folder layout's first indices, for 5 and 7)."""
    v10 = method == 2
    v14 = method in (6, 7, 9)  # §6.6: 24 magnitudes, 24 parents, children's prior worth 32, literal weight 1
    n_h = 3 if method == 9 else 2  # §6.8: hit becomes h, which also knows a new label's run
    version = V10 if v10 else V11
    stream = Stream(read_words(body), version[0])
    mag_cap = 23 if v14 else 11
    parents = [Table(4, version) for _ in range((3 if v14 else 1) * 4 * n_h)]
    children = [Table(4, (version[0], 32) if v14 else version) for _ in range((mag_cap + 1) * 4 * n_h)]
    split = n_classes > 256
    exclude = n_classes <= 32 and not v10
    n_hi = -(-n_classes // 256)
    weight = 1 if v14 else 8
    literal = Table(n_classes, version, weight) if not split else None
    high = Table(n_hi, version, weight)
    lows = [Table(256, version, weight) for _ in range(n_hi)]
    m = 1 << version[0]
    window: list[int] = []  # the last 8 labels, oldest first
    mode = None
    recent: list[int] = []  # the 4 most recent distinct labels, most recent first
    hit = 0
    labels: list[int] = []
    x_prev = None
    for i, v in enumerate(skips):
        # candidates from the window as it is
        cands = [mode] + [label for label in recent if label != mode][:2]
        cands = (cands + [None] * 3)[:3]
        # run boundary: the window empties after the candidates are formed (§6.3)
        x = base + v if x_prev is None else x_prev + v + 1
        if v10:
            boundary = False
        elif starts is None:
            boundary = i >= 16 and v > 4 * (sum(skips[i - 16 : i]) // 16) + 8
        else:
            boundary = x_prev is not None and folder_of(starts, x) != folder_of(starts, x_prev)
        if boundary:
            window, mode = [], None
            if starts is not None:
                hit = 0  # §6.5
        mag = min(v if v < 8 else bitlen(v) + 4, mag_cap)
        d_count = window.count(mode) if mode is not None else 0
        strength = (d_count - 1) * 4 // 8 if d_count else 0
        h = hit
        if n_h == 3 and not hit and len(labels) >= 2 and labels[-1] == labels[-2] and mode is not None and labels[-1] != mode:
            h = 2  # §6.8: the last two labels agree on another label than D
        pc = strength * n_h + h
        coarse = (0 if mag < 8 else 1 if mag < 15 else 2) if v14 else 0  # §6.6: the parent sees the skip
        child, parent = children[mag * 4 * n_h + pc], parents[coarse * 4 * n_h + pc]
        parent.first_use(None)
        child.first_use(parent.freq)
        r = stream.decode(child.freq, child.cum)
        child.count(r)
        parent.count(r)
        if parent.due():
            parent.rebuild(None)
        if child.due():
            child.rebuild(parent.freq)
        if r < 3:
            label = cands[r]
            assert label is not None, "a candidate that does not exist yet"
        elif not split:
            literal.first_use(None)
            if exclude:
                present = [c for c in cands if c is not None]
                gone = sum(literal.freq[c] for c in present)
                scale = m * (1 << 16) // (m - gone)
                f2 = [0 if s in present else literal.freq[s] * scale >> 16 for s in range(n_classes)]
                f2[f2.index(max(f2))] += m - sum(f2)
                cum2 = [0]
                for f in f2:
                    cum2.append(cum2[-1] + f)
                label = stream.decode(f2, cum2)
            else:
                label = stream.decode(literal.freq, literal.cum)
            literal.count(label)
            if literal.due():
                literal.rebuild(None)
        else:
            high.first_use(None)
            hi = stream.decode(high.freq, high.cum)
            high.count(hi)
            if high.due():
                high.rebuild(None)
            low = lows[hi]
            low.first_use(None)
            lo = stream.decode(low.freq, low.cum)
            low.count(lo)
            if low.due():
                low.rebuild(None)
            label = (hi << 8) + lo
        assert label < n_classes
        labels.append(label)
        hit = 1 if r == 0 else 0
        if label in recent:
            recent.remove(label)
        recent = [label] + recent[:3]
        # the window and its mode
        dropped = window[0] if len(window) == 8 else None
        before = window.count(mode) if mode is not None else 0  # D's count before this entry
        window = window[-7:] + [label]
        counts = {lab: window.count(lab) for lab in window}
        if mode is None or label == mode:
            mode = label if mode is None else mode
        elif counts[label] >= before:  # reaches D's count from before the entry: takes over
            mode = label
        elif dropped == mode:  # the mode's count dropped: rescan from the most recent entry
            best = max(counts.values())
            mode = next(lab for lab in reversed(window) if counts[lab] == best)
        x_prev = x
    stream.finish()
    return labels


# --- §6.7 label method 8: order 0 with forgetting ----------------------------------------------


class ForgetTable:
    """§6.7: counts that halve at 2^h, rebuild points 1, 2, 4, ... below R, then every R."""

    def __init__(self, n_symbols: int, h: int) -> None:
        self.counts = [0] * n_symbols
        self.h, self.r = h, 1 << max(h - 5, 0)
        self.seen = 0
        self.point = 0  # 0: not built yet
        self.freq: list[int] = []
        self.cum: list[int] = []

    def build(self) -> None:
        if sum(self.counts) >= 1 << self.h:
            self.counts = [(c + 1) >> 1 for c in self.counts]
        m, a = 1 << 15, len(self.counts)
        total = 2 * sum(self.counts) + a
        freq = [1 + (2 * c + 1) * (m - a) // total for c in self.counts]
        freq[freq.index(max(freq))] += m - sum(freq)
        self.freq, self.cum = freq, [sum(freq[:s]) for s in range(a + 1)]
        self.point = 1 if self.point == 0 else (self.point * 2 if self.point < self.r else self.point + self.r)

    def decode(self, stream: Stream) -> int:
        if self.point == 0:
            self.build()
        s = stream.decode(self.freq, self.cum)
        self.counts[s] += 1
        self.seen += 1
        if self.seen >= self.point:
            self.build()
        return s


def decode_labels_forget(params, body, count: int, n_classes: int) -> list[int]:
    """Label method 8."""
    h = params.u8()
    assert 4 <= h <= 16
    stream = Stream(read_words(body), 15)
    if n_classes <= 256:
        table = ForgetTable(n_classes, h)
        labels = [table.decode(stream) for _ in range(count)]
    else:
        n_hi = -(-n_classes // 256)
        high, lows = ForgetTable(n_hi, h), [ForgetTable(256, h) for _ in range(n_hi)]
        labels = []
        for _ in range(count):
            hi = high.decode(stream)
            labels.append((hi << 8) + lows[hi].decode(stream))
    assert all(label < n_classes for label in labels)
    stream.finish()
    return labels


# --- the golden files --------------------------------------------------------------------------

CONTEXT_GOLDEN = [
    "index-3-label-2",
    "index-3-label-3",
    "index-4-label-2",
    "index-4-label-3",
    "clustered-c10",
    "clustered-c300",
    "clustered-c100",
    "index-6-label-5",
    "clustered-folders-c10",
    "clustered-folders-c300",
    "index-4-label-5",
    "index-6-label-3",
    "index-4-label-6",
    "index-6-label-7",
    "index-4-label-7",
    "index-6-label-6",
    "clustered-l6-c10",
    "clustered-l6-c100",
    "clustered-l6-c300",
    "clustered-folders-l7-c10",
    "clustered-folders-l7-c300",
    "noisy-l2",
    "noisy-l3",
    "noisy-l6",
    "index-4-label-8",
    "index-7-label-6",
    "index-8-label-7",
    "index-7-label-3",
    "index-8-label-5",
    "clustered-i7-c10",
    "clustered-i7-c300",
    "clustered-folders-i8-c10",
    "clustered-folders-i8-c300",
    "index-7-label-9",
    "index-4-label-9",
    "clustered-l9-c10",
    "clustered-l9-c100",
    "clustered-l9-c300",
    "clustered-l8-c10",
    "clustered-l8-c300",
]


@pytest.mark.parametrize("name", CONTEXT_GOLDEN)
def test_spec_decoder_reads_the_golden_files(name: str):
    data = (GOLDEN_DIR / f"{name}.plada").read_bytes()
    sidecar = load_sidecar(GOLDEN_DIR / f"{name}.json")
    expected = sidecar["decoded"]
    folders = sidecar["encode"].get("folders")
    starts = folders["starts"] if folders else None
    indices, labels = [], []
    for entries, base, (i_method, i_params, i_body), (l_method, l_params, l_body) in sections(data):
        assert i_method in (3, 4, 6, 7, 8) and l_method in (2, 3, 5, 6, 7, 8, 9)
        skips = decode_gaps(i_method, i_params, i_body, entries, base, starts if i_method in (6, 8) else None)
        assert i_params.pos == len(i_params.data)
        position = base - 1
        for skip in skips:
            position += skip + 1
            indices.append(position)
        if l_method == 8:
            labels += decode_labels_forget(l_params, l_body, entries, expected["n_classes"])
            assert l_params.pos == len(l_params.data)
        else:
            assert l_params.data == b""
            labels += decode_labels(l_method, l_body, skips, base, expected["n_classes"], starts if l_method in (5, 7) else None)
        assert l_body.pos == len(l_body.data)
    assert indices == expected["indices"]
    assert labels == expected["labels"]


# --- beyond the golden files: what the encoder writes for benchmark workloads ------------------

WORKLOADS = [("in1k-c10", 0.1), ("in21k-c200", 0.01), ("in1k-c1000", 0.01), ("uniform-in1k-c100", 0.01)]


@pytest.mark.parametrize("profile, keep", WORKLOADS)
@pytest.mark.parametrize("index_method, label_method", [(4, 3), (4, 6), (6, 5), (6, 7), (7, 6), (8, 7), (7, 9)])
def test_spec_decoder_reads_what_the_encoder_writes(profile, keep, index_method, label_method):
    """5,000 entries of a benchmark selection, coded by the library with each context pair and read
    by the decoder above: paths the golden files may miss (in1k-c10 @ 10 % found §6.2's mode
    update ambiguous at entry 3,340)."""
    import pladacodec
    from pladacodec_bench.workloads import PROFILES, folder_starts, make_selection

    sel = make_selection(profile, keep)
    indices, labels = sel.indices[:5000], sel.labels[:5000]
    starts = folder_starts(profile) if not PROFILES[profile].uniform else np.array([0, sel.n_reference])
    folders = pladacodec.FolderLayout(starts[:-1], sel.n_reference) if index_method in (6, 8) else None
    data = pladacodec.encode(
        indices, labels, sel.n_reference, n_classes=sel.n_classes,
        index_methods=[index_method], label_methods=[label_method], folders=folders,
    )
    layout = [int(s) for s in starts[:-1]] if folders is not None else None
    got_indices, got_labels = [], []
    for entries, base, (i_method, i_params, i_body), (l_method, l_params, l_body) in sections(data):
        assert (i_method, l_method) == (index_method, label_method)
        skips = decode_gaps(i_method, i_params, i_body, entries, base, layout)
        position = base - 1
        for skip in skips:
            position += skip + 1
            got_indices.append(position)
        got_labels += decode_labels(l_method, l_body, skips, base, sel.n_classes, layout)
    assert got_indices == [int(x) for x in indices]
    assert got_labels == [int(x) for x in labels]


@pytest.mark.parametrize("h", [4, 7, 16])
def test_spec_decoder_reads_label_method_8_on_real_selections(h, monkeypatch):
    """§6.7 on what it was made for, the real teacher's selections (bench/data/real), and on 300
    classes (high and low parts), with the halving exponent forced: every 2^h counts halve (h = 4
    rebuilds after every label; the encoder alone would not try it)."""
    import pladacodec
    from pladacodec import _context
    from pladacodec_bench.workloads import real_selections

    from common import _clustered_selection

    monkeypatch.setattr(_context, "FORGET_TRIALS", (h,))
    cases = [(sel.indices, sel.labels, sel.n_reference, sel.n_classes) for _, _, sel in real_selections()[::3]]
    cases.append((*_clustered_selection(300, 8), 300))  # high and low parts (C > 256)
    for indices, labels, n_reference, n_classes in cases:
        data = pladacodec.encode(indices, labels, n_reference, n_classes=n_classes, label_methods=[8])
        got = []
        for entries, _, _, (l_method, l_params, l_body) in sections(data):
            assert l_method == 8 and l_params.data == bytes([h])
            got += decode_labels_forget(l_params, l_body, entries, n_classes)
        assert got == [int(x) for x in labels]
