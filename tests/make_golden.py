"""Create the golden ``.plada`` files of ``tests/golden/`` (run by hand, never by the tests).

    python tests/make_golden.py            # create every missing golden file
    python tests/make_golden.py NAME...    # create just these (e.g. index-3-label-1, cli/inspect-extras.txt)

Existing files are never overwritten: a golden file pins the bytes that
every future reader must decode.  To replace one on purpose (a deliberate
format change), delete it and its sidecar first, and say why in the commit.
A case whose coding method has no coder yet is reported and skipped.
"""

from __future__ import annotations

import json
import sys

import pladacodec
from common import (
    CLI_GOLDEN_CASES,
    CLI_GOLDEN_DIR,
    GOLDEN_DIR,
    golden_cases,
    golden_methods,
    golden_paths,
    golden_sidecar,
    index_method_ids,
    label_method_ids,
    run_cli,
)


def make(name: str, build) -> str:
    plada_path, json_path = golden_paths(name)
    existing = [p.name for p in (plada_path, json_path) if p.exists()]
    if existing:
        raise FileExistsError(f"refusing to overwrite {', '.join(existing)}; delete both files to recreate {name}")
    methods = golden_methods(name)
    if methods is not None and (methods[0] not in index_method_ids() or methods[1] not in label_method_ids()):
        return f"skipped {name}: its coding method has no coder yet"
    indices, labels, n_reference, kwargs = build()
    blob = pladacodec.encode(indices, labels, n_reference, **kwargs)
    payload = pladacodec.decode(blob, folders=kwargs.get("folders"))
    sidecar = golden_sidecar(indices, labels, n_reference, kwargs, payload)
    GOLDEN_DIR.mkdir(exist_ok=True)
    with open(plada_path, "xb") as fh:  # "x": fail rather than overwrite, even in a race
        fh.write(blob)
    with open(json_path, "x", encoding="utf-8") as fh:
        json.dump(sidecar, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    return f"created {plada_path.name} ({len(blob):,} bytes) and {json_path.name}"


def make_cli_output(name: str) -> str:
    path = CLI_GOLDEN_DIR / name
    if path.exists():
        raise FileExistsError(f"refusing to overwrite cli/{name}; delete it to recreate it")
    result = run_cli(CLI_GOLDEN_CASES[name], cwd=GOLDEN_DIR)
    if result.exit_code != 0:
        raise RuntimeError(f"pladacodec {' '.join(CLI_GOLDEN_CASES[name])} failed: {result.output}")
    CLI_GOLDEN_DIR.mkdir(exist_ok=True)
    with open(path, "x", encoding="utf-8", newline="\n") as fh:
        fh.write(result.stdout)
    return f"created cli/{name}"


def main(argv: list[str]) -> int:
    cases = golden_cases()
    cli_names = [f"cli/{name}" for name in CLI_GOLDEN_CASES]
    unknown = [name for name in argv if name not in cases and name not in cli_names]
    if unknown:
        print(f"unknown golden case(s) {', '.join(unknown)}; known: {', '.join(cases)}", file=sys.stderr)
        return 1
    status = 0
    for name in argv or list(cases) + cli_names:
        if name.startswith("cli/"):
            if not argv and (CLI_GOLDEN_DIR / name[4:]).exists():
                continue
            try:
                print(make_cli_output(name[4:]))
            except FileExistsError as exc:
                print(f"error: {exc}", file=sys.stderr)
                status = 1
            continue
        plada_path, json_path = golden_paths(name)
        if not argv and plada_path.exists() and json_path.exists():
            continue  # already there; asking for it by name would be an error
        try:
            print(make(name, cases[name]))
        except FileExistsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
