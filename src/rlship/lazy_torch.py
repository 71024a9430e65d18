"""`torch` and `F` (torch.nn.functional), imported on their first use.

torch takes about 2.4 s to import on a 2-core machine. `rlship train --help` builds its parser from every
algorithm's config dataclass, and `rlship evaluate` of an MLP policy acts in NumPy (rlship/numpy_forward.py), so
neither the algorithm modules nor the artifact core (policy, distributions, normalization) may import torch when
they are imported. They take `from rlship.lazy_torch import F, torch` instead of `import torch`: the code reads
the same (`torch.optim.Adam(...)`, `F.mse_loss(...)`), and torch is imported when something first touches it.
Python 3.15's `lazy import torch` (PEP 810) does this in the language; type checkers see the real modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any


class _LazyModule:
    """Stands for the module `name` and imports it at the first attribute access; each attribute, once looked
    up, is kept on the instance, so later uses cost what a module attribute costs."""

    def __init__(self, name: str) -> None:
        self.__module_name = name

    def __getattr__(self, attr: str) -> Any:
        value = getattr(importlib.import_module(self.__module_name), attr)
        setattr(self, attr, value)
        return value

    def __repr__(self) -> str:
        return f"<lazily imported module {self.__module_name!r}>"


if TYPE_CHECKING:
    import torch
    from torch.nn import functional as F
else:
    torch = _LazyModule("torch")
    F = _LazyModule("torch.nn.functional")

__all__ = ["F", "torch"]
