"""The ``.plada`` byte format 2.0: every constant of FORMAT.md that changes the bytes, and nothing else.

This module is the single source of truth for the bytes on disk.  Each group
cites the section of FORMAT.md it implements; change both together.  The coding
methods themselves are declared once, in :mod:`pladacodec._methods`, by the ids
below; every method keeps a golden file under ``tests/golden/``.
All multi-byte integers are little-endian.

Numba freezes these constants into the compiled kernels, and its cache is keyed on
``_kernels.py`` alone: after changing a constant here, clear the cache (``__pycache__`` /
``NUMBA_CACHE_DIR``) or touch ``_kernels.py``, or the old values keep being used.
"""

from __future__ import annotations

import struct

# --- FORMAT.md §2 Preamble ---------------------------------------------------
MAGIC = b"\x89PLD"
VERSION_MAJOR = 2  # the only major version this reader implements
VERSION_MINOR = 0  # the highest minor version whose fields and methods this reader knows
PREAMBLE_FORMAT = "<4sBB"  # magic, major, minor; then varint(header length)
PREAMBLE_SIZE = struct.calcsize(PREAMBLE_FORMAT)  # 6
LEGACY_MAGIC = b"\x89PLADA\r\n"  # format 1.x (pre-release): refused, naming its version

# --- FORMAT.md §3 Header -------------------------------------------------------
# Required values, in order: varint N, varint k, varint C, varint B (0: one block holds all k).
# Then fields varint(tag) varint(length) value: even tags critical, odd tags optional.
TAG_CLASS_NAMES = 1
TAG_FINGERPRINT = 3
TAG_METADATA = 5
TAG_FOLDERS = 2  # the folder layout the folder methods code against: varint(F) + digest
HEADER_CRC_FORMAT = "<I"
HEADER_CRC_SIZE = struct.calcsize(HEADER_CRC_FORMAT)
FINGERPRINT_SIZE = 32
FOLDERS_DIGEST_SIZE = 8  # leading bytes of SHA-256(FOLDERS_DIGEST_DOMAIN || u64 N || u64 F || u64 starts)
FOLDERS_DIGEST_DOMAIN = b"pladacodec-folders-v1\0"

# --- FORMAT.md §4 Blocks -----------------------------------------------------
# block := [varint(base), blocks after the first] u8(index method | label method << 4)
#          varint(index section length) varint(label section length) sections u32(CRC-32C)
BLOCK_CRC_FORMAT = "<I"
BLOCK_CRC_SIZE = struct.calcsize(BLOCK_CRC_FORMAT)
METHOD_BITS = 4  # each method id is a nibble of the block's method byte

# Coding-method ids (FORMAT.md §5, §6).  Ids are stable forever; 0 is never a method.
INDEX_GOLOMB = 1  # static: gaps as a parametric geometric quotient + raw remainder (§5.1)
INDEX_CONTEXT = 2  # adaptive: gap tokens in density contexts, jumps as run boundaries (§5.2)
INDEX_CONTEXT_FOLDERS = 3  # INDEX_CONTEXT with the layout's folder changes as run boundaries (§5.3)
LABEL_IID = 1  # static: the block's label histogram + ranks (§6.1)
LABEL_DRIFT = 2  # adaptive order 0 whose counts halve at 2^h (§6.2)
LABEL_CONTEXT = 3  # adaptive: candidate ranks in skip / mode / run contexts, jumps as run boundaries (§6.3)
LABEL_CONTEXT_FOLDERS = 4  # LABEL_CONTEXT with the layout's folder changes as run boundaries (§6.4)
LABEL_MIX = 5  # adaptive: order 0 and order 1 (the previous label) mixed by a learned weight (§6.5)

# --- FORMAT.md §5.1 Golomb parameters ------------------------------------------
GOLOMB_PARAMS_FORMAT = "<BI"  # remainder width b, continuation probability a / 2**32
GOLOMB_PARAMS_SIZE = struct.calcsize(GOLOMB_PARAMS_FORMAT)
GOLOMB_W0 = 1 << 31  # weight of quotient 0
GOLOMB_MIN_WEIGHT = 1 << 7  # the table ends at the first weight below this ...
GOLOMB_MAX_SYMBOLS = 4096  # ... or at this many quotient symbols
GOLOMB_TAIL_CAP = 1 << 40  # the escape weight is capped here
GOLOMB_MAX_WIDTH = 56  # remainder width limit

# --- FORMAT.md §7.1 Static rANS -----------------------------------------------------------
RANS_L = 1 << 31  # every state lies in [RANS_L, 2^63); 32-bit words
STATIC_BITS = 16  # probability bits of a table over at most STATIC_MAX_SMALL_ALPHABET symbols
STATIC_BITS_LARGE = 20  # ... and over a larger alphabet (up to 65,535 labels in use)
STATIC_MAX_SMALL_ALPHABET = 4097  # the largest Golomb alphabet: 4,096 quotients + the escape
STATIC_TWO_STATES_MIN = 4096  # streams of this many symbols or more interleave two states

