"""The ``.plada`` byte format: every constant of FORMAT.md, and nothing else.

This module is the single source of truth for the bytes on disk.  Each group
cites the section of FORMAT.md it implements; change both together, and add a
golden file under ``tests/golden/`` for every new coding method.
All multi-byte integers are little-endian.
"""

from __future__ import annotations

import struct

# --- FORMAT.md §2 Preamble ---------------------------------------------------
MAGIC = b"\x89PLADA\r\n"
VERSION_MAJOR = 1  # the only major version this reader implements
VERSION_MINOR = 5  # the highest minor version whose fields and methods this reader knows
PREAMBLE_FORMAT = "<8sBBHI"  # magic, major, minor, flags, header length
PREAMBLE_SIZE = struct.calcsize(PREAMBLE_FORMAT)  # 16
FLAGS_CRITICAL_MASK = 0x00FF  # unknown bits here: refuse the file
FLAGS_KNOWN = 0x0000  # v1.0 defines no flag

# --- FORMAT.md §3 Header -------------------------------------------------------
HEADER_CRC_FORMAT = "<I"
HEADER_CRC_SIZE = struct.calcsize(HEADER_CRC_FORMAT)
# Tags: even = critical (a reader that does not know it refuses the file),
#       odd = optional (a reader that does not know it skips it).
TAG_CLASS_NAMES = 1
TAG_FINGERPRINT = 3
TAG_METADATA = 5
TAG_N_REFERENCE = 2
TAG_N_SELECTED = 4
TAG_N_CLASSES = 6
TAG_BLOCK_ENTRIES = 8
TAG_FOLDERS = 10  # the folder layout index method 6 / label methods 5, 7 need: varint(F) + digest (v1.3)
REQUIRED_TAGS = (TAG_N_REFERENCE, TAG_N_SELECTED, TAG_N_CLASSES, TAG_BLOCK_ENTRIES)
FINGERPRINT_SIZE = 32
FOLDERS_DIGEST_SIZE = 8  # leading bytes of SHA-256(FOLDERS_DIGEST_DOMAIN || u64 N || u64 F || u64 starts)
FOLDERS_DIGEST_DOMAIN = b"pladacodec-folders-v1\0"

# --- FORMAT.md §4 Blocks and sections ----------------------------------------
SECTION_CRC_FORMAT = "<I"
SECTION_CRC_SIZE = struct.calcsize(SECTION_CRC_FORMAT)

# Index-section coding methods (FORMAT.md §5).  Ids are stable forever.
INDEX_GOLOMB_ANS = 1  # gaps -> (quotient: ANS with a parametric geometric table, remainder: raw bits)
INDEX_BITMAP_ANS = 2  # bitmap bytes -> ANS with a stored byte histogram
INDEX_CONTEXT = 3  # adaptive context-model rANS over gap tokens, 12-bit tables (FORMAT.md §5.3)
INDEX_CONTEXT2 = 4  # the same model at 15 bits, a block-sized alphabet, borrowing children (§5.7; v1.1)
INDEX_GOLOMB_RANS = 5  # method 1's model, coded with the static two-state rANS (§5.8; v1.2)
INDEX_CONTEXT2_FOLDERS = 6  # method 4 with the folder changes of a known layout as run boundaries (§5.9; v1.3)
INDEX_CONTEXT3 = 7  # method 4 measuring a run's density over the whole run, restarting it on drift (§5.10; v1.5)
INDEX_CONTEXT3_FOLDERS = 8  # method 7 with method 6's folder boundaries (§5.10; v1.5)
INDEX_METHODS = (
    INDEX_GOLOMB_ANS, INDEX_BITMAP_ANS, INDEX_CONTEXT, INDEX_CONTEXT2, INDEX_GOLOMB_RANS, INDEX_CONTEXT2_FOLDERS,
    INDEX_CONTEXT3, INDEX_CONTEXT3_FOLDERS,
)

# Label-section coding methods (FORMAT.md §6).
LABEL_IID_ANS = 1  # ANS with the block's label histogram stored exactly
LABEL_CONTEXT = 2  # adaptive context-model rANS over candidate ranks, 12-bit tables (FORMAT.md §6.2)
LABEL_CONTEXT2 = 3  # the same model at 15 bits, literals exclude the candidates (§6.3; v1.1)
LABEL_IID_RANS = 4  # label method 1's model, coded with the static two-state rANS (§6.4; v1.2)
LABEL_CONTEXT2_FOLDERS = 5  # method 3 with the folder changes of a known layout as run boundaries (§6.5; v1.3)
LABEL_CONTEXT3 = 6  # method 3 with finer skip contexts, quicker children, flatter literals (§6.6; v1.4)
LABEL_CONTEXT3_FOLDERS = 7  # method 6 with method 5's folder boundaries (§6.6; v1.4)
LABEL_FORGET = 8  # adaptive order-0 rANS whose counts halve at 2^h: follows a drifting class mix (§6.7; v1.5)
LABEL_CONTEXT4 = 9  # method 6 whose contexts also know a new label's run has begun (§6.8; v1.5)
LABEL_METHODS = (
    LABEL_IID_ANS, LABEL_CONTEXT, LABEL_CONTEXT2, LABEL_IID_RANS, LABEL_CONTEXT2_FOLDERS, LABEL_CONTEXT3,
    LABEL_CONTEXT3_FOLDERS, LABEL_FORGET, LABEL_CONTEXT4,
)
# Methods that need the folder layout named by header tag 10: a file uses them only with it,
# and a writer tries them only when given a layout.
FOLDER_METHODS = {
    ("index", INDEX_CONTEXT2_FOLDERS), ("index", INDEX_CONTEXT3_FOLDERS), ("label", LABEL_CONTEXT2_FOLDERS),
    ("label", LABEL_CONTEXT3_FOLDERS),
}

