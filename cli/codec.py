"""``pladacodec pack | unpack | inspect | verify``: the codec on the command line.

These commands need numpy and the codec core only (never torch).  Selections
travel as ``.npz`` (arrays ``indices`` and ``labels``) or ``.csv`` (``index,label``
rows, an optional header line).  Every output is written atomically (a device or FIFO in
place) and streamed: ``unpack``, ``verify`` and ``inspect`` decode one block at a time, so
their memory does not grow with the task (``pladacodec._io``, ``pladacodec._stream``).
An ``.npz`` selection also carries the task's fingerprint, metadata and exact class names,
so ``unpack`` then ``pack`` gives the same task back; a ``.csv`` holds the rows only.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

import pladacodec
from pladacodec import _io
from pladacodec._container import Header
from pladacodec._io import AtomicOutput, atomic_write_bytes
from pladacodec._spec import MAX_CLASS_NAME_BYTES
from pladacodec._stream import StreamReader, summarize

from ._common import (
    EXIT_DAMAGED,
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
_MAX_DIGITS = 20  # 2^64 has 20 digits: longer numbers are refused before int() sees them
_MAX_CSV_LINE = 4096  # bytes: a selection row is two integers
_ROW = re.compile(rb"[ \t]*([+-]?[0-9]{1,20})[ \t]*,[ \t]*([+-]?[0-9]{1,20})[ \t]*\r?\Z")
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
    reference_fingerprint: bytes | None = None
    metadata: dict | None = None


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

    def text(name: str) -> str | None:
        if name not in arrays:
            return None
        value = arrays[name]
        if value.shape != () or value.dtype.kind != "U":
            raise UserError(f"{str(path)!r}: {name!r} must be a string scalar, found {value.dtype} of shape {value.shape}")
        return str(value)

    def json_text(name: str, kind: type):
        raw = text(name)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise UserError(f"{str(path)!r}: {name!r} is not valid JSON ({type(exc).__name__})") from None
        if not isinstance(value, kind):
            raise UserError(f"{str(path)!r}: {name!r} must hold a JSON {kind.__name__}")
        return value

    class_names = json_text("class_names_json", list)  # exact names (a string array drops trailing NULs)
    if class_names is not None:
        class_names = tuple(class_names)
    elif "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1 or names.dtype.kind != "U":
            raise UserError(f"{str(path)!r}: 'class_names' must be a 1-D array of strings")
        class_names = tuple(str(name) for name in names)
    fingerprint = text("reference_fingerprint")
    if fingerprint is not None:
        try:
            fingerprint = bytes.fromhex(fingerprint)
        except ValueError:
            raise UserError(f"{str(path)!r}: 'reference_fingerprint' is not hex") from None
    return Selection(
        arrays["indices"], arrays["labels"], scalar("n_reference"), scalar("n_classes"), class_names,
        fingerprint, json_text("metadata", dict),
    )


def _lines(path, max_bytes: int):
    """``(line number, text)`` of a UTF-8 text file (a BOM dropped, ``\r\n`` too), read in
    chunks; a line longer than ``max_bytes`` is refused, so ``/dev/zero`` ends at once."""
    for number, raw in _raw_lines(path, max_bytes):
        yield number, _decode_line(path, number, raw, max_bytes)


def _raw_lines(path, max_bytes: int):
    """``(line number, bytes)`` of a file, read in chunks, each line at most ``max_bytes``."""
    with open(path, "rb") as fh:
        pending, number = b"", 0
        while True:
            chunk = _io.read_up_to(fh, _io.READ_CHUNK)
            if chunk:
                *lines, pending = (pending + chunk).split(b"\n")
            else:
                lines, pending = ([pending] if pending else []), b""
            for raw in lines:
                number += 1
                if len(raw) > max_bytes:
                    _decode_line(path, number, raw, max_bytes)
                yield number, raw
            if len(pending) > max_bytes:
                _decode_line(path, number + 1, pending, max_bytes)
            if not chunk:
                return


def _decode_line(path, number: int, raw: bytes, max_bytes: int) -> str:
    if len(raw) > max_bytes:
        raise UserError(f"{str(path)!r}, line {number:,}: longer than {max_bytes:,} bytes (is this the right file?)")
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{str(path)!r}, line {number:,}: not UTF-8 text ({exc.reason})") from None
    return text[:-1] if text.endswith("\r") else text


def _csv_int(path, number: int, field: str) -> int:
    digits = field.strip().lstrip("+-")
    if len(digits) > _MAX_DIGITS:
        raise UserError(f"{str(path)!r}, line {number:,}: a number of {len(digits):,} digits (at most {_MAX_DIGITS})")
    return int(field)


def _read_csv(path: Path) -> Selection:
    indices: list[int] = []
    labels: list[int] = []
    for line_no, raw in _raw_lines(path, _MAX_CSV_LINE):
        match = _ROW.match(raw)
        if match:  # the common case, without decoding the line
            indices.append(int(match[1]))
            labels.append(int(match[2]))
            continue
        line = _decode_line(path, line_no, raw, _MAX_CSV_LINE)
        row = line.split(",")
        if len(row) != 2 or not (_INTEGER.match(row[0]) and _INTEGER.match(row[1])):
            row = next(csv.reader([line]), [])  # quoted fields
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) == 2 and _INTEGER.match(row[0]) and _INTEGER.match(row[1]):
            indices.append(_csv_int(path, line_no, row[0]))
            labels.append(_csv_int(path, line_no, row[1]))
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
    header = Header(
        payload.n_reference, payload.k, payload.n_classes, max(payload.k, 1), payload.class_names,
        payload.reference_fingerprint, payload.metadata,
    )
    write_selection_blocks(path, header, [(payload.indices, payload.labels)])


def write_selection_blocks(path: str | os.PathLike, header, blocks) -> None:
    """Write ``blocks`` (``(indices, labels)`` pairs, ``header.n_selected`` entries in all) as
    ``.npz`` or ``.csv`` (by suffix), streaming: one block in memory at a time.  The file
    appears only once the last block is written (an error leaves the target as it was)."""
    suffix = _suffix(Path(path), "output")
    with AtomicOutput(path) as out:
        if suffix == ".csv":
            out.write((",".join(_CSV_HEADER) + "\n").encode())
            for indices, labels in blocks:
                out.write(_csv_rows(indices, labels))
        else:
            _write_npz(out, header, blocks)


def _csv_rows(indices: np.ndarray, labels: np.ndarray) -> bytes:
    """``index,label\n`` rows as bytes, formatted with numpy (30x faster than str.format)."""
    if not len(indices):
        return b""
    columns, keep = [], []
    for values, separator in ((indices, ord(",")), (labels, ord("\n"))):
        values = np.asarray(values).astype(np.uint64)
        width = len(str(int(values.max())))
        digits = np.empty((len(values), width), dtype=np.uint8)
        rest = values.copy()
        for j in range(width - 1, -1, -1):
            digits[:, j] = rest % np.uint64(10)
            rest //= np.uint64(10)
        digits += ord("0")
        n_digits = np.ones(len(values), dtype=np.int64)
        for power in range(1, width):
            n_digits += values >= np.uint64(10**power)
        columns += [digits, np.full((len(values), 1), separator, dtype=np.uint8)]
        keep += [np.arange(width) >= (width - n_digits)[:, None], np.ones((len(values), 1), dtype=bool)]
    return np.hstack(columns)[np.hstack(keep)].tobytes()


def _npy_header(member, dtype, shape) -> None:
    np.lib.format.write_array_header_1_0(
        member, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    )


def _write_npz(out, header, blocks) -> None:
    """An ``.npz`` that ``np.load`` reads as ``np.savez_compressed`` would have written it, built
    block by block: indices go straight into the archive; labels wait in a temporary file
    (2 bytes each) until the indices are done, since a zip member is written in one go."""
    k = header.n_selected
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as archive:
        with tempfile.TemporaryFile() as spill:
            with archive.open("indices.npy", "w", force_zip64=True) as member:
                _npy_header(member, "<u8", (k,))
                for indices, labels in blocks:
                    member.write(np.ascontiguousarray(indices, dtype="<u8").tobytes())
                    spill.write(np.asarray(labels).astype("<u2").tobytes())  # C <= 65,535
            spill.seek(0)
            with archive.open("labels.npy", "w", force_zip64=True) as member:
                _npy_header(member, "<i8", (k,))
                while chunk := spill.read(_io.READ_CHUNK):
                    member.write(np.frombuffer(chunk, dtype="<u2").astype("<i8").tobytes())
        extras = {"n_reference": np.int64(header.n_reference), "n_classes": np.int64(header.n_classes)}
        if header.class_names is not None:
            extras["class_names"] = np.array(header.class_names, dtype=str)
            if any(name.endswith("\0") for name in header.class_names):  # a string array drops them
                extras["class_names_json"] = np.array(json.dumps(list(header.class_names), ensure_ascii=False))
        if header.reference_fingerprint is not None:
            extras["reference_fingerprint"] = np.array(header.reference_fingerprint.hex())
        if header.metadata is not None:
            extras["metadata"] = np.array(json.dumps(header.metadata, sort_keys=True, ensure_ascii=False))
        for name, value in extras.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, value, allow_pickle=False)
            archive.writestr(f"{name}.npy", buffer.getvalue())


def _read_class_names(path: str) -> tuple[str, ...]:
    """One name per line (read in chunks: a line longer than any name is refused at once)."""
    return tuple(line for _, line in _lines(path, MAX_CLASS_NAME_BYTES + 1))


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
    if fingerprint is None and reference_manifest is None:
        fingerprint = sel.reference_fingerprint  # an .npz from unpack carries the task's
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
        except RecursionError:
            raise UserError("--metadata is nested too deeply") from None
    else:
        metadata = sel.metadata
    data = pladacodec.encode(
        sel.indices, sel.labels, n_reference,
        n_classes=n_classes, class_names=class_names, reference_fingerprint=fingerprint, metadata=metadata,
        folders=layout, **methods_for(format_version, layout is not None),
    )
    header = pladacodec.read_header(data)  # what was written, not what the path holds afterwards
    atomic_write_bytes(output, data)
    size = len(data)
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
    if fingerprint is None:  # issue 19, item 5
        click.echo("warning: the task carries no reference fingerprint, so clients can check their reference "
                   "only by its size; give --reference-manifest (or --fingerprint)", err=True)


_MANIFEST_FOR_FOLDERS = click.option(
    "--reference-manifest", type=click.Path(),
    help="The reference manifest a task packed with --folders was coded against (its folder layout).",
)


def _manifest_reference(reference_manifest):
    if reference_manifest is None:
        return None
    from pladacodec.reference import Reference

    return Reference.from_manifest(reference_manifest)


def _without_layout(exc: pladacodec.PladaReferenceError, reference_manifest) -> Exception:
    """A task that needs a folder layout it was not given gets the CLI's wording."""
    if reference_manifest is None:
        return UserError(f"{exc}; on the command line: --reference-manifest MANIFEST")
    return exc


