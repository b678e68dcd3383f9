"""What every ``pladacodec`` subcommand shares: exit statuses and error reporting.

A user's mistake (a :class:`~pladacodec.PladaError`, a missing or unreadable
file, a malformed selection) is printed as one line, ``error: ...``, on
stderr, with no traceback; anything else is a bug and keeps its traceback.
Declare a command with ``@click.command(cls=PladaCommand)`` to get this
behaviour; raise :class:`UserError` for a failure found by the command itself.

Exit statuses (shared by every command; ``verify`` documents them):

=====  ===========================================================
0      success
1      usage error, unreadable or unwritable file, invalid input
2      the ``.plada`` file is damaged or not a valid ``.plada`` file
3      the reference set's size differs from the task's N
4      the reference fingerprint differs, or the task carries none
=====  ===========================================================
"""

from __future__ import annotations

import os
from typing import IO, Any

import click

from pladacodec._spec import VERSION_MAJOR, VERSION_MINOR
from pladacodec.errors import PladaDecodeError, PladaError

__all__ = [
    "EXIT_OK",
    "EXIT_USAGE",
    "EXIT_DAMAGED",
    "EXIT_REFERENCE_SIZE",
    "EXIT_FINGERPRINT",
    "UserError",
    "PladaCommand",
    "describe_os_error",
    "format_version_option",
    "methods_for",
]

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_DAMAGED = 2
EXIT_REFERENCE_SIZE = 3
EXIT_FINGERPRINT = 4


class UserError(click.ClickException):
    """A failure the user can fix: shown as one ``error: ...`` line, exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def format_version_option(command):
    """``--format-version 1.N``: write only what readers of that format version decode."""
    return click.option(
        "--format-version", default=None, metavar=f"{VERSION_MAJOR}.N",
        help=f"Write a file that readers of this .plada format version decode ({VERSION_MAJOR}.0 to "
        f"{VERSION_MAJOR}.{VERSION_MINOR}; default: the newest, whose coders are the smallest). "
        "For clients that run an older pladacodec.",
    )(command)


def methods_for(format_version: str | None, folders: bool) -> dict:
    """encode() keywords for ``--format-version`` (none without it)."""
    if format_version is None:
        return {}
    import pladacodec

    try:
        return pladacodec.methods_for_version(format_version, folders=folders)
    except PladaError as exc:
        raise UserError(f"--format-version: {exc}") from None


def describe_os_error(exc: OSError) -> str:
    """``cannot open 'x.npz': No such file or directory`` from an OSError."""
    reason = exc.strerror or str(exc)
    if exc.filename is not None:
        return f"cannot open {os.fsdecode(exc.filename)!r}: {reason}"
    return reason


class PladaCommand(click.Command):
    """A click command that turns user errors into one line on stderr and an exit status.

    ``PladaDecodeError`` exits 2 (damaged file); other ``PladaError``s, ``OSError``s,
    ``MemoryError`` and usage errors exit 1.  Tracebacks are kept for genuine bugs only.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            exc.exit_code = EXIT_USAGE  # click's default, 2, means "damaged file" here
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.exit_code = EXIT_USAGE
            raise
        except click.ClickException:
            raise
        except PladaDecodeError as exc:
            raise UserError(str(exc), EXIT_DAMAGED) from exc
        except PladaError as exc:
            raise UserError(str(exc), EXIT_USAGE) from exc
        except OSError as exc:
            raise UserError(describe_os_error(exc), EXIT_USAGE) from exc
        except MemoryError:
            raise UserError(
                "out of memory (the task declares more entries than fit; unpack, verify and inspect work block "
                "by block, other commands hold the whole task)", EXIT_USAGE,
            ) from None
