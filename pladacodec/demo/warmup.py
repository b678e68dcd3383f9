"""Compile the codec's numba kernels in a background process while the demo does other work.

On a fresh install (an empty numba cache) the kernels that pack and read the ``.plada``
files compile on first use: tens of seconds of one core, which the demo would otherwise pay
in its selection phase with both cores otherwise idle.  :func:`start` launches a separate
Python process that compiles every kernel into numba's on-disk cache
(:func:`pladacodec._kernels.compile_all`, the step ``scripts/setup.sh`` runs once) while the
demo builds its images and runs the teacher; :func:`wait` is called before the first
``.plada`` file is written, after which the demo's own process loads the kernels from the
cache instead of compiling them.  Only the timing changes: the kernels and the bytes are the
same.  If the cache cannot be written (a read-only location), or the process fails, the demo
compiles the kernels itself as before.

Stdlib only: the CLI calls :func:`start` before it imports torch.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

__all__ = ["start", "wait"]

_PROCESS: subprocess.Popen | None = None
_CODE = "from pladacodec._kernels import compile_all; compile_all()"


def start() -> None:
    """Launch the compiling process (once per process; a no-op when numba's JIT is off)."""
    global _PROCESS
    if _PROCESS is not None or os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        return
    try:
        _PROCESS = subprocess.Popen([sys.executable, "-c", _CODE], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        _PROCESS = None


def wait(timeout: float = 300.0) -> float:
    """Wait for the compiling process (if any) to finish; return the seconds waited."""
    if _PROCESS is None:
        return 0.0
    t0 = time.perf_counter()
    try:
        _PROCESS.wait(timeout)
    except subprocess.TimeoutExpired:
        pass  # the demo's process compiles what it needs itself
    return time.perf_counter() - t0
