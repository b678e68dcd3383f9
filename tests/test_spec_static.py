"""FORMAT.md §5.1, §5.5, §5.8 and §6.4 read literally: an independent decoder of index method 5
(Golomb-rANS) and label method 4 (i.i.d.-rANS), in plain Python integers, checked against the
golden files.

Nothing here imports the library's coders or kernels: if the spec text and the implementation
ever disagree, these tests say so.  (The container framing of §2-§4 is parsed here too.)
"""

from __future__ import annotations

import struct

import pytest

from common import GOLDEN_DIR, load_sidecar

RANS_L = 1 << 31


class Bytes:
    """A cursor over bytes with the spec's primitive fields."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        assert self.pos + n <= len(self.data), "read past the end"
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value


# --- §5.8 static tables and streams --------------------------------------------------------


def static_table(weights: list[int]) -> tuple[list[int], list[int], int]:
    a = len(weights)
    bits = 16 if a <= 4097 else 20
    m = 1 << bits
    assert a < m
    spread, total = m - a, sum(weights)
    freq = [1 + w * spread // total for w in weights]
    first_largest = freq.index(max(freq))
    freq[first_largest] += m - sum(freq)
    cum = [0]
    for f in freq:
        cum.append(cum[-1] + f)
    return freq, cum, bits


def static_stream(cur: Bytes, n: int, table) -> list[int]:
    freq, cum, bits = table
    n_words = cur.varint()
    words = list(struct.unpack(f"<{n_words}I", cur.take(4 * n_words)))
    if n == 0:
        assert n_words == 0
        return []
    n_states = 2 if n >= 4096 else 1
    states = [(words[2 * j] << 32) | words[2 * j + 1] for j in range(n_states)]
    pos = 2 * n_states
    out = []
    for i in range(n):
        x = states[i % n_states]
        slot = x % (1 << bits)
        s = max(j for j in range(len(freq)) if cum[j] <= slot)  # cum_s <= slot < cum_(s+1)
        x = freq[s] * (x >> bits) + slot - cum[s]
        if x < RANS_L:
            x = (x << 32) | words[pos]
            pos += 1
        states[i % n_states] = x
        out.append(s)
    assert states == [RANS_L] * n_states and pos == n_words, "final states 2^31, every word consumed"
    return out


# --- §5.1 quotient alphabet, §5.8 Golomb-rANS record ------------------------------------------


def golomb_weights(a: int) -> list[int]:
    weights, w = [], 1 << 31
    while w >= 1 << 7 and len(weights) < 4096:
        weights.append(w)
        w = w * a >> 32
    weights.append(min((w << 32) // ((1 << 32) - a), 1 << 40))  # the escape
    return [w + 1 for w in weights]


def golomb_rans(params: Bytes, body: Bytes, count: int) -> list[int]:
    b, a = struct.unpack("<BI", params.take(5))
    weights = golomb_weights(a)
    escape = len(weights) - 1
    quotients = static_stream(body, count, static_table(weights))
    packed = int.from_bytes(body.take((count * b + 7) // 8), "little")
    remainders = [(packed >> (i * b)) & ((1 << b) - 1) for i in range(count)]
    quotients = [q if q < escape else escape + body.varint() for q in quotients]
    return [(q << b) | r for q, r in zip(quotients, remainders)]


# --- §5.5 histogram with Golomb-rANS records, §6.4 labels -------------------------------------


def iid_rans_labels(body: Bytes, count: int) -> list[int]:
    used = body.varint()
    bins, counts = [], []
    if used:
        position = -1
        for skip in golomb_rans(body, body, used):
            position += skip + 1
            bins.append(position)
        counts = [c + 1 for c in golomb_rans(body, body, used - 1)]
        counts.append(count - sum(counts))
    if used <= 1:
        assert body.varint() == 0
        return bins * count
    ranks = static_stream(body, count, static_table(counts))
    assert [ranks.count(r) for r in range(used)] == counts, "ranks reproduce the histogram"
    return [bins[r] for r in ranks]


# --- §2-§4 container, just enough to reach the sections ------------------------------------


def sections(data: bytes):
    """(entries, base, (method, params, body) of the index section, same of the label section) per block."""
    cur = Bytes(data, 12)
    header_len = struct.unpack("<I", cur.take(4))[0]
    fields = Bytes(cur.take(header_len))
    values = {}
    while fields.pos < len(fields.data):
        tag, length = fields.varint(), fields.varint()
        values[tag] = fields.take(length)
    k, block_entries = Bytes(values[4]).varint(), Bytes(values[8]).varint()
    cur.take(4)  # header CRC
    blocks, remaining = [], k
    while remaining:
        entries, base = cur.varint(), cur.varint()
        pair = []
        for _ in range(2):
            method = cur.u8()
            params = Bytes(cur.take(cur.varint()))
            body = Bytes(cur.take(cur.varint()))
            cur.take(4)  # section CRC
            pair.append((method, params, body))
        blocks.append((entries, base, *pair))
        remaining -= entries
        assert entries == min(block_entries, remaining + entries)
    return blocks


STATIC_GOLDEN = ["index-5-label-4", "wide-rans", "many-labels-rans", "index-5-label-1", "index-1-label-4"]


@pytest.mark.parametrize("name", STATIC_GOLDEN)
def test_spec_decoder_reads_the_golden_files(name: str):
    data = (GOLDEN_DIR / f"{name}.plada").read_bytes()
    expected = load_sidecar(GOLDEN_DIR / f"{name}.json")["decoded"]
    indices, labels, checked = [], [], 0
    for entries, base, (i_method, i_params, i_body), (l_method, l_params, l_body) in sections(data):
        if i_method == 5:
            position = base - 1
            for skip in golomb_rans(i_params, i_body, entries):
                position += skip + 1
                indices.append(position)
            assert i_params.pos == len(i_params.data) and i_body.pos == len(i_body.data)
            checked += 1
        else:
            indices = expected["indices"][: len(indices) + entries]
        if l_method == 4:
            assert l_params.data == b""
            labels += iid_rans_labels(l_body, entries)
            assert l_body.pos == len(l_body.data)
            checked += 1
        else:
            labels = expected["labels"][: len(labels) + entries]
    assert checked >= 1
    assert indices == expected["indices"]
    assert labels == expected["labels"]


def test_the_golden_files_cover_both_table_sizes():
    """many-labels-rans needs a 20-bit table (more than 4,097 labels in use), the others 16 bits."""
    data = (GOLDEN_DIR / "many-labels-rans.plada").read_bytes()
    labels = load_sidecar(GOLDEN_DIR / "many-labels-rans.json")["decoded"]["labels"]
    assert len(set(labels)) > 4097
    assert sections(data)[0][3][0] == 4
