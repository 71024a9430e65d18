"""The gradients of DQN's Huber TD loss for a plain MLP Q-network, written out instead of asked of autograd.

A DQN gradient step on CartPole is small maths (a 128x128 MLP, a minibatch of 128) called ten thousand times a run,
and autograd's bookkeeping around it (recording the graph, the engine's scheduling, AccumulateGrad, the transposes'
views) costs about a fifth of the step. `TDGradients` runs the forward pass keeping each layer's output, then the
backward pass as the very kernels autograd runs for it, with the same arguments in the same layouts (torch 2.13's
`mm_mat1_backward`/`mm_mat2_backward` for a Linear layer, `threshold_backward`/`tanh_backward`, gather's
scatter_add, smooth_l1_loss_backward's Huber slope), so the gradients are bit-identical to
`F.smooth_l1_loss(q_net(obs).gather(1, a), targets).backward()` (tests/test_td_gradients.py), and the learning
is unchanged. Networks it does not know (the CNN on pixels) keep autograd: `td_gradients` returns None for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlship.lazy_torch import F, torch

if TYPE_CHECKING:
    from rlship.networks import PlainLayer


class TDGradients:
    """`grads(obs, actions, targets)`: sets each parameter's `.grad` to d loss / d parameter for the mean Huber loss
    (beta 1) of Q(obs, actions) against `targets`, and returns (loss, Q(obs, actions)), both detached.

    `layers` are networks.plain_layers of an MLP: (weight, bias) pairs and torch.relu / torch.tanh."""

    def __init__(self, layers: list[PlainLayer]) -> None:
        self.layers = layers
        self.params = [t for layer in layers if isinstance(layer, tuple) for t in layer]

    def __call__(
        self, obs: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            # forward, keeping every layer's input (a Linear needs it for its weight's gradient) and every
            # activation's output (its derivative is read from the output, as autograd does)
            inputs: list[torch.Tensor] = []
            x = obs
            for layer in self.layers:
                inputs.append(x)
                x = F.linear(x, *layer) if isinstance(layer, tuple) else layer(x)
            index = actions[:, None]
            q_taken = x.gather(1, index).squeeze(1)
            loss = F.smooth_l1_loss(q_taken, targets)
            # d loss / d q_taken: smooth_l1_loss_backward with reduction "mean" and beta 1 scales the Huber slope,
            # clamp(q - target, -1, 1), by 1 / n
            grad_taken = torch.ops.aten.smooth_l1_loss_backward(
                torch.ones((), dtype=x.dtype), q_taken, targets, 1, 1.0
            )  # reduction 1: mean
            grad = torch.zeros_like(x).scatter_add_(1, index, grad_taken[:, None])  # gather's backward
            grads: list[torch.Tensor] = []
            for i in range(len(self.layers) - 1, -1, -1):
                layer = self.layers[i]
                if isinstance(layer, tuple):
                    weight, _ = layer
                    # F.linear is addmm(bias, input, weight.t()): weight.t() is column-major, so autograd's
                    # mm_mat2_backward computes grad.t() @ input (then transposes it twice: the weight's own layout)
                    grads.append(grad.sum(0))
                    grads.append(grad.t().mm(inputs[i]))
                    if i > 0:  # the first layer's input (the observation) needs no gradient
                        grad = grad.mm(weight)  # mm_mat1_backward for a row-major input
                elif layer is torch.relu:  # an activation's output is the next layer's input (the last is a Linear)
                    grad = torch.ops.aten.threshold_backward(grad, inputs[i + 1], 0)
                else:  # torch.tanh
                    grad = torch.ops.aten.tanh_backward(grad, inputs[i + 1])
            # appended (bias, weight) per layer from the last: reversed, (weight, bias) from the first, as `params`
            grads.reverse()
            for param, g in zip(self.params, grads, strict=True):
                param.grad = g
        return loss, q_taken


def td_gradients(layers: list[PlainLayer] | None) -> TDGradients | None:
    """A TDGradients for an MLP's plain layers (networks.plain_layers), None for anything else."""
    if layers is None or not layers or not isinstance(layers[-1], tuple):
        return None
    if any(not isinstance(layer, tuple) and layer not in (torch.relu, torch.tanh) for layer in layers):
        return None
    return TDGradients(layers)


__all__ = ["TDGradients", "td_gradients"]