# The first minor version that defines each method: a file is stamped with the lowest
# minor version that knows every method its writer may use (FORMAT.md §2).
METHOD_MINOR_VERSION = {
    ("index", INDEX_GOLOMB_ANS): 0,
    ("index", INDEX_BITMAP_ANS): 0,
    ("index", INDEX_CONTEXT): 0,
    ("index", INDEX_CONTEXT2): 1,
    ("index", INDEX_GOLOMB_RANS): 2,
    ("label", LABEL_IID_ANS): 0,
    ("label", LABEL_CONTEXT): 0,
    ("label", LABEL_CONTEXT2): 1,
    ("label", LABEL_IID_RANS): 2,
    ("index", INDEX_CONTEXT2_FOLDERS): 3,
    ("label", LABEL_CONTEXT2_FOLDERS): 3,
    ("label", LABEL_CONTEXT3): 4,
    ("label", LABEL_CONTEXT3_FOLDERS): 4,
    ("label", LABEL_FORGET): 5,
    ("index", INDEX_CONTEXT3): 5,
    ("index", INDEX_CONTEXT3_FOLDERS): 5,
    ("label", LABEL_CONTEXT4): 5,
}
TAG_MINOR_VERSION = {TAG_FOLDERS: 3}  # header fields newer than 1.0
# Superseded methods: still decoded (forever) and available when forced, but the automatic
# choice skips them because their successor (named here) codes the same model better
# (FORMAT.md §5, §6); an older version's choice (methods_up_to) skips them only if it defines it.
SUPERSEDED_BY = {
    ("index", INDEX_CONTEXT): INDEX_CONTEXT2,
    ("label", LABEL_CONTEXT): LABEL_CONTEXT2,
    ("index", INDEX_GOLOMB_ANS): INDEX_GOLOMB_RANS,
    ("label", LABEL_IID_ANS): LABEL_IID_RANS,
}
# The reference encoder's speed / size trade (FORMAT.md §5): the static methods decode 3-10x
# faster than the adaptive context models, so an adaptive method is kept only when it is more
# than ADAPTIVE_MIN_SAVING smaller than the best static one.
STATIC_METHODS = {
    ("index", INDEX_GOLOMB_ANS), ("index", INDEX_BITMAP_ANS), ("index", INDEX_GOLOMB_RANS),
    ("label", LABEL_IID_ANS), ("label", LABEL_IID_RANS),
}
ADAPTIVE_MIN_SAVING = 0.01

# --- FORMAT.md §7 Trailer ----------------------------------------------------
TRAILER_FORMAT = "<I4s"  # CRC-32C of every byte before the trailer, end magic
TRAILER_SIZE = struct.calcsize(TRAILER_FORMAT)
END_MAGIC = b"PEND"

# --- FORMAT.md §5.1 Golomb-ANS parameters --------------------------------------
GOLOMB_PARAMS_FORMAT = "<BI"  # remainder width b, continuation probability a / 2**32
GOLOMB_PARAMS_SIZE = struct.calcsize(GOLOMB_PARAMS_FORMAT)
GOLOMB_W0 = 1 << 31  # weight of quotient 0
GOLOMB_MIN_WEIGHT = 1 << 7  # the table ends at the first weight below this ...
GOLOMB_MAX_SYMBOLS = 4096  # ... or at this many quotient symbols
GOLOMB_TAIL_CAP = 1 << 40  # the escape weight is capped here (exact in float64)
GOLOMB_MAX_WIDTH = 56  # remainder width limit (pack_bits handles <= 56)
ANS_SENTINEL = 0x504C  # 16-bit value coded first (decoded last) in every constriction stream

# --- FORMAT.md §5.8 Static two-state rANS (index method 5, label method 4) -----------------
STATIC_BITS = 16  # probability bits of a table over at most STATIC_MAX_SMALL_ALPHABET symbols
STATIC_BITS_LARGE = 20  # ... and over a larger alphabet (up to 65,535 labels in use)
STATIC_MAX_SMALL_ALPHABET = 4097  # the largest Golomb alphabet: 4,096 quotients + the escape
STATIC_TWO_STATES_MIN = 4096  # streams of this many symbols or more interleave two states, shorter ones use one

# --- FORMAT.md §6.7 Label method 8 (order 0 with forgetting) -------------------------------
FORGET_PARAMS_FORMAT = "<B"  # h: the counts of a table halve when they sum to 2^h
FORGET_MIN_BITS = 4
FORGET_MAX_BITS = 16

# --- FORMAT.md §8 Limits every reader enforces ----------------------------------
MAX_N_REFERENCE = 1 << 40
MAX_CLASSES = 65_535
MAX_BLOCK_ENTRIES = 1 << 20
DEFAULT_BLOCK_ENTRIES = 1 << 20
MAX_HEADER_SIZE = 16 << 20
MAX_CLASS_NAME_BYTES = 4096
MAX_METADATA_BYTES = 1 << 20
MAX_PARAMS_SIZE = 1 << 16
MAX_BITMAP_SPAN = 1 << 27  # bits covered by one bitmap-coded block
MAX_VARINT_BYTES = 10  # a varint encodes at most 64 bits
DEFAULT_MAX_ENTRIES = 1 << 28  # decode() refuses more unless the caller raises it
MAX_FILE_SIZE = 1 << 32
