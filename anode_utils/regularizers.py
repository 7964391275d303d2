"""Regularisers that make flows cheaper to solve.

* kinetic energy  int_0^T ||f(h, t)||^2 dt and Jacobian Frobenius norm
  int_0^T ||df/dh||_F^2 dt (Finlay et al., 2020), both integrated alongside the state; the
  Frobenius norm is estimated with Hutchinson's estimator ||eps^T df/dh||^2, eps ~ N(0, I);
* random end times: T' ~ U[T - jitter, T + jitter] at each training step (Ghosh et al., 2020);
* weight decay is the optimiser's ``weight_decay`` (paper appendix).
"""

import torch
from torch import nn

from ._checks import check_batch, check_data, check_nonneg, float_dtype
from .ode import ODEBlock, augment


def hutchinson_trace(out, h, eps):
    """Unbiased estimate of tr(d out / d h) per row: eps^T (d out/d h) eps.

    out, h, eps : (batch, d); ``out`` must be computed from ``h`` with the graph kept.
    """
    vjp = torch.autograd.grad(out, h, eps, create_graph=True)[0]
    return (vjp * eps).sum(dim=1)


def jacobian_trace(fn, h):
    """``(fn(h), tr(d fn(h) / dh))`` per row, exact: one autograd pass per coordinate (rows
    must not interact, true for MLP fields, so the sum over the batch is differentiated).
    h : (batch, d). Returns fn(h) detached, (batch, d), and the traces, (batch,)."""
    with torch.enable_grad():
        h = h.detach().requires_grad_(True)
        out = fn(h)
        tr = torch.zeros(h.shape[0], dtype=h.dtype, device=h.device)
        for i in range(h.shape[1]):
            tr = (
                tr
                + torch.autograd.grad(
                    out[:, i].sum(), h, retain_graph=i < h.shape[1] - 1
                )[0][:, i]
            )
    return out.detach(), tr


def exact_trace(fn, h):
    """tr(d fn(h) / d h) per row (:func:`jacobian_trace`); for testing the estimator."""
    return jacobian_trace(fn, h)[1]


class RegularizedField(nn.Module):
    """State [h, E, J]: dh/dt = f(h, t), dE/dt = ||f||^2, dJ/dt = ||eps^T df/dh||^2.

    ``eps`` is drawn once per solve (set by the owner before solving). The wrapped field keeps
    counting its evaluations, so NFE bookkeeping is unchanged. z: (batch, dim + 2).
    """

    def __init__(self, field):
        super().__init__()
        self.inner = field
        self.dim = field.dim + 2
        self.eps = None

    def forward(self, t, z):
        with torch.enable_grad():
            h = z[:, :-2]
            if not h.requires_grad:
                h = h.detach().requires_grad_(True)
            dh = self.inner(t, h)
            kinetic = dh.pow(2).sum(dim=1, keepdim=True)
            # eps^T df/dh, kept differentiable so that the penalty trains the field
            vjp = torch.autograd.grad(dh, h, self.eps, create_graph=True)[0]
            jac = vjp.pow(2).sum(dim=1, keepdim=True)
        return torch.cat([dh, kinetic, jac], dim=1)


class RegularizedODENet(nn.Module):
    """Wrap an :class:`~anode_utils.models.ODENet` (NODE or ANODE) with cheap-flow regularisers.

    In training mode ``forward`` also sets ``self.penalty`` = kinetic * E_T + jacobian * J_T
    (batch means), which :func:`anode_utils.training.train` adds to the loss, and draws a
    random end time when ``end_time_jitter > 0``. In eval mode it is the plain model.
    ``generator`` : the ``torch.Generator`` the random end times and Hutchinson probes are
    drawn from (on the inputs' device); None draws from torch's global generator.
    Shapes: x (batch, d) -> (batch, output_dim).
    """

    def __init__(
        self,
        model,
        kinetic=0.0,
        jacobian=0.0,
        end_time_jitter=0.0,
        generator=None,
    ):
        super().__init__()
        if generator is not None and not isinstance(
            generator, torch.Generator
        ):
            raise ValueError(
                f"generator must be a torch.Generator or None; got {generator!r}"
            )
        if not isinstance(getattr(model, "odeblock", None), ODEBlock):
            raise ValueError(
                f"model must be an ODE model with an .odeblock (e.g. an ODENet); "
                f"got {type(model).__name__}"
            )
        self.generator = generator
        self.model = model
        for name, v in (
            ("kinetic", kinetic),
            ("jacobian", jacobian),
            ("end_time_jitter", end_time_jitter),
        ):
            check_nonneg(name, v)
        if end_time_jitter >= model.odeblock.T:
            raise ValueError(
                f"end_time_jitter must be smaller than T = {model.odeblock.T}; got {end_time_jitter}"
            )
        self.kinetic, self.jacobian, self.end_time_jitter = (
            kinetic,
            jacobian,
            end_time_jitter,
        )
        blk = model.odeblock
        self.regfield = RegularizedField(blk.field)
        self.regblock = ODEBlock(
            self.regfield,
            blk.state_dim + 2,
            0,
            T=blk.T,
            method=blk.method,
            rtol=blk.rtol,
            atol=blk.atol,
            adjoint=blk.adjoint,
            adjoint_rtol=blk.adjoint_rtol,
            adjoint_atol=blk.adjoint_atol,
            step_size=blk.step_size,
            max_num_steps=blk.max_num_steps,
            backend=blk.backend,
        )
        self.penalty = None

    @property
    def field(self):
        return self.model.field

    @property
    def odeblock(self):
        """The wrapped model's ODE block (its solver settings apply to both solves)."""
        return self.model.odeblock

    def _end_time(self):
        T = self.model.odeblock.T
        if self.training and self.end_time_jitter > 0:
            u = torch.rand((), generator=self.generator).item()
            return T + self.end_time_jitter * (2 * u - 1)
        return T

    def forward(self, x):
        blk = self.model.odeblock
        check_data(check_batch(x, blk.data_dim), "x", float_dtype(self))
        T = self._end_time()
        if not self.training or (self.kinetic == 0 and self.jacobian == 0):
            self.penalty = None
            h0 = augment(x, blk.augment_dim)
            h = blk.solve(h0, torch.tensor([0.0, T], dtype=x.dtype))[-1]
            return self.model.readout(h)
        h0 = augment(x, blk.augment_dim)
        z0 = torch.cat([h0, h0.new_zeros(h0.shape[0], 2)], dim=1)
        self.regfield.eps = torch.randn(
            h0.shape,
            dtype=h0.dtype,
            device=h0.device,
            generator=self.generator,
        )
        zT = self.regblock.solve(z0, torch.tensor([0.0, T], dtype=x.dtype))[-1]
        self.penalty = (
            self.kinetic * zT[:, -2].mean() + self.jacobian * zT[:, -1].mean()
        )
        return self.model.readout(zT[:, :-2])