# --- FORMAT.md §7.2 Adaptive rANS and its tables --------------------------------------------
ADAPTIVE_BITS = 15  # every adaptive table sums to 2^15
OBSERVATION_WEIGHT = 8  # a table without a prior: w_s = 8 * count_s + 1
PRIOR_STRENGTH = 256  # a prior table counts as this many observations (gap children and parents)
HALVE_AT = 1 << 16  # counts halve before a rebuild once they sum to this
REBUILD_STEP = 1024  # rebuild points double up to this, then grow by it
PARENT_FIRST_REBUILD = 16  # a gap parent, built from its prior on first use, is next rebuilt here
# (1 in 1.x: 1,281-entry gap sections decoded 27-47 % slower for 0.03 % fewer bytes)
CHILD_MIN = 16  # a young gap child codes with its parent's table until it has seen this many

# --- FORMAT.md §5.2 Gap tokens, contexts, runs ---------------------------------------
GAP_EXACT = 8  # skips below this are their own token
GAP_SUB = 2  # bits below the top bit that a token keeps
GAP_MAX_EXP = 40
GAP_TOKENS = GAP_EXACT + (GAP_MAX_EXP - 2) * (1 << GAP_SUB)  # 160
GAP_WINDOW = 16  # the local density: the sum of the last 16 skips
GAP_LEVELS = 40  # half-octaves of density
GAP_MAG1_LEVELS = 8  # the previous token's magnitude, capped
BOUNDARY_FACTOR = 4  # a jump: skip > 4 * floor(S / 16) + 8, entries >= 16
BOUNDARY_SLACK = 8
GAP_FRESH_MIN = 4  # a run's own density is used once it has this many skips (jumps) ...
GAP_FRESH_MIN_FOLDERS = 2  # ... or this many (folder changes)
GAP_RUN_CAP = 4096  # a run's density is measured over up to this many skips
GAP_DRIFT = 4  # a run restarts when its level and the last 16 skips' differ by this many half-octaves
GAP_GEO_SHARE = 3  # of 4: the geometric table's share of a parent's prior (the grandparent has the rest)
GEO_DEN = 640  # a level's mean skip is (5 * (R8 - 8) + 32) / GEO_DEN
GEO_ONE_BITS = 31  # Q31 fixed point

# --- FORMAT.md §6.3 Label contexts ------------------------------------------------------------
LABEL_WINDOW = 8
LABEL_RECENT = 4
LABEL_CANDIDATES = 3
LABEL_STRENGTH_LEVELS = 4
LABEL_MAG_LEVELS = 24
LABEL_PREV_STATES = 3  # the previous entry hit D / the last two labels started a run of another label / neither
LABEL_COARSE = 3  # parent skip classes: mag < 8, < 15, the rest
LABEL_MAG_SMALL = 8
LABEL_MAG_MEDIUM = 15
LABEL_CHILD_STRENGTH = 32  # a rank child's prior (its parent) counts as 32 observations
LABEL_LITERAL_WEIGHT = 1  # literal tables: w_s = count_s + 1
LABEL_EXCLUDE_MAX = 32  # up to this many classes, a literal excludes the candidates
LABEL_SPLIT = 256  # more classes than this: a literal is a high part, then a low byte

# --- FORMAT.md §6.2 Drift -------------------------------------------------------------------
DRIFT_PARAMS_FORMAT = "<B"  # h: the counts of a table halve when they sum to 2^h
DRIFT_MIN_BITS = 4
DRIFT_MAX_BITS = 16
DRIFT_WEIGHT = 2  # w_s = 2 * count_s + 1
DRIFT_STEP_SHIFT = 5  # rebuild points double up to 2^max(h - 5, 0), then grow by it

# --- FORMAT.md §6.5 Mix ---------------------------------------------------------------------
MIX_PARAMS_FORMAT = "<B"  # (h0 - MIX_MIN_BITS) << 4 | (h1 - MIX_MIN_BITS): the halving exponents
MIX_MIN_BITS = 4
MIX_MAX_BITS = 12
MIX_MAX_CLASSES = 64  # a table is computed per label: the method serves small label sets only
MIX_PRIOR = 8  # an order-1 context's prior (the order-0 estimate) counts as 8 observations
MIX_WEIGHT_BITS = 16  # the order-1 model's weight w / 2^16
MIX_RATE_SHIFT = 6  # w <- posterior - posterior / 2^6 + 2^15 / 2^6
MIX_SCALE_BITS = 24  # the mixture's numerators are shifted below 2^24 before they are scaled to 2^15

# --- FORMAT.md §8 Limits every reader enforces ----------------------------------
MAX_N_REFERENCE = 1 << 40
MAX_CLASSES = 65_535
MAX_BLOCK_ENTRIES = 1 << 20
MAX_HEADER_SIZE = 16 << 20
MAX_CLASS_NAME_BYTES = 4096
MAX_METADATA_BYTES = 1 << 20
MAX_VARINT_BYTES = 10  # a varint encodes at most 64 bits
MAX_FILE_SIZE = 1 << 32

# Not part of the bytes: reader / writer defaults.
DEFAULT_BLOCK_ENTRIES = MAX_BLOCK_ENTRIES
DEFAULT_MAX_ENTRIES = 1 << 28  # decode() refuses more unless the caller raises it
