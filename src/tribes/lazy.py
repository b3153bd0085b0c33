"""Names a package's façade serves on first use: those whose modules import heavy
libraries (scikit-learn, SciPy), so that importing the package stays light.

In a façade::

    _LAZY = {"find_outliers": "tribes.analysis.outliers"}
    __getattr__, __dir__ = lazy_names(__name__, _LAZY)

(with the same names imported under ``TYPE_CHECKING`` for the type checker).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, names: Mapping[str, str]
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package`` serving ``names`` (name
    -> the module defining it): the module is imported at the first use of one of its
    names, and the value kept in the package's namespace."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted([*namespace, *names])

    return __getattr__, __dir__
