"""Adam over one flat buffer: torch's Adam update, bit for bit, in a handful of tensor calls.

The toy models have few, small parameter tensors (a ten-layer ResNet: 62 of them, a few hundred
numbers each). ``torch.optim.Adam`` updates them tensor by tensor (its ``foreach`` path on the
CPU is a loop over the same per-tensor kernels), so a step costs about ten small kernel calls
per tensor, a third of a ResNet training step. :class:`FlatAdam` keeps the parameters as views
of one flat buffer (moved there at the first step, values unchanged), concatenates the
gradients, and runs the same update formula, operation by operation in the same order and with
the same scalars as torch's ``foreach`` implementation (torch/optim/adam.py,
``_multi_tensor_adam`` without capturable/amsgrad/maximize), once on the buffer, which updates
the parameters in place. Every operation is elementwise, so each number goes through the same
arithmetic; tests check that training gives torch's weights and losses bit for bit on the
default, AVX2 and AVX-512 CPU code paths. Parameters that cannot share one buffer
(non-contiguous, e.g. channels-last convolution weights, or of mixed dtypes) are concatenated
and copied back at every step instead.
"""
import torch
from torch.optim import optimizer as _torch_optimizer

from ._checks import check_nonneg, check_positive

# torch's own C++ helpers (used by its distributed data parallel): concatenate flattened
# tensors in one call, and split a flat tensor back into views shaped like a list of tensors
_flatten, _unflatten = torch._C._nn.flatten_dense_tensors, torch._C._nn.unflatten_dense_tensors
# the undecorated function under torch's dynamo-disable wrapper (functools.wraps keeps it)
_ADD_PARAM_GROUP = getattr(torch.optim.Optimizer.add_param_group, "__wrapped__",
                           torch.optim.Optimizer.add_param_group)
# every optimizer's step hooks (torch.optim.optimizer.register_optimizer_step_pre_hook / _post_hook)
_GLOBAL_PRE_HOOKS = _torch_optimizer._global_optimizer_pre_hooks
_GLOBAL_POST_HOOKS = _torch_optimizer._global_optimizer_post_hooks


class FlatAdam(torch.optim.Optimizer):
    """Adam (``torch.optim.Adam`` with L2 ``weight_decay``, no amsgrad) over flat buffers.

    params : iterable of parameters (or one group dict); lr, betas, eps, weight_decay as Adam.
    The parameters that have a gradient at the first step fix the buffers' layout; a later
    step where another set has gradients raises a RuntimeError (use ``torch.optim.Adam``
    for models that leave some parameters without gradients at some steps).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if not (len(betas) == 2 and all(0 <= b < 1 for b in betas)):
            raise ValueError(f"betas must be two numbers in [0, 1); got {betas!r}")
        super().__init__(params, dict(lr=check_positive("lr", lr), betas=tuple(betas),
                                      eps=check_nonneg("eps", eps),
                                      weight_decay=check_nonneg("weight_decay", weight_decay)))
        self._flat = {}   # group index -> (buffer the parameters live in, their addresses)

    def add_param_group(self, param_group):
        """torch's ``Optimizer.add_param_group`` itself, without its ``torch._disable_dynamo``
        wrapper: on first use that wrapper imports ``torch._dynamo``, about a second and a half
        in every process that builds an optimizer (each chapter, each worker process), for a
        guard that only matters inside ``torch.compile``, which never traces FlatAdam."""
        return _ADD_PARAM_GROUP(self, param_group)

    def __setstate__(self, state):
        super().__setstate__(state)
        self.__dict__.setdefault("_flat", {})

    def zero_grad(self, set_to_none=True):
        """As torch's; ``set_to_none=True`` (what ``train`` asks for every iteration) is a plain
        loop, without the profiler label and per-device grouping torch's method sets up."""
        if not set_to_none:
            return super().zero_grad(set_to_none=False)
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None
        return None

    def _flat_params(self, index, params):
        """A flat tensor whose pieces *are* ``params`` (their storage), or None.

        On first use, contiguous parameters of one dtype and device are moved into one buffer
        (``p.data`` becomes a view of it, values unchanged), so a step updates them in place
        without concatenating them and copying the result back. Anything that gives a parameter
        other storage or strides (``model.to(...)``, channels-last weights, a reassigned
        ``p.data``) is noticed here (the views' addresses) and the buffer is rebuilt; when the
        parameters cannot share one buffer, None: the step then concatenates and copies back."""
        cached = self._flat.get(index)
        if cached is not None:
            flat, ptrs = cached
            if len(ptrs) == len(params) and all(
                    p.data_ptr() == ptr and p.is_contiguous() for p, ptr in zip(params, ptrs)):
                return flat
        first = params[0]
        if not all(p.is_contiguous() and p.dtype == first.dtype and p.device == first.device
                   and p.layout == torch.strided for p in params):
            self._flat.pop(index, None)
            return None
        flat = _flatten([p.detach() for p in params])
        for p, piece in zip(params, _unflatten(flat, params)):
            p.data = piece
        self._flat[index] = (flat, [p.data_ptr() for p in params])
        return flat

    def step(self, closure=None):
        """One Adam step (``closure`` as torch's optimizers take it); returns its loss or None."""
        # torch wraps every optimizer's step in a profiler range and hook loops, about 12 us a
        # call, a twentieth of a toy ANODE step: FlatAdam tells torch not to (``hooked``) and
        # runs that same wrapper only when step hooks are registered
        if (self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks
                or _GLOBAL_PRE_HOOKS or _GLOBAL_POST_HOOKS):
            return self._step_with_hooks(closure)
        return self._step(closure)

    step.hooked = True

    def _step_with_hooks(self, closure=None):
        return self._step(closure)

    _step_with_hooks = torch.optim.Optimizer.profile_hook_step(_step_with_hooks)

    @torch.no_grad()
    def _step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            state = self.state[("flat", index)]   # plain keys: state_dict() keeps them as they are
            if not state:
                state["layout"] = [i for i, p in enumerate(group["params"]) if p.grad is not None]
                numel = sum(p.numel() for p in params)
                state["step"] = 0
                state["exp_avg"] = params[0].new_zeros(numel)
                state["exp_avg_sq"] = params[0].new_zeros(numel)
            elif len(params) != len(state["layout"]) or any(
                    group["params"][i].grad is None for i in state["layout"]):
                raise RuntimeError("FlatAdam: the parameters with gradients changed between steps; "
                                   "use torch.optim.Adam for this model (train(..., optimizer=...))")
            lr, (beta1, beta2) = group["lr"], group["betas"]
            flat = self._flat_params(index, params) if len(params) == len(group["params"]) else None
            in_place = flat is not None
            if not in_place:
                flat = _flatten(params)
            grad = _flatten([p.grad for p in params])
            state["step"] += 1
            step = float(state["step"])
            # torch's _multi_tensor_adam, one call per line, on the concatenation
            if group["weight_decay"] != 0:
                grad = torch.add(grad, flat, alpha=group["weight_decay"])
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2)
            exp_avg_sq.addcmul_(grad, grad, value=1 - beta2)
            step_size = (lr / (1 - beta1 ** step)) * -1
            denom = exp_avg_sq.sqrt()
            denom.div_((1 - beta2 ** step) ** 0.5)
            denom.add_(group["eps"])
            flat.addcdiv_(exp_avg, denom, value=step_size)
            if not in_place:
                torch._foreach_copy_(params, _unflatten(flat, params))
        return loss
