"""PladaDataset: a .plada task over a reference folder or dataset, as a torch Dataset."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import pladacodec  # noqa: E402
from pladacodec.data import LabelledFolder, PladaDataset  # noqa: E402
from pladacodec.errors import PladaReferenceError  # noqa: E402
from pladacodec.reference import Reference, dataset_fingerprint  # noqa: E402

from common import write_reference_images  # noqa: E402

pytestmark = pytest.mark.torch

CLASSES = ("cat", "dog", "T-shirt/top")


def _to_tensor(img):
    return torch.from_numpy(np.asarray(img.convert("L"), dtype=np.uint8).copy())


@pytest.fixture
def reference_dir(tmp_path):
    """12 grayscale 8x8 images whose pixel value is their canonical index * 10."""
    return write_reference_images(tmp_path / "ref", 8)


def _task(ref: Reference, indices=(1, 4, 7, 11), labels=(2, 0, 1, 2), **kw) -> bytes:
    return pladacodec.encode(list(indices), list(labels), ref.n, class_names=CLASSES,
                             reference_fingerprint=ref.fingerprint, **kw)


def test_folder_reference_yields_selected_images_and_labels(reference_dir, tmp_path):
    ref = Reference.from_dir(reference_dir)
    path = tmp_path / "task.plada"
    path.write_bytes(_task(ref))
    for task in (path, str(path), path.read_bytes(), pladacodec.read(path)):
        ds = PladaDataset(reference_dir, task, transform=_to_tensor)
        assert len(ds) == 4
        assert ds.classes == list(CLASSES) and ds.n_classes == 3
        assert ds.class_to_idx["T-shirt/top"] == 2
        assert ds.targets == [2, 0, 1, 2]
        items = [ds[i] for i in range(len(ds))]
        assert [int(x[0, 0]) for x, _ in items] == [10, 40, 70, 110]
        assert [y for _, y in items] == [2, 0, 1, 2]


def test_reference_object_and_default_loader(reference_dir):
    ref = Reference.from_dir(reference_dir)
    ds = PladaDataset(ref, _task(ref))
    image, label = ds[0]
    assert image.mode == "RGB" and image.size == (8, 8) and label == 2


def test_wrong_size_is_refused(reference_dir):
    ref = Reference.from_dir(reference_dir)
    data = pladacodec.encode([1, 2], [0, 1], ref.n + 1, class_names=CLASSES)
    with pytest.raises(PladaReferenceError, match=r"13 images but .* holds 12"):
        PladaDataset(reference_dir, data)


def test_wrong_fingerprint_is_refused(reference_dir):
    ref = Reference.from_dir(reference_dir)
    data = _task(ref)
    (reference_dir / "part0" / "img00.png").rename(reference_dir / "part0" / "zz.png")
    with pytest.raises(PladaReferenceError, match="fingerprint"):
        PladaDataset(reference_dir, data)
    # a PladaReferenceError is also a ValueError and a PladaError
    with pytest.raises(ValueError):
        PladaDataset(reference_dir, data)


def test_task_without_fingerprint_or_names(reference_dir):
    ref = Reference.from_dir(reference_dir)
    with pytest.warns(pladacodec.PladaReferenceWarning, match="no reference fingerprint.*only by its size"):
        ds = PladaDataset(reference_dir, pladacodec.encode([0, 3], [1, 0], ref.n))
    assert ds.classes == ["0", "1"] and len(ds) == 2


def test_dataset_keeps_only_the_task_images_in_numpy_buffers(reference_dir, tmp_path):
    import pickle

    import pladacodec._manifest as M

    ref = Reference.from_dir(reference_dir)
    ref.write_manifest(tmp_path / "m.txt")
    M_limit = M.IN_MEMORY_LIMIT
    M.IN_MEMORY_LIMIT = 0  # the reference reads its paths from the manifest file on demand
    try:
        big = Reference.from_manifest(tmp_path / "m.txt", root=reference_dir)
    finally:
        M.IN_MEMORY_LIMIT = M_limit
    assert not big.paths.in_memory
    ds = PladaDataset(big, _task(ref), transform=_to_tensor)
    images = ds._images
    assert len(images) == 4 and images.paths.in_memory  # 4 paths of 12, one byte buffer + offsets
    assert [ds.image_name(i) for i in range(4)] == [ref.paths[i] for i in (1, 4, 7, 11)]
    assert ds.reference_path(7) == str(reference_dir / ref.paths[7])
    with pytest.raises(IndexError, match="not one of the task's images"):
        ds.reference_path(2)
    clone = pickle.loads(pickle.dumps(ds))  # spawned DataLoader workers get a small copy
    assert int(clone[2][0][0, 0]) == 70 and clone[2][1] == 1


class _ArrayDataset(torch.utils.data.Dataset):
    def __init__(self, data, with_target=False):
        self.data = data
        self.with_target = with_target

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        x = torch.from_numpy(self.data[i])
        return (x, -1) if self.with_target else x


@pytest.mark.parametrize("with_target", [False, True])
def test_map_style_dataset_reference(with_target):
    arrays = np.arange(20 * 4, dtype=np.uint8).reshape(20, 2, 2)
    pool = _ArrayDataset(arrays, with_target)
    data = pladacodec.encode([3, 19], [1, 0], 20, n_classes=2, reference_fingerprint=dataset_fingerprint(pool))
    ds = PladaDataset(pool, data, transform=lambda x: x.sum())
    assert [(int(x), y) for x, y in ds] == [(int(arrays[3].sum()), 1), (int(arrays[19].sum()), 0)]
    other = _ArrayDataset(arrays[::-1].copy())
    with pytest.raises(PladaReferenceError, match="fingerprint"):
        PladaDataset(other, data)


def test_dataloader_with_workers(reference_dir):
    ref = Reference.from_dir(reference_dir)
    ds = PladaDataset(reference_dir, _task(ref, indices=range(12), labels=[i % 3 for i in range(12)]),
                      transform=_to_tensor)
    serial = [(x, y) for x, y in DataLoader(ds, batch_size=5)]
    parallel = [(x, y) for x, y in DataLoader(ds, batch_size=5, num_workers=2)]
    for (x0, y0), (x1, y1) in zip(serial, parallel, strict=True):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)
    assert torch.cat([y for _, y in parallel]).tolist() == [i % 3 for i in range(12)]


def test_bad_task_type():
    with pytest.raises(TypeError, match="plada path"):
        PladaDataset([1, 2, 3], 42)


def test_labelled_folder_follows_task_class_order(tmp_path):
    for name in ("dog", "T-shirt_top", "0"):
        (tmp_path / name).mkdir()
        Image.new("L", (4, 4)).save(tmp_path / name / "a.png")
    folder = LabelledFolder(tmp_path, CLASSES)
    assert sorted(folder.targets) == [0, 1, 2]
    assert {p.split("/")[-2]: t for p, t in folder.samples} == {"0": 0, "dog": 1, "T-shirt_top": 2}
    (tmp_path / "horse").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "horse" / "a.png")
    with pytest.raises(ValueError, match="horse"):
        LabelledFolder(tmp_path, CLASSES)


def test_import_pladacodec_and_demo_data_leave_torch_unloaded():
    code = ("import sys, pladacodec, pladacodec.demo, pladacodec.demo.data\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_task_packed_against_the_folder_layout(reference_dir, tmp_path):
    """A task that needs the reference's folder layout takes it from the reference (folder,
    Reference or path-naming dataset); without it the task cannot be read."""
    ref = Reference.from_dir(reference_dir)
    S = pladacodec._spec
    kw = dict(index_methods=[getattr(S, "INDEX_CONTEXT_FOLDERS", None) or S.INDEX_CONTEXT2_FOLDERS],
              label_methods=[getattr(S, "LABEL_CONTEXT_FOLDERS", None) or S.LABEL_CONTEXT2_FOLDERS])
    blob = _task(ref, folders=ref, **kw)
    assert pladacodec.read_header(blob).folders == (3, ref.folder_layout().digest)
    path = tmp_path / "task.plada"
    path.write_bytes(blob)

    class PathDataset(torch.utils.data.Dataset):
        paths = list(ref.paths)

        def __len__(self):
            return len(self.paths)

        def __getitem__(self, i):
            return _to_tensor(Image.open(reference_dir / self.paths[i]))

    for reference in (reference_dir, ref, PathDataset()):
        for task in (path, blob):
            ds = PladaDataset(reference, task, transform=_to_tensor)
            assert ds.targets == [2, 0, 1, 2] and ds.indices.tolist() == [1, 4, 7, 11]
    with pytest.raises(PladaReferenceError, match="folder layout"):
        pladacodec.read(path)
