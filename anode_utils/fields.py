"""Vector fields f(h, t) that count their own evaluations."""

import torch
from torch import nn

from ._checks import check_choice, check_pos_int

ACTIVATIONS = {"relu": nn.ReLU, "softplus": nn.Softplus, "tanh": nn.Tanh}


class CountingField(nn.Module):
    """Base class: ``self.nfe`` is incremented at every call of ``forward(t, h)``.

    Solvers call the field once per function evaluation, so reading and resetting
    ``nfe`` around a forward solve and around ``loss.backward()`` splits the cost into
    forward and backward NFE (see :func:`anode_utils.nfe.read_and_reset_nfe`).
    """

    def __init__(self):
        super().__init__()
        self.nfe = 0


class MLPField(CountingField):
    """MLP vector field f: R^dim (x R) -> R^dim, as in the paper's toy experiments.

    ``dim -> hidden -> ... -> hidden -> dim`` with ``num_hidden_layers`` hidden layers;
    when ``time_dependent`` the time t is fed as an extra input to the first layer.

    Shapes: ``forward(t, h)`` takes a scalar tensor ``t`` and ``h`` of shape
    (batch, dim) and returns (batch, dim).
    """

    def __init__(
        self,
        dim,
        hidden_dim=32,
        num_hidden_layers=2,
        time_dependent=True,
        activation="relu",
    ):
        super().__init__()
        self.dim = check_pos_int("dim", dim)
        self.hidden_dim = check_pos_int("hidden_dim", hidden_dim)
        num_hidden_layers = check_pos_int(
            "num_hidden_layers", num_hidden_layers
        )
        check_choice("activation", activation, tuple(ACTIVATIONS))
        self.time_dependent = bool(time_dependent)
        self.activation = activation
        layers = [
            nn.Linear(dim + int(self.time_dependent), hidden_dim),
            ACTIVATIONS[activation](),
        ]
        for _ in range(num_hidden_layers - 1):
            layers += [
                nn.Linear(hidden_dim, hidden_dim),
                ACTIVATIONS[activation](),
            ]
        layers.append(nn.Linear(hidden_dim, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, t, h):
        self.nfe += 1
        if self.time_dependent:
            # t as a first column: expand() is a view, no per-call allocation of a column
            h = torch.cat(
                [t.to(h).reshape(1, 1).expand(h.shape[0], 1), h], dim=1
            )
        return self.net(h)
