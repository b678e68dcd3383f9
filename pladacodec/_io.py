"""File plumbing for the API, the streaming reader and writer, and the CLI.

Reading (:func:`read_up_to`, :func:`read_file_bytes`): the magic is read and checked before
anything else, then the rest in chunks of at most :data:`READ_CHUNK` bytes, up to the largest
file the format allows; a path or file object is read once, so a FIFO or ``<(cat task.plada)``
works.  A text-mode file object is refused with a message that says so.

Writing (:class:`AtomicOutput`): a regular file is replaced atomically (a temporary file in the
same folder, fsync, rename), with the mode of the file it replaces or, for a new file, the
mode the umask gives (0644 under umask 022).  A symbolic link is followed: its target is
replaced and the link kept.  A device, FIFO or socket is written in place (renaming over it
would replace ``/dev/null`` with a regular file).  Temporary files are named
``.NAME.HOST.PID.RANDOM.plada-tmp``; one left by a writer that was killed (``kill -9``) is
removed by the next writer of the same target on the same host once its PID is gone.
"""

from __future__ import annotations

import io
import os
import secrets
import socket
import stat

from . import _spec as S
from .errors import PladaDecodeError, PladaError, PladaFormatError

__all__ = ["READ_CHUNK", "TEMP_SUFFIX", "AtomicOutput", "atomic_write_bytes", "read_up_to", "read_file_bytes"]

READ_CHUNK = 1 << 20  # no single read asks for more
PREFIX_SIZE = len(S.LEGACY_MAGIC) + 2  # the first read: enough for either magic and the version
TEMP_SUFFIX = ".plada-tmp"


def _os_error(action: str, path, exc: OSError) -> PladaError:
    return PladaError(f"cannot {action} {os.fspath(path)!r}: {exc.strerror or exc}")


def check_binary_reader(fh) -> None:
    if isinstance(fh, io.TextIOBase):
        raise PladaDecodeError("the file object is open in text mode; open it in binary mode ('rb')")


def read_up_to(fh, n: int) -> bytes:
    """Up to ``n`` bytes from ``fh`` (fewer only at its end), read in bounded chunks."""
    parts = []
    left = n
    while left > 0:
        try:
            chunk = fh.read(min(left, READ_CHUNK))
        except UnicodeDecodeError:
            raise PladaDecodeError("the file object is open in text mode; open it in binary mode ('rb')") from None
        if not isinstance(chunk, (bytes, bytearray)):
            raise PladaDecodeError(f"file object returned {type(chunk).__name__}, not bytes (open it in binary mode)")
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def seekable_size(fh) -> int | None:
    """Bytes left in ``fh`` from where it stands, when it can seek (a regular file, ``BytesIO``);
    None for a pipe, a device or an object that cannot seek."""
    try:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass  # no descriptor (BytesIO and the like): ask the object
    try:
        if not fh.seekable():
            return None
        here = fh.tell()
        end = fh.seek(0, os.SEEK_END)
        fh.seek(here)
        return max(end - here, 0)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def read_file_bytes(source, check_start) -> bytes:
    """The bytes of a ``.plada`` file from a path or binary file object, read once.

    ``check_start(prefix)`` sees the first bytes (magic and version) before anything else is
    read and raises if they are not a ``.plada`` file's; the rest is read in chunks and refused
    beyond :data:`~pladacodec._spec.MAX_FILE_SIZE` bytes.
    """
    if hasattr(source, "read"):
        check_binary_reader(source)
        return _read_all(source, check_start)
    try:
        fh = open(source, "rb")
    except OSError as exc:
        raise _os_error("read", source, exc) from exc
    with fh:
        try:
            return _read_all(fh, check_start)
        except OSError as exc:
            raise _os_error("read", source, exc) from exc


