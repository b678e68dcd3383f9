"""``pladacodec export``: a task's images as an ImageFolder tree with labels.csv (no torch)."""

from __future__ import annotations

import warnings

import click

from ._common import PladaCommand


@click.command(cls=PladaCommand)
@click.argument("task", type=click.Path(exists=True, dir_okay=False))
@click.option("--reference", "reference_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The reference the task was made for: a folder of images or of .tar archives.")
@click.option("--reference-manifest", "manifest_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Read the reference's order from this manifest (paths relative to --reference) instead of "
              "listing the folder: fast for millions of images.")
@click.option("--to", "to", required=True, type=click.Path(file_okay=False),
              help="Folder to create (it must not exist, or be empty).")
@click.option("--copy", is_flag=True, help="Copy the image files instead of linking to them (tar members are "
              "always extracted).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where the member index of tar archives is cached.")
def export(task: str, reference_dir: str, manifest_path: str | None, to: str, copy: bool,
           cache_dir: str | None) -> None:
    """Write the images of TASK (.plada) as TO/CLASS/IMAGE with TO/labels.csv.

    One folder per class, named after the class; images are symbolic links to the
    reference's files (--copy: copies), or extracted from tar archives.  labels.csv has
    one row per image: path (relative to TO), label (the task's number), class (its name).
    Any framework can train on the result.
    """
    from pladacodec.client import export as export_task
    from pladacodec.reference import PladaReferenceWarning, Reference

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PladaReferenceWarning)
        if manifest_path is not None:
            reference = Reference.from_manifest(manifest_path, root=reference_dir, cache_dir=cache_dir)
        else:
            reference = Reference.from_dir(reference_dir, cache_dir=cache_dir)
        result = export_task(task, reference, to, copy=copy)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    how = {"symlink": "symbolic links", "copy": "copies", "extract": "extracted from tar archives"}[result.mode]
    click.echo(f"exported {result.n_images:,} images in {len(result.class_dirs):,} class folders to {result.root} "
               f"({how})")
    click.echo(f"labels      {result.labels_csv}")
