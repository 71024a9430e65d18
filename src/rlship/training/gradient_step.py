"""One gradient step's optimizer calls without torch's per-call Python: clipping, Adam's step, zeroing.

On the small networks rlship trains on a CPU (a 64x64 or 128x128 MLP), the Python around torch's optimizer
calls (hooks, profiler records, grouping the tensors by device and dtype on every call) costs several times the
kernels themselves. These run the same kernels with the same arguments, so the weights are bit-identical
(tests/test_gradient_step.py), and fall back to torch's own call wherever the case is not the plain one. They use
torch internals (`torch._foreach_*`, `torch._fused_adam_`), checked on torch 2.13 (the version pyproject pins).
"""

from __future__ import annotations

from collections.abc import Iterable

from rlship.lazy_torch import torch


def zero_grads(params: Iterable[torch.Tensor]) -> None:
    """optimizer.zero_grad(set_to_none=True)."""
    for p in params:
        p.grad = None


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> None:
    """torch.nn.utils.clip_grad_norm_ (2-norm) on parameters of one device and dtype: the same foreach operations,
    so the same gradients, without its per-call grouping of the tensors by device and dtype (on a small network
    that bookkeeping costs more than the clipping)."""
    grads = [p.grad for p in params if p.grad is not None]
    total_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total_norm + 1e-6), max=1.0))


def _global_step_hooks() -> bool:
    """Whether hooks were registered for every optimizer's step (torch.optim.register_optimizer_step_*_hook)."""
    from torch.optim import optimizer

    return bool(optimizer._global_optimizer_pre_hooks or optimizer._global_optimizer_post_hooks)


class AdamStep:
    """`optimizer.step()` of a fused torch Adam as the two kernels Adam.step runs for it (torch/optim/adam.py,
    `_fused_adam`): the step counters' +1 and `torch._fused_adam_`, with the same arguments, so the same weights
    and state, without the Python around them (hooks, profiler records, per-call grouping of the tensors by
    device and dtype), which on a small MLP is several times the kernel's cost: about a tenth of a DQN gradient
    step. The state is the optimizer's own (its state_dict and the checkpoints are unchanged). Any other case
    (the first step, which creates the state; another optimizer or option; hooks) is `optimizer.step()` itself."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        groups = optimizer.param_groups
        group = groups[0]
        self.direct = (
            type(optimizer) is torch.optim.Adam
            and len(groups) == 1
            and group["fused"]
            and not (group["amsgrad"] or group["maximize"] or group["capturable"] or group["differentiable"])
            and not group["decoupled_weight_decay"]
            and group["weight_decay"] == 0
            and all(not isinstance(x, torch.Tensor) for x in (group["lr"], *group["betas"]))
            and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in group["params"])
            and getattr(optimizer, "grad_scale", None) is None
            and getattr(optimizer, "found_inf", None) is None
        )

    def __call__(self) -> None:
        optimizer = self.optimizer
        group = optimizer.param_groups[0]
        params = group["params"]
        state = optimizer.state
        hooked = optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks or _global_step_hooks()
        if not self.direct or hooked or any(p.grad is None or p not in state for p in params):
            optimizer.step()
            return
        states = [state[p] for p in params]
        steps = [st["step"] for st in states]
        torch._foreach_add_(steps, 1)
        beta1, beta2 = group["betas"]
        torch._fused_adam_(
            params,
            [p.grad for p in params],
            [st["exp_avg"] for st in states],
            [st["exp_avg_sq"] for st in states],
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=0.0,
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )


class GradientStep:
    """zero_grad, backward, clip the global gradient norm, Adam's step: `step(loss)`, bit-identical to
    `optimizer.zero_grad(set_to_none=True); loss.backward(); clip_grad_norm_(params, max_norm); optimizer.step()`."""

    def __init__(self, params: list[torch.Tensor], optimizer: torch.optim.Optimizer, max_grad_norm: float) -> None:
        self.params = params
        self.max_grad_norm = max_grad_norm
        self.optimizer_step = AdamStep(optimizer)

    def __call__(self, loss: torch.Tensor) -> None:
        zero_grads(self.params)
        loss.backward()
        self.update()

    def update(self) -> None:
        """Clip and step on gradients already set (training/td_gradients.py writes DQN's without autograd)."""
        clip_grad_norm(self.params, self.max_grad_norm)
        self.optimizer_step()
