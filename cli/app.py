"""The ``pladacodec`` command: a click group whose subcommands load lazily.

Lazy loading keeps ``pladacodec --help`` and the codec commands free of torch:
only ``score``, ``train`` and ``demo`` import the adapter layer.
"""

from __future__ import annotations

import importlib
import os

import click

# Before any command loads torch and its OpenMP runtime: idle OpenMP threads sleep instead of
# spinning.  On a machine whose cores are shared, spinning threads made small per-step kernels
# up to 10x slower (a demo student: 250 s instead of 11 s under a load of 2 on 2 cores), with
# the same numbers either way.  score, train and demo all benefit; a user's setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# command name -> "module:attribute" of the click command implementing it
_COMMANDS: dict[str, str] = {
    "pack": "pladacodec_cli.codec:pack",
    "unpack": "pladacodec_cli.codec:unpack",
    "inspect": "pladacodec_cli.codec:inspect_cmd",
    "verify": "pladacodec_cli.codec:verify",
    "manifest": "pladacodec_cli.server:manifest",
    "export": "pladacodec_cli.export:export",
    "score": "pladacodec_cli.server:score",
    "select": "pladacodec_cli.server:select",
    "train": "pladacodec_cli.client:train",
    "demo": "pladacodec_cli.client:demo",
    "bench": "pladacodec_cli.bench:bench",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pladacodec")
def main() -> None:
    """Send a whole image-classification task as a tiny .plada file (PLADA)."""


if __name__ == "__main__":  # pragma: no cover
    main()