def _stream_reader(task, reference_manifest) -> StreamReader:
    """TASK read once, block by block (a pipe works), with the manifest's layout if it names one."""
    try:
        return StreamReader(task, verify_first=False, folders=_manifest_reference(reference_manifest))
    except pladacodec.PladaReferenceError as exc:
        raise _without_layout(exc, reference_manifest) from None


def _summary(task, reference_manifest):
    """TASK decoded and verified block by block; only counts are kept."""
    try:
        return summarize(task, folders=_manifest_reference(reference_manifest))
    except pladacodec.PladaReferenceError as exc:
        raise _without_layout(exc, reference_manifest) from None


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
    with _stream_reader(task, reference_manifest) as reader:
        header = reader.header
        write_selection_blocks(output, header, reader.blocks())
    click.echo(f"wrote {output}: k = {header.n_selected:,} of N = {header.n_reference:,}, C = {header.n_classes:,}")


# --- inspect ------------------------------------------------------------------------------


def _printable(text: str) -> str:
    """``text`` with control and format characters escaped (``\\x1b``, ``\\n``, ``\\u202e``): a
    name or a value from a file must not move the cursor, colour the terminal or forge a line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _format_info(path: str, d: dict, top: int) -> str:
    class_names = d["class_names"]
    k, n = d["k"], d["n_reference"]
    lines = [
        f"{path}: .plada version {d['version']}, {d['file_bytes']:,} bytes",
        f"  reference size N   {n:,}",
        f"  selected k         {k:,} ({100 * k / n:.4g} % of N)",
        f"  classes C          {d['n_classes']:,}" + (" (named)" if class_names is not None else ""),
        f"  bits per selected  {d['bits_per_selected']:.2f}" if k else "  bits per selected  -",
        f"  blocks             {d['blocks']:,}",
        f"  fingerprint        {d['reference_fingerprint'] or 'none'}",
    ]
    if d["folder_layout"] is not None:
        layout = d["folder_layout"]
        lines.append(f"  folder layout      {layout['folders']:,} folders, digest {layout['digest']}")
    if d["metadata"] is not None:
        lines.append(f"  metadata           {_printable(json.dumps(d['metadata'], sort_keys=True, ensure_ascii=False))}")
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
        names = [_printable(class_names[c]) if class_names is not None else "" for c in order]
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

    The whole file is decoded and verified first, one block at a time.
    """
    d = _summary(task, reference_manifest).as_dict()
    if as_json:
        try:
            click.echo(json.dumps({"file": task, **d}, indent=2, ensure_ascii=False, allow_nan=False))
        except ValueError:
            raise UserError(f"{task}: its metadata holds NaN or Infinity, which JSON does not allow", EXIT_DAMAGED) from None
    else:
        click.echo(_format_info(task, d, top))


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
    try:  # TASK is read once (a pipe works), block by block; a task packed with --folders
        summary = summarize(task, folders=ref)  # is decoded with the reference's layout
    except pladacodec.PladaReferenceError as exc:
        header = getattr(exc, "header", None)
        if ref is None or header is None:
            raise
        if ref.n != header.n_reference:
            raise _size_mismatch(reference, ref, task, header) from None
        raise UserError(f"reference {reference!r}: {exc}", EXIT_FINGERPRINT) from None
    payload = summary.header
    click.echo(
        f"ok: {task} decodes fully (k = {payload.n_selected:,} of N = {payload.n_reference:,}, C = {payload.n_classes:,})"
    )
    if ref is None:
        return
    if ref.n != payload.n_reference:
        raise _size_mismatch(reference, ref, task, payload)
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


def _size_mismatch(reference, ref, task, header) -> UserError:
    return UserError(
        f"reference {reference!r} has {ref.n:,} images but {task} expects N = {header.n_reference:,}",
        EXIT_REFERENCE_SIZE,
    )
