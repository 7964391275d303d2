"""Other ways to augment: a learned lift of the input, and second-order dynamics.

Both keep the interface of :class:`~anode_utils.models.ODENet` (``odeblock``, ``field``,
``features``, ``trajectory``, ``forward``), so training, NFE counting and plots work
unchanged.
"""

import torch
from torch import nn

from ._checks import check_pos_int
from .fields import ACTIVATIONS, CountingField, MLPField
from .ode import ODEBlock


class _FlowModel(nn.Module):
    """Shared plumbing: an ODE block on an initial state built by ``initial_state``."""

    @property
    def field(self):
        return self.odeblock.field

    def initial_state(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def features(self, x):
        return self.trajectory(x, torch.tensor([0.0, self.odeblock.T]))[-1]

    def trajectory(self, x, times):
        """(batch, data_dim) -> (len(times), batch, state_dim)."""
        from ._checks import check_batch, check_data, float_dtype

        check_data(check_batch(x, self.data_dim), "x", float_dtype(self))
        h0 = self.initial_state(x)
        return self.odeblock.solve(
            h0, torch.as_tensor(times, dtype=x.dtype, device=x.device)
        )

    def forward(self, x):
        return self.readout(self.features(x))


class LearnedAugmentODENet(_FlowModel):
    """Lift x to [x, A x + b] in R^(d+p) with a learned linear map, then flow and read out.

    With A = 0 and b = 0 (the initialisation) this is exactly zero augmentation (ANODE);
    training may move the lift away from zero. Shapes: x (batch, d) -> (batch, output_dim).
    """

    def __init__(
        self,
        data_dim,
        output_dim=1,
        hidden_dim=32,
        augment_dim=1,
        time_dependent=True,
        **solver,
    ):
        super().__init__()
        self.data_dim = check_pos_int("data_dim", data_dim)
        self.augment_dim = check_pos_int("augment_dim", augment_dim)
        dim = data_dim + augment_dim
        self.lift = nn.Linear(data_dim, augment_dim)
        nn.init.zeros_(self.lift.weight)
        nn.init.zeros_(self.lift.bias)
        self.odeblock = ODEBlock(
            MLPField(dim, hidden_dim, time_dependent=time_dependent),
            dim,
            0,
            **solver,
        )
        self.readout = nn.Linear(dim, check_pos_int("output_dim", output_dim))

    def initial_state(self, x):
        return torch.cat([x, self.lift(x)], dim=1)


class SecondOrderField(CountingField):
    """Second-order dynamics d^2h/dt^2 = g(h, v, t) as a first-order system on z = [h, v]:
    dz/dt = [v, g(h, v, t)]. ``forward(t, z)``: z (batch, 2d) -> (batch, 2d)."""

    def __init__(
        self, data_dim, hidden_dim=32, time_dependent=True, activation="relu"
    ):
        super().__init__()
        self.data_dim = data_dim
        self.dim = 2 * data_dim
        self.time_dependent = time_dependent
        act = ACTIVATIONS[activation]
        self.net = nn.Sequential(
            nn.Linear(2 * data_dim + int(time_dependent), hidden_dim),
            act(),
            nn.Linear(hidden_dim, hidden_dim),
            act(),
            nn.Linear(hidden_dim, data_dim),
        )

    def forward(self, t, z):
        self.nfe += 1
        inp = z
        if self.time_dependent:
            inp = torch.cat(
                [t.to(z).reshape(1, 1).expand(z.shape[0], 1), z], dim=1
            )
        return torch.cat([z[:, self.data_dim :], self.net(inp)], dim=1)


class SecondOrderODENet(_FlowModel):
    """Second-order ODE (SONODE, Norcliffe et al., 2020): d^2h/dt^2 = g(h, v, t).

    Position h(0) = x; velocity v(0) = W x + b learned from the input (``initial_velocity=
    "learned"``, Norcliffe et al.'s choice; W, b start at zero, so training starts from v(0) = 0)
    or fixed at 0 (``"zero"``); the class scores are read off the position h(T) alone
    (``readout="position"``, theirs) or the whole state [h(T), v(T)] (``"state"``, which makes
    the model an ANODE with p = d whose extra coordinates are constrained to be a velocity).
    Shapes: x (batch, d) -> (batch, output_dim).
    """

    def __init__(
        self,
        data_dim,
        output_dim=1,
        hidden_dim=32,
        time_dependent=True,
        initial_velocity="learned",
        readout="position",
        **solver,
    ):
        super().__init__()
        self.data_dim = check_pos_int("data_dim", data_dim)
        self.augment_dim = data_dim
        if initial_velocity not in ("learned", "zero"):
            raise ValueError(
                f"initial_velocity must be 'learned' or 'zero'; got {initial_velocity!r}"
            )
        if readout not in ("position", "state"):
            raise ValueError(
                f"readout must be 'position' or 'state'; got {readout!r}"
            )
        self.odeblock = ODEBlock(
            SecondOrderField(data_dim, hidden_dim, time_dependent),
            2 * data_dim,
            0,
            **solver,
        )
        self.velocity = None
        if initial_velocity == "learned":
            self.velocity = nn.Linear(data_dim, data_dim)
            nn.init.zeros_(self.velocity.weight)
            nn.init.zeros_(self.velocity.bias)
        self.read_position = readout == "position"
        self.readout = nn.Linear(
            data_dim if self.read_position else 2 * data_dim,
            check_pos_int("output_dim", output_dim),
        )

    def initial_state(self, x):
        v0 = torch.zeros_like(x) if self.velocity is None else self.velocity(x)
        return torch.cat([x, v0], dim=1)

    def forward(self, x):
        z = self.features(x)
        return self.readout(z[:, : self.data_dim] if self.read_position else z)


def matched_hidden_dim(build, target_params, lo=2, hi=512):
    """Largest hidden width whose model ``build(hidden_dim)`` has <= target_params parameters.

    Used to compare augmentation variants at (nearly) equal parameter counts.
    """
    if not callable(build):
        raise TypeError(
            f"build must be callable as build(hidden_dim) -> model; got {type(build).__name__}"
        )
    check_pos_int("target_params", target_params)
    lo, hi = check_pos_int("lo", lo), check_pos_int("hi", hi)
    if lo > hi:
        raise ValueError(f"lo must be <= hi; got lo={lo}, hi={hi}")
    best = None
    for h in range(lo, hi + 1):
        n = sum(p.numel() for p in build(h).parameters())
        if n > target_params:
            break
        best = h
    if best is None:
        raise ValueError(
            f"no hidden width in [{lo}, {hi}] gives <= target_params="
            f"{target_params} parameters"
        )
    return best
