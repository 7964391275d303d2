"""NODE / ANODE (ODE block + linear readout) and the discrete ResNet baseline."""

import torch
from torch import nn

from ._checks import (
    check_batch,
    check_data,
    check_nonneg_int,
    check_pos_int,
    check_positive,
    float_dtype,
)
from .fields import CountingField, MLPField
from .ode import ODEBlock, augment


class ODENet(nn.Module):
    """g(x) = L(phi_T([x, 0_p])): a NODE when ``augment_dim == 0``, an ANODE when p > 0.

    Shapes: x (batch, data_dim) -> (batch, output_dim). With ``readout=False`` the model
    returns the features h(T) itself, (batch, data_dim + augment_dim): a bare ODE flow.
    Solver keywords (method, rtol, atol, adjoint, T, step_size, ...) go to :class:`ODEBlock`.
    """

    def __init__(
        self,
        data_dim,
        output_dim=1,
        hidden_dim=32,
        augment_dim=0,
        time_dependent=True,
        num_hidden_layers=2,
        activation="relu",
        readout=True,
        **solver,
    ):
        super().__init__()
        data_dim = check_pos_int("data_dim", data_dim)
        augment_dim = check_nonneg_int("augment_dim", augment_dim)
        field = MLPField(
            data_dim + augment_dim,
            hidden_dim,
            num_hidden_layers,
            time_dependent,
            activation,
        )
        self.odeblock = ODEBlock(field, data_dim, augment_dim, **solver)
        self.output_dim = check_pos_int("output_dim", output_dim)
        if readout:
            self.readout = nn.Linear(data_dim + augment_dim, output_dim)
        else:
            if output_dim != data_dim + augment_dim:
                raise ValueError(
                    f"readout=False returns the features, so output_dim must equal "
                    f"data_dim + augment_dim = {data_dim + augment_dim}; got {output_dim}"
                )
            self.readout = nn.Identity()

    @property
    def data_dim(self):
        return self.odeblock.data_dim

    @property
    def augment_dim(self):
        return self.odeblock.augment_dim

    @property
    def field(self):
        return self.odeblock.field

    def features(self, x):
        """phi_T(x): (batch, data_dim) -> (batch, data_dim + augment_dim)."""
        return self.odeblock(x)

    def trajectory(self, x, times):
        """h(t) at ``times``: (batch, data_dim) -> (len(times), batch, data_dim + augment_dim)."""
        return self.odeblock(x, times)

    def forward(self, x):
        return self.readout(self.odeblock(x))


class ResidualBlock(CountingField):
    """One ResNet layer's residual function f_k(h); counts evaluations like a field.

    The authors' block: f_k(h) = ReLU(W2 ReLU(W1 h + b1) + b2), one hidden layer of
    ``hidden_dim`` units. ``out_relu=False`` drops the outer ReLU, so that a block can move
    h down as well as up (with it, a ResNet without readout only ever increases h).
    Shapes: h (batch, dim) -> (batch, dim).
    """

    def __init__(self, dim, hidden_dim, out_relu=True):
        super().__init__()
        self.dim = dim
        layers = [
            nn.Linear(dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, dim),
        ]
        self.net = nn.Sequential(*layers, *([nn.ReLU()] if out_relu else []))

    def forward(self, t, h):
        self.nfe += 1
        return self.net(h)


class ResNet(nn.Module):
    """Discrete baseline: h_{k+1} = h_k + dt * f_k(h_k), k = 0..num_layers-1, dt = T / num_layers.

    The authors' toy ResNet by default: 5 blocks, each its own :class:`ResidualBlock` (hidden
    width 32, outer ReLU), then a linear readout; with ``dt = 1`` (T None) this is the usual
    residual update. Parameters: L (2 d h + h + d) + d + 1 for data_dim d, hidden h, L
    layers and output 1. Same readout/augmentation conventions as :class:`ODENet`.
    Shapes: x (batch, data_dim) -> (batch, output_dim).
    """

    def __init__(
        self,
        data_dim,
        output_dim=1,
        hidden_dim=32,
        num_layers=5,
        augment_dim=0,
        T=None,
        readout=True,
        out_relu=True,
    ):
        super().__init__()
        self.data_dim = check_pos_int("data_dim", data_dim)
        self.augment_dim = check_nonneg_int("augment_dim", augment_dim)
        self.num_layers = check_pos_int("num_layers", num_layers)
        self.dt = 1.0 if T is None else check_positive("T", T) / num_layers
        dim = data_dim + augment_dim
        hidden_dim = check_pos_int("hidden_dim", hidden_dim)
        if not isinstance(out_relu, bool):
            raise ValueError(
                f"out_relu must be True or False; got {out_relu!r}"
            )
        self.blocks = nn.ModuleList(
            ResidualBlock(dim, hidden_dim, out_relu) for _ in range(num_layers)
        )
        if readout:
            self.readout = nn.Linear(
                dim, check_pos_int("output_dim", output_dim)
            )
        else:
            if output_dim != dim:
                raise ValueError(
                    f"readout=False returns the features, so output_dim must equal "
                    f"data_dim + augment_dim = {dim}; got {output_dim}"
                )
            self.readout = nn.Identity()

    def trajectory(self, x):
        """Hidden states h_0..h_L: (batch, data_dim) -> (num_layers + 1, batch, dim).

        x must be non-empty, finite and of the parameters' dtype (ValueError otherwise)."""
        states = []
        self._run(x, states)
        return torch.stack(states)

    def features(self, x):
        """h_L: (batch, data_dim) -> (batch, dim), without stacking the hidden states."""
        return self._run(x)

    def _run(self, x, states=None):
        """h_L, appending h_0..h_L to ``states`` when given."""
        check_data(check_batch(x, self.data_dim), "x", float_dtype(self))
        h = augment(x, self.augment_dim)
        for block in self.blocks:
            if states is not None:
                states.append(h)
            # dt = 1 (the usual residual update) skips a multiplication by 1.0: the same numbers,
            # one operation and its backward fewer per layer
            h = h + (
                block(None, h) if self.dt == 1.0 else self.dt * block(None, h)
            )
        if states is not None:
            states.append(h)
        return h

    def forward(self, x):
        return self.readout(self.features(x))


def count_parameters(model):
    """Number of trainable parameters."""
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module; got {type(model).__name__}"
        )
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
