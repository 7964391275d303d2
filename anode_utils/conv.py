"""Convolutional NODEs and ANODEs for images (paper Section 5.2).

The hidden state is an image h(t) of shape (c, height, width); an ANODE appends p channels of
zeros, so the ODE is solved in R^{(c + p) x height x width}. The vector field is the paper's
1x1 conv -> 3x3 conv -> 1x1 conv with ReLUs; a linear map reads the class scores off the
flattened features h(T).
"""

import torch
from torch import nn

from ._checks import (
    check_choice,
    check_img_size,
    check_nonneg_int,
    check_pos_int,
)
from .fields import CountingField
from .ode import ODEBlock

#: Parameter-matched pairs of the paper: (num_filters, augment_dim) for NODE and ANODE.
#: Image sizes are (channels, height, width).
PRESETS = {
    "mnist": {"img_size": (1, 28, 28), "node": (92, 0), "anode": (64, 5)},
    "cifar10": {"img_size": (3, 32, 32), "node": (125, 0), "anode": (64, 10)},
    "svhn": {"img_size": (3, 32, 32), "node": (125, 0), "anode": (64, 10)},
}


class ConvField(CountingField):
    """f(h, t) for image states: 1x1 conv -> ReLU -> 3x3 conv (padding 1) -> ReLU -> 1x1 conv.

    ``channels`` is c + p, the channels of the state; ``num_filters`` the width of the
    hidden convolutions. With ``time_dependent`` the time t is appended as a constant extra
    input channel to each of the three convolutions (as in the authors' code).

    Shapes: ``forward(t, h)`` takes a scalar tensor ``t`` and ``h`` of shape
    (batch, channels, height, width) and returns the same shape.
    """

    def __init__(self, channels, num_filters, time_dependent=False):
        super().__init__()
        self.channels = check_pos_int("channels", channels)
        self.num_filters = check_pos_int("num_filters", num_filters)
        self.time_dependent = bool(time_dependent)
        k = int(self.time_dependent)
        self.conv1 = nn.Conv2d(channels + k, num_filters, kernel_size=1)
        self.conv2 = nn.Conv2d(
            num_filters + k, num_filters, kernel_size=3, padding=1
        )
        self.conv3 = nn.Conv2d(num_filters + k, channels, kernel_size=1)
        self.act = nn.ReLU(inplace=True)

    @property
    def dim(self):
        """The state's channel count (checked by :class:`ODEBlock` against c + p)."""
        return self.channels

    def _with_time(self, t, h):
        if not self.time_dependent:
            return h
        b, _, height, width = h.shape
        return torch.cat(
            [h, t.to(h).reshape(1, 1, 1, 1).expand(b, 1, height, width)], dim=1
        )

    def forward(self, t, h):
        self.nfe += 1
        if h.dim() != 4 or h.shape[1] != self.channels:
            raise ValueError(
                f"h must have shape (batch, {self.channels}, height, width); "
                f"got {tuple(h.shape)}"
            )
        out = self.act(self.conv1(self._with_time(t, h)))
        out = self.act(self.conv2(self._with_time(t, out)))
        return self.conv3(self._with_time(t, out))


def augment_channels(x, augment_dim):
    """Append ``augment_dim`` channels of zeros: (batch, c, h, w) -> (batch, c + p, h, w)."""
    augment_dim = check_nonneg_int("augment_dim", augment_dim)
    if augment_dim == 0:
        return x
    b, _, height, width = x.shape
    return torch.cat([x, x.new_zeros(b, augment_dim, height, width)], dim=1)


class ConvODEBlock(ODEBlock):
    """:class:`ODEBlock` for images: h(0) = [x, 0_p] along the channel axis, solved to T.

    Same solver keywords and :class:`~anode_utils.ode.SolverError` handling as ODEBlock
    (``solve`` is inherited); ``data_dim`` is the number of input channels c.
    Shapes: x (batch, c, height, width) -> h(T) (batch, c + p, height, width), or the
    trajectory (len(times), batch, c + p, height, width) when ``times`` is given.
    """

    def forward(self, x, times=None):
        if (
            not isinstance(x, torch.Tensor)
            or x.dim() != 4
            or x.shape[1] != self.data_dim
        ):
            shape = (
                tuple(x.shape)
                if isinstance(x, torch.Tensor)
                else type(x).__name__
            )
            raise ValueError(
                f"x must be a tensor of shape (batch, {self.data_dim}, height, width) "
                f"to match the model's {self.data_dim} input channels; got {shape}"
            )
        h0 = augment_channels(x, self.augment_dim)
        if times is None:
            t = torch.tensor([0.0, self.T], dtype=x.dtype, device=x.device)
            return self.solve(h0, t)[-1]
        return self.solve(
            h0, torch.as_tensor(times, dtype=x.dtype, device=x.device)
        )