def _read_all(fh, check_start) -> bytes:
    size = seekable_size(fh)
    if size is not None and size > S.MAX_FILE_SIZE:
        prefix = read_up_to(fh, PREFIX_SIZE)
        check_start(prefix)
        raise PladaFormatError(f"{size:,} bytes exceeds the largest .plada file ({S.MAX_FILE_SIZE:,} bytes)")
    prefix = read_up_to(fh, PREFIX_SIZE)
    check_start(prefix)
    if len(prefix) < PREFIX_SIZE:
        return prefix
    data = bytearray(prefix)
    while True:
        chunk = read_up_to(fh, min(READ_CHUNK, S.MAX_FILE_SIZE + 1 - len(data)))
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > S.MAX_FILE_SIZE:
            raise PladaFormatError(f"the input exceeds the largest .plada file ({S.MAX_FILE_SIZE:,} bytes)")


# --- writing --------------------------------------------------------------------------------


def _pid_is_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (owned by someone else) or we cannot tell
        return False
    return False


def remove_stale_temp_files(directory: str, name: str) -> list[str]:
    """Remove ``name``'s temporary files in ``directory`` left by dead writers on this host."""
    prefix, host = f".{name}.", socket.gethostname()
    removed = []
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return removed
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(TEMP_SUFFIX)):
            continue
        parts = entry[len(prefix) : -len(TEMP_SUFFIX)].rsplit(".", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        if _pid_is_gone(int(parts[1])):
            try:
                os.unlink(os.path.join(directory, entry))
                removed.append(entry)
            except OSError:
                pass
    return removed


class AtomicOutput:
    """A binary file to write to ``path``; :meth:`commit` puts it in place, :meth:`abort` drops it.

    See the module docstring for what happens to regular files, symlinks and devices.  As a
    context manager it commits on success and aborts on an exception.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.bin")
    >>> with AtomicOutput(path) as out:
    ...     _ = out.write(b"data")
    >>> open(path, "rb").read()
    b'data'
    """

    def __init__(self, path) -> None:
        self.path = os.fspath(path)
        self._tmp = None
        try:
            st = os.stat(self.path)  # follows links, /dev/stdout's to a pipe included
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise _os_error("write", self.path, exc) from exc
        # Where a regular file goes: a symlink's target (a dangling link: the file it names).
        real = self.path if st is not None and not stat.S_ISREG(st.st_mode) else os.path.realpath(self.path)
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise PladaError(f"cannot write {self.path!r}: it is a directory")
        self.in_place = st is not None and not stat.S_ISREG(st.st_mode)
        try:
            if self.in_place:  # a device, FIFO or socket: written directly, not replaced
                self.file = open(real, "wb")
                return
            directory, name = os.path.split(real)
            remove_stale_temp_files(directory, name)
            tmp = os.path.join(
                directory, f".{name}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
            )
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)  # umask applies
            self._tmp, self._real = tmp, real
            if st is not None:  # a replaced file keeps its mode (and, where we may, its owner)
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
                if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                    try:
                        os.fchown(fd, st.st_uid, st.st_gid)
                    except OSError:
                        pass
            self.file = os.fdopen(fd, "wb")
        except OSError as exc:
            self._remove_tmp()
            raise _os_error("write", self.path, exc) from exc

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            self.abort()
            raise _os_error("write", self.path, exc) from exc

    def commit(self) -> None:
        try:
            self.file.flush()
            if self._tmp is not None:
                os.fsync(self.file.fileno())
            self.file.close()
            if self._tmp is not None:
                os.replace(self._tmp, self._real)
                self._tmp = None
        except OSError as exc:
            self.abort()
            raise _os_error("write", self.path, exc) from exc

    def abort(self) -> None:
        try:
            self.file.close()
        except (OSError, AttributeError):
            pass
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None

    def __enter__(self):
        return self.file

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def atomic_write_bytes(path, data) -> None:
    """Write ``data`` to ``path`` through :class:`AtomicOutput`."""
    out = AtomicOutput(path)
    try:
        out.write(data)
    except BaseException:
        out.abort()
        raise
    out.commit()
