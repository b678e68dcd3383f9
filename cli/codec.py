"""``pladacodec pack | unpack | inspect | verify``: the codec on the command line.

These commands need numpy and the codec core only (never torch).  Selections
travel as ``.npz`` (arrays ``indices`` and ``labels``) or ``.csv`` (``index,label``
rows, an optional header line); every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

import pladacodec
from pladacodec._api import atomic_write_bytes

from ._common import (
    EXIT_FINGERPRINT,
    EXIT_REFERENCE_SIZE,
    PladaCommand,
    UserError,
    format_version_option,
    methods_for,
)

__all__ = ["pack", "unpack", "inspect_cmd", "verify", "Selection", "read_selection", "write_selection"]

_SELECTION_SUFFIXES = (".npz", ".csv")
_CSV_HEADER = ("index", "label")
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*\Z")
_NUMBER_START = re.compile(r"\s*[+-]?\.?[0-9]")


# --- selection files ----------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """A selection read from ``.npz`` or ``.csv``; the counts are None when the file lacks them."""

    indices: object  # array or list of ints, validated by pladacodec.encode
    labels: object
    n_reference: int | None = None
    n_classes: int | None = None
    class_names: tuple[str, ...] | None = None


def _suffix(path: Path, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in _SELECTION_SUFFIXES:
        raise UserError(f"{what} {str(path)!r} must end in .npz or .csv")
    return suffix


def read_selection(path: str | os.PathLike) -> Selection:
    """Read a selection from ``.npz`` or ``.csv`` (chosen by the file's suffix)."""
    path = Path(path)
    if _suffix(path, "selection") == ".npz":
        return _read_npz(path)
    return _read_csv(path)


def _read_npz(path: Path) -> Selection:
    try:
        archive = np.load(path, allow_pickle=False)
    except OSError:
        raise
    except Exception as exc:  # numpy raises ValueError, zipfile.BadZipFile, EOFError...
        raise UserError(f"{str(path)!r} is not a readable .npz file ({exc})") from None
    if not hasattr(archive, "files"):
        raise UserError(f"{str(path)!r} holds a single .npy array, not an .npz archive with 'indices' and 'labels'")
    with archive:
        missing = [name for name in ("indices", "labels") if name not in archive.files]
        if missing:
            raise UserError(
                f"{str(path)!r} has no array {missing[0]!r} (it holds: {', '.join(archive.files) or 'nothing'})"
            )
        try:
            arrays = {name: archive[name] for name in archive.files}
        except Exception as exc:  # pickled (object) arrays, damaged members
            raise UserError(f"{str(path)!r}: cannot read its arrays ({exc})") from None

    def scalar(name: str) -> int | None:
        if name not in arrays:
            return None
        value = arrays[name]
        if value.shape != () or value.dtype.kind not in "iu":
            raise UserError(f"{str(path)!r}: {name!r} must be an integer scalar, found {value.dtype} of shape {value.shape}")
        return int(value)

    class_names = None
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1 or names.dtype.kind != "U":
            raise UserError(f"{str(path)!r}: 'class_names' must be a 1-D array of strings")
        class_names = tuple(str(name) for name in names)
    return Selection(arrays["indices"], arrays["labels"], scalar("n_reference"), scalar("n_classes"), class_names)


def _read_csv(path: Path) -> Selection:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        try:
            text = fh.read()
        except UnicodeDecodeError as exc:
            raise UserError(f"{str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start:,})") from None
    indices: list[int] = []
    labels: list[int] = []
    for line_no, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) == 2 and _INTEGER.match(row[0]) and _INTEGER.match(row[1]):
            indices.append(int(row[0]))
            labels.append(int(row[1]))
        elif line_no == 1 and not any(_NUMBER_START.match(field) for field in row):
            continue  # a header line (no field looks like a number)
        else:
            found = ",".join(row)
            raise UserError(
                f"{str(path)!r}, line {line_no:,}: expected 'index,label' (two integers), found {found[:80]!r}"
            )
    return Selection(indices, labels)


