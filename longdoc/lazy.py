"""Package names that load on first use (PEP 562), so importing one part of longdoc (the reader, on a GPU
box without FAISS) does not import every other part."""
from __future__ import annotations

import importlib
from typing import Callable


def lazy_names(package: str, names: dict[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` that imports names[name] (a module relative to `package`) on first use."""
    def __getattr__(name: str):
        if name in names:
            return getattr(importlib.import_module(names[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
