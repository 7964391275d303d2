"""Vector fields f(h, t) that count their own evaluations."""
import torch
from torch import nn
from torch.nn import functional as F

from ._checks import check_choice, check_pos_int

ACTIVATIONS = {"relu": nn.ReLU, "softplus": nn.Softplus, "tanh": nn.Tanh}
# what each activation module's forward calls (default arguments: Softplus(beta=1, threshold=20))
_ACTIVATION_FNS = {"relu": torch.relu, "softplus": F.softplus, "tanh": torch.tanh}
# the backward formulas autograd records for each activation (torch's derivatives.yaml):
# (grad, activation input, activation output) -> grad of the input
_ACTIVATION_VJPS = {
    "relu": lambda g, a, z: torch.ops.aten.threshold_backward(g, z, 0),
    "softplus": lambda g, a, z: torch.ops.aten.softplus_backward(g, a, 1, 20),
    "tanh": lambda g, a, z: torch.ops.aten.tanh_backward(g, z),
}


def apply_mlp(net, h, activation):
    """``net(h)`` for an ``nn.Sequential`` of Linear, activation, Linear, ..., Linear, calling
    ``F.linear`` and ``activation`` (the activation modules' function) directly: the same
    operations as ``net(h)``, so the same numbers, without ``nn.Module.__call__`` per layer
    (module hooks on the layers are not run)."""
    for i, layer in enumerate(net._modules.values()):
        if i % 2 == 0:
            # _parameters directly: layer.weight goes through nn.Module.__getattr__'s fallback
            w = layer._parameters
            h = F.linear(h, w["weight"], w["bias"])
        else:
            h = activation(h)
    return h


def apply_mlp_vjp(net, x, activation, v):
    """``(net(x), v^T d net(x) / dx)`` for an MLP as in :func:`apply_mlp`, the second by an
    explicit backward pass through the layers that stays differentiable.

    It records the operations ``torch.autograd.grad(net(x), x, v, create_graph=True)`` records
    (per layer ``grad.mm(weight.t().t())``, the activation's backward formula), in the same
    order, after the forward pass ``F.linear`` itself runs (``addmm(bias, x, weight.t())``), so
    values and the gradients of anything computed from them are the same bit for bit (tests);
    it saves autograd's call into the engine on every evaluation.

    x : (batch, in_features); v : (batch, out_features). Returns (batch, out_features) and
    (batch, in_features).
    """
    layers = list(net._modules.values())
    act, act_vjp = _ACTIVATION_FNS[activation], _ACTIVATION_VJPS[activation]
    weights_t, saved = [], []
    for i, layer in enumerate(layers):
        if i % 2 == 0:
            w = layer._parameters   # as in apply_mlp
            weights_t.append(w["weight"].t())
            x = torch.addmm(w["bias"], x, weights_t[-1])
        else:
            a = x
            x = act(a)
            saved.append((a, x))
    g = v
    for i in range(len(layers) - 1, -1, -1):
        g = g.mm(weights_t.pop().t()) if i % 2 == 0 else act_vjp(g, *saved.pop())
    return x, g


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

    def __init__(self, dim, hidden_dim=32, num_hidden_layers=2, time_dependent=True,
                 activation="relu"):
        super().__init__()
        self.dim = check_pos_int("dim", dim)
        self.hidden_dim = check_pos_int("hidden_dim", hidden_dim)
        num_hidden_layers = check_pos_int("num_hidden_layers", num_hidden_layers)
        check_choice("activation", activation, tuple(ACTIVATIONS))
        self.time_dependent = bool(time_dependent)
        self.activation = activation
        layers = [nn.Linear(dim + int(self.time_dependent), hidden_dim), ACTIVATIONS[activation]()]
        for _ in range(num_hidden_layers - 1):
            layers += [nn.Linear(hidden_dim, hidden_dim), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(hidden_dim, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, t, h):
        # The solver calls this 14-30 times a training step: apply_mlp and a counter set without
        # nn.Module.__setattr__ give the same numbers as net([t, h]) in about a fifth less time
        # per call at the toy sizes.
        self.__dict__["nfe"] += 1
        return apply_mlp(self.net, self._inputs(t, h), _ACTIVATION_FNS[self.activation])

    def _inputs(self, t, h):
        if self.time_dependent:
            # expand() is a view: no per-call allocation of a column of ones
            return torch.cat([t.to(h).reshape(1, 1).expand(h.shape[0], 1), h], dim=1)
        return h

    def forward_with_vjp(self, t, h, v):
        """``(f(t, h), v^T df/dh)``, both (batch, dim), as one counted evaluation.

        The same numbers, and the same gradients through them, as ``f = self(t, h)`` followed
        by ``torch.autograd.grad(f, h, v, create_graph=True)`` (``h`` requiring grad), without
        autograd's second pass: the Jacobian regulariser calls this at every evaluation."""
        self.__dict__["nfe"] += 1
        out, g = apply_mlp_vjp(self.net, self._inputs(t, h), self.activation, v)
        # the time column's share of the input gradient is dropped, as cat's backward does
        return out, (g[:, 1:] if self.time_dependent else g)
