"""Create the golden ``.plada`` files of ``tests/golden/`` (run by hand, never by the tests).

    python tests/make_golden.py            # create every missing golden file, add it to MANIFEST.json
    python tests/make_golden.py NAME...    # just these (e.g. label-drift-c10, cli/inspect-extras.txt)

Existing files are never overwritten: a golden file pins the bytes that every future
reader must decode.  To replace one on purpose (a deliberate format change), delete it
first, and say why in the commit.
"""

from __future__ import annotations

import json
import sys

import pladacodec
from common import (
    CLI_GOLDEN_CASES,
    CLI_GOLDEN_DIR,
    GOLDEN_DIR,
    MANIFEST,
    golden_cases,
    load_manifest,
    manifest_entry,
    run_cli,
)


def make(name: str, build, manifest: dict) -> str:
    path = GOLDEN_DIR / f"{name}.plada"
    if path.exists():
        raise FileExistsError(f"refusing to overwrite {path.name}; delete it to recreate {name}")
    indices, labels, n_reference, kwargs = build()
    blob = pladacodec.encode(indices, labels, n_reference, **kwargs)
    folders = kwargs.get("folders")
    payload = pladacodec.decode(blob, folders=folders)
    GOLDEN_DIR.mkdir(exist_ok=True)
    with open(path, "xb") as fh:  # "x": fail rather than overwrite, even in a race
        fh.write(blob)
    manifest[name] = manifest_entry(blob, payload, folders)
    return f"created {path.name} ({len(blob):,} bytes)"


def make_cli_output(name: str) -> str:
    path = CLI_GOLDEN_DIR / name
    if path.exists():
        raise FileExistsError(f"refusing to overwrite cli/{name}; delete it to recreate it")
    result = run_cli(CLI_GOLDEN_CASES[name], cwd=GOLDEN_DIR)
    if result.exit_code != 0:
        raise RuntimeError(f"pladacodec {' '.join(CLI_GOLDEN_CASES[name])} failed: {result.output}")
    CLI_GOLDEN_DIR.mkdir(exist_ok=True)
    path.write_text(result.output, encoding="utf-8")
    return f"created cli/{name}"


def main(names: list[str]) -> int:
    cases = golden_cases()
    manifest = load_manifest()
    wanted = names or [*cases, *(f"cli/{n}" for n in CLI_GOLDEN_CASES)]
    for name in wanted:
        try:
            if name.startswith("cli/"):
                print(make_cli_output(name[4:]))
            elif not (GOLDEN_DIR / f"{name}.plada").exists():
                print(make(name, cases[name], manifest))
        except FileExistsError as exc:
            if names:
                print(exc)
        MANIFEST.write_text(json.dumps(dict(sorted(manifest.items())), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