def write_selection(path: str | os.PathLike, payload: pladacodec.Payload) -> None:
    """Write a decoded task as ``.npz`` or ``.csv`` (by suffix), atomically."""
    path = Path(path)
    if _suffix(path, "output") == ".npz":
        arrays = {
            "indices": payload.indices.astype(np.uint64),
            "labels": payload.labels.astype(np.int64),
            "n_reference": np.int64(payload.n_reference),
            "n_classes": np.int64(payload.n_classes),
        }
        if payload.class_names is not None:
            arrays["class_names"] = np.array(payload.class_names, dtype=str)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        data = buffer.getvalue()
    else:
        lines = [",".join(_CSV_HEADER)]
        lines += [f"{i},{c}" for i, c in zip(payload.indices.tolist(), payload.labels.tolist())]
        data = ("\n".join(lines) + "\n").encode("utf-8")
    atomic_write_bytes(path, data)


def _read_class_names(path: str) -> tuple[str, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path!r} is not UTF-8 text ({exc.reason} at byte {exc.start:,})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    return tuple(line[:-1] if line.endswith("\r") else line for line in lines)


def _bits_per_selected(file_bytes: int, k: int) -> str:
    return f"{8 * file_bytes / k:.2f} bits per selected image" if k else "no selected image"


# --- pack ---------------------------------------------------------------------------------


@click.command(cls=PladaCommand)
@click.argument("selection", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="The .plada file to write.")
@click.option(
    "--n-reference", type=click.IntRange(min=1), default=None,
    help="N, the size of the reference set (default: from the .npz or the manifest).",
)
@click.option("--n-classes", type=click.IntRange(min=1), default=None, help="C (default: the class names' count, else max label + 1).")
@click.option("--classes", "classes_file", type=click.Path(), help="Text file of class names, one per line.")
@click.option("--fingerprint", help="Reference fingerprint, 64 hex digits.")
@click.option(
    "--reference-manifest", type=click.Path(),
    help="Reference manifest file: its fingerprint goes into the task (and its size is N).",
)
@click.option("--metadata", help='A JSON object stored in the header, e.g. \'{"teacher": "vit-b"}\'.')
@click.option(
    "--folders", is_flag=True,
    help="Also code against the manifest's folder layout (needs --reference-manifest): 0.7-3 %% smaller on "
    "clustered selections; the file then unpacks only with the same manifest.",
)
@format_version_option
def pack(
    selection, output, n_reference, n_classes, classes_file, fingerprint, reference_manifest, metadata, folders,
    format_version,
):
    """Encode SELECTION (.npz with 'indices' and 'labels', or .csv of 'index,label' rows) as a .plada file.

    Indices may come in any order; they are stored sorted, each with its label.
    """
    if fingerprint is not None and reference_manifest is not None:
        raise UserError("give --fingerprint or --reference-manifest, not both")
    if folders and reference_manifest is None:
        raise UserError("--folders needs --reference-manifest (the folder layout comes from the manifest)")
    sel = read_selection(selection)
    layout = None
    if reference_manifest is not None:
        from pladacodec.reference import Reference

        reference = Reference.from_manifest(reference_manifest)
        layout = reference.folder_layout() if folders else None
        fingerprint = reference.fingerprint
        if n_reference is not None and n_reference != reference.n:
            raise UserError(
                f"manifest {reference_manifest!r} lists {reference.n:,} images but --n-reference is {n_reference:,}"
            )
        n_reference = reference.n
    n_reference = n_reference if n_reference is not None else sel.n_reference
    if fingerprint is None:  # issue 19, item 5
        click.echo("warning: the task will carry no reference fingerprint, so clients can check their reference "
                   "only by its size; give --reference-manifest (or --fingerprint)", err=True)
    if n_reference is None:
        raise UserError("--n-reference is required (the selection file does not record N)")
    class_names = _read_class_names(classes_file) if classes_file is not None else sel.class_names
    if n_classes is None and class_names is None:
        n_classes = sel.n_classes
    if metadata is not None:
        try:
            metadata = json.loads(metadata)
        except ValueError as exc:
            raise UserError(f"--metadata is not valid JSON: {exc}") from None
    size = pladacodec.write(
        output, sel.indices, sel.labels, n_reference,
        n_classes=n_classes, class_names=class_names, reference_fingerprint=fingerprint, metadata=metadata,
        folders=layout, **methods_for(format_version, layout is not None),
    )
    header = pladacodec.read_header(Path(output).read_bytes())
    note = ""
    if layout is not None:
        note = (
            f"; coded against the manifest's {layout.n_folders:,} folders (unpack with --reference-manifest)"
            if header.folders is not None
            else "; the folder layout did not make it smaller, so the file does not need it"
        )
    click.echo(
        f"wrote {output}: k = {header.n_selected:,} of N = {header.n_reference:,}, C = {header.n_classes:,}; "
        f"{size:,} bytes, {_bits_per_selected(size, header.n_selected)}{note}"
    )


