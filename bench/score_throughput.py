"""Server-side acceptance helpers: a real reference folder, a real teacher, and a throughput check.

    python -m pladacodec_bench.score_throughput prepare WORKDIR
        Writes WORKDIR/reference/ (the demo's reference pool, Fashion-MNIST's
        training split minus the teacher's 6,000 images plus MNIST, sklearn
        digits, LFW faces and openclipart distractors, ~69,000 28x28 PNGs in
        folders of 1,000), WORKDIR/teacher.pth (EfficientNet-Lite0 with
        ImageNet weights and a linear head fitted on the 6,000 labelled
        Fashion-MNIST images at 32 px) and WORKDIR/classes.txt.

    python -m pladacodec_bench.score_throughput throughput --teacher SPEC --reference DIR [...]
        Prints a table: images/s of the model's forward pass alone on
        pre-loaded batches, and end-to-end (DataLoader + forward + scores) on
        the same batches, alternated to cancel out load from other processes.

bench/server_acceptance.sh chains both with the `pladacodec` CLI.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

IMG_SIZE = 32  # Fashion-MNIST is 28x28; the teacher sees it at 32x32
FOLDER_SIZE = 1000


@click.group()
def main() -> None:
    """Server-side acceptance helpers."""


@main.command()
@click.argument("workdir", type=click.Path(file_okay=False))
@click.option("--n-train", default=6000, show_default=True, help="Labelled Fashion-MNIST images for the teacher head.")
@click.option("--batch-size", default=200, show_default=True)
def prepare(workdir: str, n_train: int, batch_size: int) -> None:
    """Write the reference folder and the teacher checkpoint into WORKDIR."""
    import torch
    from PIL import Image
    from sklearn.linear_model import LogisticRegression

    from pladacodec.demo.data import build_demo_data
    from pladacodec.teacher import load_efficientnet_lite0_pretrained, make_transform

    work = Path(workdir)
    ref_dir = work / "reference"
    t0 = time.perf_counter()
    data = build_demo_data(n_train=n_train)
    click.echo(f"demo data: {data.n_pool:,} reference images {data.source_counts()}, "
               f"{len(data.train_x):,} labelled ({time.perf_counter() - t0:.0f} s)")

    if not (ref_dir / ".complete").exists():
        t0 = time.perf_counter()
        for i, img in enumerate(data.pool_x):
            folder = ref_dir / f"{i // FOLDER_SIZE:03d}"
            if i % FOLDER_SIZE == 0:
                folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img, mode="L").save(folder / f"{i:06d}.png", compress_level=1)
        (ref_dir / ".complete").touch()  # hidden: not part of the reference set
        click.echo(f"wrote {data.n_pool:,} PNGs to {ref_dir} ({time.perf_counter() - t0:.0f} s)")
    np.save(work / "pool_true_label.npy", data.pool_true_label)  # for the report only

    # Teacher: ImageNet features + a linear head fitted on the labelled target images.
    torch.set_num_threads(2)
    model = load_efficientnet_lite0_pretrained(num_classes=1000)
    transform, _ = make_transform(model, {"img_size": IMG_SIZE, "crop_pct": 1.0})
    t0 = time.perf_counter()
    feats = []
    with torch.inference_mode():
        for lo in range(0, len(data.train_x), batch_size):
            x = torch.stack([transform(Image.fromarray(a, mode="L").convert("RGB"))
                             for a in data.train_x[lo:lo + batch_size]])
            feats.append(model.forward_head(model.forward_features(x), pre_logits=True).numpy())
    feats = np.concatenate(feats)
    click.echo(f"features of {len(feats):,} labelled images ({time.perf_counter() - t0:.0f} s)")
    mean = feats.mean(axis=0)
    std = feats.std(axis=0) + 1e-6
    clf = LogisticRegression(max_iter=300, C=0.5)
    clf.fit((feats - mean) / std, data.train_y)
    click.echo(f"linear head: train accuracy {clf.score((feats - mean) / std, data.train_y):.3f}")
    # Fold the standardisation into the classifier: W (f - m) / s + b.
    w = clf.coef_ / std
    b = clf.intercept_ - (clf.coef_ * (mean / std)).sum(axis=1)
    model.reset_classifier(len(data.class_names))
    state = model.state_dict()
    state["classifier.weight"] = torch.from_numpy(w.astype(np.float32))
    state["classifier.bias"] = torch.from_numpy(b.astype(np.float32))
    torch.save({"state_dict": state, "class_names": list(data.class_names)}, work / "teacher.pth")
    (work / "classes.txt").write_text("".join(n + "\n" for n in data.class_names), encoding="utf-8")
    click.echo(f"teacher: {work / 'teacher.pth'}")


@main.command()
@click.option("--teacher", "spec", required=True)
@click.option("--reference", "reference_dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--img-size", type=int, default=None)
@click.option("--crop-pct", type=float, default=None)
@click.option("--batch-size", default=128, show_default=True)
@click.option("--batches", default=16, show_default=True, help="Batches per measurement.")
@click.option("--rounds", default=3, show_default=True, help="Alternations of forward-only and end-to-end.")
@click.option("--workers", default=2, show_default=True)
@click.option("--threads", type=int, default=None)
def throughput(spec, reference_dir, img_size, crop_pct, batch_size, batches, rounds, workers, threads) -> None:
    """Raw forward vs end-to-end scoring throughput on the same batches.

    Forward alone runs the model on batches already in memory; end-to-end is
    `pladacodec.teacher.score` (DataLoader workers decoding the PNGs) on the
    same images, alternated round by round so that load from other
    processes hits both alike.
    """
    import torch

    from pladacodec.reference import Reference
    from pladacodec.teacher import ImageListDataset, forward_throughput, load_teacher, score

    if threads:
        torch.set_num_threads(threads)
    t = load_teacher(spec, transform_overrides={"img_size": img_size, "crop_pct": crop_pct})
    ref = Reference.from_dir(reference_dir)
    dataset = ImageListDataset(ref, t.transform)
    n = min(batches * batch_size, len(dataset))
    subset = torch.utils.data.Subset(dataset, range(n))
    preloaded = [torch.stack([dataset[i] for i in range(lo, min(lo + batch_size, n))])
                 for lo in range(0, n, batch_size)]
    rows = []
    for r in range(rounds):
        raw = forward_throughput(t.model, preloaded)
        res = score(t.model, subset, batch_size=batch_size, shard_size=n, num_workers=workers, progress=False)
        rows.append((r, raw, res.stats.steady_images_per_second, res.stats.images_per_second,
                     res.stats.startup_seconds))
    click.echo(f"{n:,} images in batches of {batch_size}, input {t.data_config['input_size']}, "
               f"{torch.get_num_threads()} threads, {workers} loader workers")
    click.echo(f"{'round':>6}  {'forward alone':>13}  {'end-to-end':>10}  {'ratio':>5}  "
               f"{'with start-up':>13}  {'start-up s':>10}")
    med = ["median"] + [float(np.median([row[i] for row in rows])) for i in range(1, 5)]
    for r, raw, e2e, e2e_all, startup in rows + [tuple(med)]:
        click.echo(f"{r:>6}  {raw:>13,.1f}  {e2e:>10,.1f}  {e2e / raw:>5.2f}  {e2e_all:>13,.1f}  {startup:>10.2f}")
    click.echo("rates in images/s; end-to-end counts from the first batch on (loader start-up excluded),"
               " 'with start-up' from the call")


if __name__ == "__main__":
    main()
