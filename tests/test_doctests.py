"""The examples in the docstrings of the codec core and the bench helpers run and give what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "pladacodec",
    "pladacodec._api",
    "pladacodec._stream",
    "pladacodec.folders",
    "pladacodec.reference",
    "pladacodec.selection",
    "pladacodec_bench.baselines",
    "pladacodec_bench.oracle",
    "pladacodec_bench.workloads",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"{name} has no docstring examples; drop it from MODULES"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
