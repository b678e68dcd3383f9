"""``pladacodec demo``: the whole PLADA method on real, locally installed images.

>>> from pladacodec.demo import DemoConfig, run_demo   # doctest: +SKIP
>>> report = run_demo(DemoConfig.quick_config(out_dir="demo-out"))  # doctest: +SKIP
>>> print(open("demo-out/report.md").read())           # doctest: +SKIP

The submodules are loaded on first use: :mod:`.data` (numpy only) builds the images,
:mod:`.pipeline` (torch) runs teacher, selection, codec and students, :mod:`.report`
writes the table and the plot.
"""

from __future__ import annotations

__all__ = ["DemoConfig", "run_demo", "build_demo_data"]


def __getattr__(name: str):
    if name in ("DemoConfig", "run_demo"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "build_demo_data":
        from .data import build_demo_data

        return build_demo_data
    raise AttributeError(f"module 'pladacodec.demo' has no attribute {name!r}")