_MANIFEST_FOR_FOLDERS = click.option(
    "--reference-manifest", type=click.Path(),
    help="The reference manifest a task packed with --folders was coded against (its folder layout).",
)


def _decoded(decode, task, reference_manifest):
    """``decode(task, folders=...)`` with the manifest's reference (its layout is computed only
    for a task that names one); a task that needs a layout it was not given gets the CLI's wording."""
    reference = None
    if reference_manifest is not None:
        from pladacodec.reference import Reference

        reference = Reference.from_manifest(reference_manifest)
    try:
        return decode(task, folders=reference)
    except pladacodec.PladaReferenceError as exc:
        if reference_manifest is None:
            raise UserError(f"{exc}; on the command line: --reference-manifest MANIFEST") from None
        raise


# --- unpack -------------------------------------------------------------------------------


@click.command(cls=PladaCommand)
@click.argument("task", type=click.Path())
@click.option(
    "-o", "--output", required=True, type=click.Path(),
    help="OUT.npz (indices, labels, n_reference, n_classes, class_names) or OUT.csv (index,label).",
)
@_MANIFEST_FOR_FOLDERS
def unpack(task, output, reference_manifest):
    """Decode TASK (.plada) into a selection file, .npz or .csv by the output's suffix."""
    _suffix(Path(output), "output")
    payload = _decoded(pladacodec.read, task, reference_manifest)
    write_selection(output, payload)
    click.echo(f"wrote {output}: k = {payload.k:,} of N = {payload.n_reference:,}, C = {payload.n_classes:,}")


# --- inspect ------------------------------------------------------------------------------


def _format_info(path: str, info: pladacodec.TaskInfo, top: int) -> str:
    d = info.as_dict()
    p = info.payload
    k, n = d["k"], d["n_reference"]
    lines = [
        f"{path}: .plada version {d['version']}, {d['file_bytes']:,} bytes",
        f"  reference size N   {n:,}",
        f"  selected k         {k:,} ({100 * k / n:.4g} % of N)",
        f"  classes C          {d['n_classes']:,}" + (" (named)" if p.class_names is not None else ""),
        f"  bits per selected  {d['bits_per_selected']:.2f}" if k else "  bits per selected  -",
        f"  blocks             {d['blocks']:,}",
        f"  fingerprint        {d['reference_fingerprint'] or 'none'}",
    ]
    if d["folder_layout"] is not None:
        layout = d["folder_layout"]
        lines.append(f"  folder layout      {layout['folders']:,} folders, digest {layout['digest']}")
    if d["metadata"] is not None:
        lines.append(f"  metadata           {json.dumps(d['metadata'], sort_keys=True, ensure_ascii=False)}")
    lines.append("  bytes by section")
    sections = d["section_bytes"]
    width = max(len(f"{v:,}") for v in sections.values())
    for name, size in sections.items():
        lines.append(f"    {name.replace('_', ' '):<16}{size:>{width},}")
    lines.append("  coding methods (blocks)")
    for kind, methods in d["methods"].items():
        used = ", ".join(f"{name} ({count:,})" for name, count in methods.items()) or "-"
        lines.append(f"    {kind:<16}{used}")
    histogram = np.asarray(d["class_histogram"])
    order = np.lexsort((np.arange(len(histogram)), -histogram))[: max(top, 0)]
    order = [c for c in order.tolist() if histogram[c]]
    if not k:
        lines.append("  class histogram    -")
    elif order:
        lines.append(f"  class histogram (top {len(order):,} of {int(np.count_nonzero(histogram)):,} classes present)")
        id_width = max(len(str(c)) for c in order)
        names = [p.class_names[c] if p.class_names is not None else "" for c in order]
        name_width = max(len(name) for name in names)
        count_width = max(len(f"{int(histogram[c]):,}") for c in order)
        for c, name in zip(order, names):
            count = int(histogram[c])
            label = f"{c:>{id_width}}  {name:<{name_width}}" if name_width else f"{c:>{id_width}}"
            lines.append(f"    {label}  {count:>{count_width},}  {100 * count / k:5.1f} %")
    return "\n".join(lines)