class ConvODENet(nn.Module):
    """Image NODE (``augment_dim == 0``) or ANODE (p > 0 zero channels) with a linear readout.

    img_size : (c, height, width) of the inputs
    num_filters : width of the vector field's hidden convolutions
    augment_dim : p, zero channels appended before solving
    output_dim : number of classes (the readout maps (c + p) * height * width -> output_dim)
    time_dependent : feed t to the field as an extra channel
    solver keywords (method, rtol, atol, adjoint, T, step_size, max_num_steps, ...) go to
    :class:`ConvODEBlock`.

    Shapes: x (batch, c, height, width) -> logits (batch, output_dim).
    """

    def __init__(
        self,
        img_size,
        num_filters,
        augment_dim=0,
        output_dim=10,
        time_dependent=False,
        **solver,
    ):
        super().__init__()
        c, height, width = check_img_size(img_size)
        self.img_size = (c, height, width)
        augment_dim = check_nonneg_int("augment_dim", augment_dim)
        field = ConvField(c + augment_dim, num_filters, time_dependent)
        self.odeblock = ConvODEBlock(field, c, augment_dim, **solver)
        self.output_dim = check_pos_int("output_dim", output_dim)
        self.readout = nn.Linear(
            (c + augment_dim) * height * width, output_dim
        )

    @property
    def augment_dim(self):
        return self.odeblock.augment_dim

    @property
    def field(self):
        return self.odeblock.field

    def features(self, x):
        """h(T): (batch, c, height, width) -> (batch, c + p, height, width)."""
        return self.odeblock(x)

    def forward(self, x):
        return self.readout(self.odeblock(x).flatten(1))


def preset(dataset, model, img_size=None, **kwargs):
    """The paper's parameter-matched ConvODENet for ``dataset`` ('mnist', 'cifar10', 'svhn')
    and ``model`` ('node' or 'anode'): MNIST 92 filters vs 64 + 5 channels, CIFAR-10 and SVHN
    125 filters vs 64 + 10. ``img_size`` overrides the dataset's (e.g. downsampled images);
    other keywords go to :class:`ConvODENet`.
    """
    check_choice("dataset", dataset, tuple(PRESETS))
    check_choice("model", model, ("node", "anode"))
    num_filters, augment_dim = PRESETS[dataset][model]
    return ConvODENet(
        img_size or PRESETS[dataset]["img_size"],
        num_filters,
        augment_dim,
        **kwargs,
    )


class ReadoutNet(nn.Module):
    """The readout-only baseline (T = 0: no ODE block, no function evaluations): the linear
    map of :class:`ConvODENet` applied to the raw pixels, flattened.

    Shapes: x (batch, c, height, width) -> logits (batch, output_dim).
    """

    def __init__(self, img_size, output_dim=10):
        super().__init__()
        c, height, width = check_img_size(img_size)
        self.img_size = (c, height, width)
        self.output_dim = check_pos_int("output_dim", output_dim)
        self.readout = nn.Linear(c * height * width, self.output_dim)

    def forward(self, x):
        if (
            not isinstance(x, torch.Tensor)
            or x.dim() != 4
            or tuple(x.shape[1:]) != self.img_size
        ):
            shape = (
                tuple(x.shape)
                if isinstance(x, torch.Tensor)
                else type(x).__name__
            )
            raise ValueError(
                f"x must be a tensor of shape (batch, {', '.join(map(str, self.img_size))}); "
                f"got {shape}"
            )
        return self.readout(x.flatten(1))


__all__ = [
    "PRESETS",
    "ConvField",
    "ConvODEBlock",
    "ConvODENet",
    "ReadoutNet",
    "augment_channels",
    "preset",
]
