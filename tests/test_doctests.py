"""Every docstring example in the core packages runs."""
import doctest
import importlib
import pkgutil

import pytest

import distillguard.models
import distillguard.schemas

MODULES = sorted(
    f"{pkg.__name__}.{m.name}"
    for pkg in (distillguard.models, distillguard.schemas)
    for m in pkgutil.iter_modules(pkg.__path__)
    if not m.ispkg
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
