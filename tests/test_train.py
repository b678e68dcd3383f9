"""Student training: the Python API and ``pladacodec train`` on a folder reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
from click.testing import CliRunner  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

import pladacodec  # noqa: E402
from pladacodec.reference import Reference  # noqa: E402
from pladacodec.train import build_model, evaluate, load_checkpoint, train  # noqa: E402

pytestmark = pytest.mark.torch
MODEL = "resnet10t"  # the smallest timm ResNet: keeps these tests fast


def _stripes(n: int, seed: int = 0):
    """Two classes any CNN separates: bright top half vs bright bottom half, 16x16, noisy."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    top = (np.arange(16) < 8).astype(np.float32)
    images = np.where(labels[:, None, None] == 0, top[None, :, None], 1 - top[None, :, None])
    images = np.broadcast_to(images, (n, 16, 16)) + 0.3 * rng.standard_normal((n, 16, 16)).astype(np.float32)
    return images, labels


def test_train_learns_and_writes_outputs(tmp_path):
    x, y = _stripes(128)
    data = TensorDataset(torch.from_numpy(x)[:, None], torch.from_numpy(y))
    xt, yt = _stripes(64, seed=1)
    test = TensorDataset(torch.from_numpy(xt)[:, None], torch.from_numpy(yt))
    result = train(data, num_classes=2, test=test, model=MODEL, epochs=2, min_steps=18, batch_size=32,
                   progress=False, class_names=["h", "v"], out_dir=tmp_path / "run", device="cpu")
    assert result.epochs == 5 and result.steps == 20  # min_steps raised the epochs (4 batches each)
    assert result.test_accuracy >= 0.9
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_accuracy"] == result.test_accuracy and metrics["class_names"] == ["h", "v"]
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    model = build_model(saved["model"], saved["num_classes"], in_chans=saved["in_chans"])
    model.load_state_dict(saved["state_dict"])
    again = evaluate(model, test, num_classes=2, device="cpu")
    assert again["accuracy"] == pytest.approx(result.test_accuracy)


def test_load_checkpoint_by_name_and_by_position(tmp_path):
    source = build_model(MODEL, 10, in_chans=1)
    state = source.state_dict()
    torch.save({"state_dict": state}, tmp_path / "named.pt")
    torch.save({f"renamed_{i}": v for i, v in enumerate(state.values())}, tmp_path / "positional.pt")
    for name in ("named.pt", "positional.pt"):
        target = build_model(MODEL, 10, in_chans=1)
        assert load_checkpoint(target, tmp_path / name) == []
        assert all(torch.equal(a, b) for a, b in zip(target.state_dict().values(), state.values()))
    # a checkpoint for another number of classes loads all but the classifier
    target = build_model(MODEL, 3, in_chans=1, checkpoint=None)
    left = load_checkpoint(target, tmp_path / "named.pt")
    assert left and all(k.startswith("fc.") for k in left)


def test_cli_train_on_reference_folder(tmp_path):
    from pladacodec_cli.client import train as train_cmd

    x, y = _stripes(48)
    ref_dir, test_dir = tmp_path / "reference", tmp_path / "test"
    for i, img in enumerate(x):
        path = ref_dir / f"{i // 10}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(((img.clip(-0.5, 1.5) + 0.5) * 127).astype(np.uint8)).save(path)
    xt, yt = _stripes(20, seed=3)
    for i, (img, label) in enumerate(zip(xt, yt)):
        path = test_dir / ("top", "bottom")[label] / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(((img.clip(-0.5, 1.5) + 0.5) * 127).astype(np.uint8)).save(path)
    ref = Reference.from_dir(ref_dir)
    # reference order is by path, which here is the generation order
    pladacodec.write(tmp_path / "task.plada", np.arange(0, 48, 2), y[::2], ref.n,
                     class_names=["top", "bottom"], reference_fingerprint=ref.fingerprint)
    out = tmp_path / "student"
    result = CliRunner().invoke(train_cmd, [
        str(tmp_path / "task.plada"), "--reference", str(ref_dir), "--test", str(test_dir),
        "--model", MODEL, "--epochs", "1", "--min-steps", "4", "--batch-size", "8", "--workers", "0",
        "--device", "cpu", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["images"] == 24 and summary["steps"] == 6 and 0.0 <= summary["test_accuracy"] <= 1.0
    assert (out / "checkpoint.pt").is_file() and (out / "metrics.json").is_file()

    # the same task against a different reference folder is refused with a clear message
    (ref_dir / "0" / "000.png").rename(ref_dir / "0" / "renamed.png")
    result = CliRunner().invoke(train_cmd, [str(tmp_path / "task.plada"), "--reference", str(ref_dir)])
    assert result.exit_code != 0 and "fingerprint" in result.output
