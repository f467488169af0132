"""Run the examples in the package's docstrings, so they never rot."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import loyaltykit

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(loyaltykit.__path__, prefix="loyaltykit.")
    if ".migrations" not in info.name
)


@pytest.mark.parametrize("name", ["loyaltykit", *MODULES])
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert 0 == result.failed, f"{result.failed} docstring example(s) failed in {name}"
