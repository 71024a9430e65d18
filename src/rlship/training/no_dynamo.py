"""torch.optim without importing torch._dynamo, which costs about as much start-up time as torch itself.

torch.optim wraps some `Optimizer` methods (`add_param_group`, which construction calls, `zero_grad`, `state_dict`,
`load_state_dict`) in `torch._disable_dynamo`, which imports torch._dynamo at their first call to mark them "not
to be compiled", and each optimizer's `step` in `_use_grad_for_differentiable`, which imports it at every call to
place graph breaks. Both matter only while torch.compile traces, and rlship's training compiles nothing.
`skip_dynamo_wrappers()` makes those wrappers do what they do when nothing is compiled, without the import: the
lazy wrapper's cache (which torch fills with `torch._dynamo.disable(method)` at the first call) gets the method
itself, and `step` gets the same grad-mode wrapper without the graph breaks. The maths is torch's own, so every
step is bit-identical (tests/test_no_dynamo.py). Nothing changes when torch._dynamo is already loaded (the
process uses torch.compile) or when torch's wrappers are not the ones described here (another torch version).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch

# The Optimizer methods torch wraps in `torch._disable_dynamo` (torch/optim/optimizer.py)
_DISABLED_METHODS = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def skip_dynamo_wrappers() -> bool:
    """Let torch.optim run without importing torch._dynamo (idempotent); True when it will."""
    if "torch._dynamo" in sys.modules:
        return False
    patched = True
    for name in _DISABLED_METHODS:
        method = getattr(torch.optim.Optimizer, name)
        wrapped = getattr(method, "__wrapped__", None)
        if wrapped is None or method.__code__.co_name != "inner":  # not torch._compile's lazy wrapper
            patched = False
            continue
        setattr(wrapped, "__dynamo_disable", wrapped)  # the cache `inner` reads before importing torch._dynamo
    for cls in _optimizer_classes():
        step = cls.__dict__.get("step")
        if step is None or getattr(step, "hooked", False):  # an instance exists already: its wrapper stays
            continue
        if step.__code__.co_name == "_use_grad" and hasattr(step, "__wrapped__"):
            cls.step = _use_grad(step.__wrapped__)  # type: ignore[method-assign]
    return patched


def _optimizer_classes() -> Iterator[type[torch.optim.Optimizer]]:
    todo = list(torch.optim.Optimizer.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        yield cls


def _use_grad(step: Callable[..., Any]) -> Callable[..., Any]:
    """torch.optim.optimizer._use_grad_for_differentiable without its torch._dynamo.graph_break() calls."""

    @functools.wraps(step)
    def use_grad(self: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> Any:
        previous = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(self.defaults["differentiable"])
            return step(self, *args, **kwargs)
        finally:
            torch.set_grad_enabled(previous)

    return use_grad