@click.command("inspect", cls=PladaCommand)
@click.argument("task", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON (with the full class histogram).")
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=0), help="Classes listed in text mode.")
@_MANIFEST_FOR_FOLDERS
def inspect_cmd(task, as_json, top, reference_manifest):
    """Describe TASK (.plada): sizes, coding methods, class histogram, fingerprint, metadata.

    The whole file is decoded and verified first.
    """
    info = _decoded(pladacodec.inspect, task, reference_manifest)
    if as_json:
        click.echo(json.dumps({"file": task, **info.as_dict()}, indent=2, ensure_ascii=False))
    else:
        click.echo(_format_info(task, info, top))


# --- verify -------------------------------------------------------------------------------


@click.command(cls=PladaCommand)
@click.argument("task", type=click.Path())
@click.option(
    "--reference", type=click.Path(),
    help="Reference folder (listed in canonical order) or manifest file to check N and the fingerprint against.",
)
def verify(task, reference):
    """Check that TASK (.plada) is intact and, with --reference, made for that reference set.

    Decodes the whole file (every checksum and count).  With --reference DIR,
    also compares the folder's image count with the task's N and the folder's
    fingerprint with the one stored in the task.

    \b
    Exit status:
      0  all checks passed
      1  usage error, or a file or folder cannot be read
      2  TASK is damaged or not a .plada file
      3  the reference set's size differs from the task's N
      4  the reference fingerprint differs, or TASK stores no fingerprint
    """
    ref = None
    if reference is not None:
        from pladacodec.reference import Reference

        ref = Reference.from_manifest(reference) if os.path.isfile(reference) else Reference.from_dir(reference)
    header = None
    if ref is not None:
        try:
            header = pladacodec.read_header(Path(task).read_bytes())
        except pladacodec.PladaError:
            pass  # read() below reports what is wrong with the whole file
    if header is not None and header.folders is not None and ref.n == header.n_reference:
        try:  # a task packed with --folders: the reference's layout must be the one it names
            payload = pladacodec.read(task, folders=ref)
        except pladacodec.PladaReferenceError as exc:
            raise UserError(f"reference {reference!r}: {exc}", EXIT_FINGERPRINT) from None
    else:
        payload = pladacodec.read(task)
    click.echo(f"ok: {task} decodes fully (k = {payload.k:,} of N = {payload.n_reference:,}, C = {payload.n_classes:,})")
    if ref is None:
        return
    if ref.n != payload.n_reference:
        raise UserError(
            f"reference {reference!r} has {ref.n:,} images but {task} expects N = {payload.n_reference:,}",
            EXIT_REFERENCE_SIZE,
        )
    if payload.reference_fingerprint is None:
        raise UserError(
            f"{task} stores no reference fingerprint, so {reference!r} can be checked only by its size "
            f"(which matches: N = {ref.n:,})",
            EXIT_FINGERPRINT,
        )
    if payload.reference_fingerprint != ref.fingerprint:
        raise UserError(
            f"reference {reference!r} has fingerprint {ref.fingerprint.hex()} but {task} expects "
            f"{payload.reference_fingerprint.hex()}",
            EXIT_FINGERPRINT,
        )
    click.echo(f"ok: reference {reference} matches (N = {ref.n:,}, fingerprint {ref.fingerprint.hex()[:16]}...)")

