"""Server-side commands: ``manifest``, ``score`` and ``select``.

``manifest`` and ``select`` need numpy only; ``score`` imports the torch
adapter (:mod:`pladacodec.teacher`) when it runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import numpy as np

from pladacodec.reference import Reference
from pladacodec.selection import (
    STRATEGIES,
    load_scores,
    parse_keep,
    parse_size,
    select as select_images,
    select_budget,
)

from ._common import PladaCommand, format_version_option, methods_for


def _read_class_names(path: str | None) -> tuple[str, ...] | None:
    if path is None:
        return None
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    names = tuple(line.strip() for line in lines if line.strip())
    if not names:
        raise click.BadParameter(f"{path!r} lists no class names", param_hint="--class-names")
    return names


def _load_reference(directory: str, manifest_path: str | None) -> Reference:
    if manifest_path is not None:
        return Reference.from_manifest(manifest_path, root=directory)
    return Reference.from_dir(directory)


def _floats(text: str | None, count: int, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected {count} comma-separated numbers, found {text!r}", param_hint=option) from None
    if len(values) == 1:
        values = values * count
    if len(values) != count:
        raise click.BadParameter(f"expected {count} comma-separated numbers, found {text!r}", param_hint=option)
    return values


# --------------------------------------------------------------------------
# manifest
# --------------------------------------------------------------------------


@click.command(cls=PladaCommand)
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o", "--out", "out", type=click.Path(dir_okay=False), default=None,
    help="Manifest file to write [default: DIRECTORY's name + .manifest, beside it]. "
    "The fingerprint goes to the same name + .sha256.",
)
@click.option("--kind", type=click.Choice(["auto", "folder", "tar"]), default="auto", show_default=True,
              help="Image files, or members of the .tar archives (auto: archives when there is no loose image).")
@click.option("--skip-unreadable", is_flag=True,
              help="Leave out entries that cannot be examined (broken links, paths too long, no permission) "
              "and list them, instead of failing: the manifest then depends on this machine.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where the member index of tar archives is cached [default: $PLADACODEC_CACHE or "
              "~/.cache/pladacodec].")
def manifest(directory: str, out: str | None, kind: str, skip_unreadable: bool, cache_dir: str | None) -> None:
    """List the images of a reference DIRECTORY in canonical order, and fingerprint them.

    Canonical order: recursive, hidden entries skipped, symlinks followed
    (cycles skipped), non-image files ignored, sorted by path components
    (torchvision ImageFolder order for class folders).  A folder of .tar archives
    (per-class tars, WebDataset shards) lists their image members as ARCHIVE/MEMBER,
    without extracting anything.  A folder without images is an error.
    """
    import warnings

    from pladacodec.reference import PladaReferenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PladaReferenceWarning)
        ref = Reference.from_dir(directory, kind=kind, skip_unreadable=skip_unreadable, cache_dir=cache_dir)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    root = Path(directory).resolve()
    out_path = Path(out) if out is not None else root.parent / f"{root.name}.manifest"
    ref.write_manifest(out_path)
    fp_path = out_path.with_name(out_path.name + ".sha256")
    fp_path.write_text(f"{ref.fingerprint.hex()}  {ref.n}\n", encoding="utf-8")
    layout = ref.folder_layout()
    where = f" in {len(ref.shards.archives):,} tar archives" if ref.kind == "tar" else ""
    click.echo(f"{ref.n:,} images in {layout.n_folders:,} folders{where}")
    click.echo(f"fingerprint {ref.fingerprint.hex()}")
    click.echo(f"folders     {layout.n_folders:,}, layout digest {layout.digest.hex()}")  # what --folders names
    click.echo(f"manifest    {out_path}")
    click.echo(f"fingerprint {fp_path}")


# --------------------------------------------------------------------------
# score
# --------------------------------------------------------------------------


@click.command(cls=PladaCommand)
@click.option("--teacher", "teacher_spec", required=True,
              help="timm:NAME[:CHECKPOINT], a TorchScript file, or MODULE:FACTORY / FILE.py:FACTORY.")
@click.option("--reference", "reference_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of reference images, or of .tar archives holding them.")
@click.option("--manifest", "manifest_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Use this manifest's order (paths relative to --reference) instead of the canonical order.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Scores directory (created; a rerun resumes it).")
@click.option("--num-classes", type=int, default=None, help="Number of teacher outputs (timm / factory models).")
@click.option("--class-names", type=click.Path(exists=True, dir_okay=False), default=None,
              help="File with one class name per line (overrides names from the teacher).")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="T in E = -T logsumexp(f/T).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--workers", default="auto", show_default=True,
              help="DataLoader worker processes; auto = a quarter of the CPU cores on cpu (0 on a 2-core "
              "machine, where workers would steal cores from the forward pass), all of them (up to 8) on cuda.")
@click.option("--threads", type=int, default=None, help="torch intra-op threads of the scoring process.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK).")
@click.option("--shard-size", type=int, default=4096, show_default=True, help="Images per shard (unit of resume).")
@click.option("--img-size", type=int, default=None, help="Override the input resolution (square).")
@click.option("--mean", default=None, help="Override normalisation mean, e.g. 0.5,0.5,0.5.")
@click.option("--std", default=None, help="Override normalisation std.")
@click.option("--interpolation", default=None, help="Override resize interpolation (bilinear, bicubic...).")
@click.option("--crop-pct", type=float, default=None, help="Override centre-crop fraction (1.0 = no crop).")
@click.option("--overwrite", is_flag=True, help="Discard finished shards of an earlier run in --out.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def score(
    teacher_spec: str, reference_dir: str, manifest_path: str | None, out_dir: str, num_classes: int | None,
    class_names: str | None, temperature: float, batch_size: int, workers: str, threads: int | None,
    device: str, shard_size: int, img_size: int | None, mean: str | None, std: str | None,
    interpolation: str | None, crop_pct: float | None, overwrite: bool, progress: bool,
) -> None:
    """Score every reference image with a teacher: energy, argmax label, entropy.

    Works unchanged under `torchrun --nproc-per-node K`: shards are split
    among the ranks and the result equals a one-process run.
    """
    from pladacodec import teacher as teacher_mod

    if workers == "auto":
        cores = os.cpu_count() or 1
        n_workers = min(8, cores) if device.startswith("cuda") else min(8, cores // 4)
    else:
        try:
            n_workers = int(workers)
        except ValueError:
            raise click.BadParameter(f"expected a number or auto, found {workers!r}", param_hint="--workers") from None

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    rank, world = teacher_mod.init_distributed(device)
    ref = _load_reference(reference_dir, manifest_path)
    overrides = {
        "img_size": img_size,
        "mean": _floats(mean, 3, "--mean"),
        "std": _floats(std, 3, "--std"),
        "interpolation": interpolation,
        "crop_pct": crop_pct,
    }
    t = teacher_mod.load_teacher(
        teacher_spec, num_classes=num_classes, class_names=_read_class_names(class_names),
        transform_overrides=overrides,
    )
    if ref.kind == "tar":  # members read in place
        from pladacodec.client import ReferenceImages

        dataset = ReferenceImages(ref, t.transform)
    else:
        dataset = teacher_mod.ImageListDataset(ref, t.transform)
    if rank == 0:
        click.echo(f"reference {ref.n:,} images, fingerprint {ref.fingerprint.hex()}", err=True)
        click.echo(f"teacher {teacher_spec}, input {t.data_config.get('input_size')}, "
                   f"{world} process(es), {n_workers} loader worker(s) each", err=True)
    result = teacher_mod.score(
        t.model, dataset, out_dir=out_dir, batch_size=batch_size, num_workers=n_workers,
        temperature=temperature, device=device, shard_size=shard_size,
        reference_fingerprint=ref.fingerprint, class_names=t.class_names, teacher_spec=teacher_spec,
        extra_meta={"data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in t.data_config.items()}},
        overwrite=overwrite, progress=progress,
    )
    st = result.stats
    if rank == 0:
        if st.skipped_shards:
            click.echo(f"resumed: {st.skipped_shards} finished shard(s) skipped on rank 0", err=True)
        if st.images:
            click.echo(
                f"scored {st.images:,} images on rank 0 in {st.seconds:.1f} s: "
                f"{st.images_per_second:,.1f} img/s end-to-end "
                f"({st.steady_images_per_second:,.1f} after {st.startup_seconds:.1f} s of loader start-up), "
                f"{st.forward_images_per_second:,.1f} img/s in the forward pass"
                + (f" (x{world} processes)" if world > 1 else "")
            )
        counts = ", ".join(str(int(c)) for c in np.bincount(result.label, minlength=result.n_classes))
        click.echo(f"scores of {len(result.energy):,} images in {out_dir} (argmax counts per class: {counts})")
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()


# --------------------------------------------------------------------------
# select
# --------------------------------------------------------------------------


@click.command(cls=PladaCommand)
@click.argument("scores_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--keep", default=None, help="Fraction of the reference set, e.g. 1% or 0.01 "
              "(with --strategy auto, a list to choose from: 1%,5%,10%).")
@click.option("--count", type=int, default=None, help="Number of images.")
@click.option("--budget", default=None, help="Largest selection whose .plada fits, e.g. 100KB (10^3) or 64KiB.")
@click.option("--strategy", type=click.Choice((*STRATEGIES, "auto")), default="lowest-energy", show_default=True,
              help="auto: try the paper's strategies (and --keep lists such as 1%,5%,10%) and keep the one "
              "a proxy student fitted on the scores' features likes best on --validation.")
@click.option("--validation", "validation_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="With --strategy auto: an .npz holding `features` (the scores' feature space) and `labels` "
              "of labelled target images (never the test set).")
@click.option("--safety-net", type=float, default=0.0, show_default=True,
              help="Fraction of the selection reserved for per-class quotas K_c ~ N_c^alpha.")
@click.option("--alpha", type=float, default=0.5, show_default=True, help="Safety-Net exponent.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random strategy.")
@click.option("--reference", "reference_dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Check that this folder is the reference set the scores were computed on.")
@click.option("--manifest", "manifest_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="With --reference: the manifest order that was scored.")
@click.option("--class-names", type=click.Path(exists=True, dir_okay=False), default=None,
              help="File with one class name per line (overrides the names stored with the scores).")
@click.option("--folders", is_flag=True,
              help="With --reference: also code against the reference's folder layout (0.7-3 %% smaller on "
              "clustered selections; clients then need the same reference to read the task).")
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False),
              help="The .plada file to write; a name ending in .npz or .csv writes the selection "
              "for `pladacodec pack` instead.")
@format_version_option
def select(
    scores_dir: str, keep: str | None, count: int | None, budget: str | None, strategy: str,
    validation_path: str | None,
    safety_net: float, alpha: float, seed: int, reference_dir: str | None, manifest_path: str | None,
    class_names: str | None, folders: bool, out: str, format_version: str | None,
) -> None:
    """Choose the images to send from SCORES_DIR and write the task as a .plada file.

    Images are ranked by the strategy, ties by index; NaN scores are never
    selected.  With --safety-net S, round(S*K) of the K slots go to per-class
    quotas: one for each class the teacher predicts (slots permitting), the rest in proportion
    to N_c^alpha (largest remainder, capped at N_c); the other slots go to the
    best-ranked images overall.  With --strategy auto, the scores must hold
    features (`pladacodec.teacher.score(..., feature_module=...)`) and
    --validation the same features of labelled target images; the choice and
    every candidate's proxy accuracy go into the file's metadata.  Full rules:
    `pydoc pladacodec.selection`.
    """
    import pladacodec

    if sum(x is not None for x in (keep, count, budget)) != 1:
        raise click.UsageError("give exactly one of --keep, --count and --budget")
    if folders and reference_dir is None:
        raise click.UsageError("--folders needs --reference (the folder layout comes from the reference set)")
    scores = load_scores(scores_dir)
    fingerprint = scores.reference_fingerprint
    layout = None
    if reference_dir is not None:
        ref = _load_reference(reference_dir, manifest_path)
        ref.check(scores.n, fingerprint)
        fingerprint = ref.fingerprint
        layout = ref.folder_layout() if folders else None
    names = _read_class_names(class_names) or scores.class_names
    if names is not None and len(names) != scores.n_classes:
        raise click.BadParameter(
            f"{len(names)} class names for a teacher with {scores.n_classes} classes", param_hint="--class-names"
        )
    kwargs = dict(strategy=strategy, entropy=scores.entropy, safety_net=safety_net, alpha=alpha,
                  n_classes=scores.n_classes, seed=seed)
    if strategy == "auto":
        if validation_path is None:
            raise click.UsageError("--strategy auto needs --validation (features and labels of labelled target images)")
        if scores.features is None:
            raise click.UsageError(f"{scores_dir} holds no features; score with feature_module= for --strategy auto")
        with np.load(validation_path) as z:
            if "features" not in z or "labels" not in z:
                raise click.BadParameter("expected arrays `features` and `labels`", param_hint="--validation")
            validation = (z["features"], z["labels"])
        kwargs.update(features=scores.features, validation=validation)
    elif validation_path is not None:
        raise click.UsageError("--validation is for --strategy auto")

    def metadata(sel) -> dict:
        meta = sel.metadata()
        meta["teacher"] = scores.meta.get("teacher")
        meta["temperature"] = scores.meta.get("temperature")
        return meta

    methods = methods_for(format_version, layout is not None)

    def packed_size(sel) -> int:
        return len(pladacodec.encode(
            sel.indices, sel.labels, scores.n, n_classes=scores.n_classes, class_names=names,
            reference_fingerprint=fingerprint, metadata=metadata(sel), folders=layout, **methods,
        ))

    if budget is not None:
        sel = select_budget(scores.energy, scores.label, parse_size(budget), size_of=packed_size, **kwargs)
    else:
        keeps = None
        if keep is not None:
            keeps = [parse_keep(k) for k in keep.split(",")] if strategy == "auto" else parse_keep(keep)
        sel = select_images(scores.energy, scores.label, count=count, keep=keeps, **kwargs)
    task = dict(n_classes=scores.n_classes, class_names=names, reference_fingerprint=fingerprint,
                metadata=metadata(sel), folders=layout, **methods)
    if Path(out).suffix.lower() in (".npz", ".csv"):
        from .codec import write_selection

        data = pladacodec.encode(sel.indices, sel.labels, scores.n, **task)
        write_selection(out, pladacodec.decode(data, folders=layout))  # for `pladacodec pack`
        size = len(data)
    else:
        size = pladacodec.write(out, sel.indices, sel.labels, scores.n, **task)
    per_class = np.bincount(sel.labels, minlength=scores.n_classes)
    if sel.auto is not None:
        click.echo("auto: proxy accuracy on the validation set: " + ", ".join(
            f"{name} {100 * acc:.1f} %" for name, acc in sel.auto["candidates"].items()))
        click.echo(f"auto: chose {sel.auto['chosen']}")
    click.echo(f"selected {sel.count:,} of {scores.n:,} images ({100.0 * sel.count / scores.n:.3g} %), "
               f"strategy {sel.strategy}" + (f", safety net {sel.safety_net:g} (alpha {sel.alpha:g})" if sel.safety_net else ""))
    click.echo(f"per class: {', '.join(str(int(c)) for c in per_class)}")
    if sel.quotas is not None:
        click.echo(f"quotas:    {', '.join(str(int(q)) for q in sel.quotas)}")
    click.echo(f"wrote {out} (the task packs to {size:,} bytes), "
               f"reference fingerprint {fingerprint.hex() if fingerprint else 'none'}")
