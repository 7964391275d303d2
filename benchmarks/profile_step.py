"""Where a training step's time goes: the solver's overhead around the vector field.

    python benchmarks/profile_step.py                      # toy NODE/ANODE, every backend
    python benchmarks/profile_step.py --image              # and one MNIST ANODE image step
    python benchmarks/profile_step.py --compile            # and torch.compile'd fields
    python benchmarks/profile_step.py --ops                # and torch.profiler's top operators
    python benchmarks/profile_step.py --live-images        # and chapter 7's live image pair
    python benchmarks/profile_step.py --floor              # and the solver's cost per step alone

A step is: forward solve + loss, backward through the solver, Adam step. Its field time is
what the same field evaluations cost alone: the inputs (t, h) of every evaluation of the step
are recorded (in an untimed pass, same weights and batch, so the same steps), then replayed
with autograd (each h a leaf that requires grad, as in the solve) and backpropagated in one
call. ``ratio`` = step time / field time: 1 would be a solver with no overhead at all.
The replay runs the evaluations back to back, with warm caches; the column ``(in situ)`` times
the same forward evaluations where they run, between the solver's own operations, to show how
much of the difference is the field itself running slower there rather than solver work.

Backends run in lockstep on the same batches, interleaved (A, B, A, B, ...) so that load from
other processes hits them alike; each has its own copy of the seeded model and optimizer, and
the script checks that their NFE agree. Medians over iterations. One CPU thread. Times are
this process's CPU time (``time.process_time``; ``--clock wall`` for wall-clock time): on a
shared machine, waiting for a core inflates wall-clock times but not CPU time.
"""

import argparse
import copy
import statistics
import time

import torch

import anode_utils as au
from anode_utils.data import batches
from anode_utils.fields import CountingField
from anode_utils.solvers import BACKEND_NAMES as TOY_BACKENDS

CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = CLOCKS["cpu"]


class CompiledField(CountingField):
    """An MLPField whose body (time column + MLP) runs through ``torch.compile``; the NFE is
    counted outside the compiled code (an integer attribute would be a guard, recompiling at
    every call)."""

    def __init__(self, field):
        super().__init__()
        if not isinstance(field, au.MLPField):
            raise TypeError("CompiledField wraps an MLPField")
        self.dim, self.net, self.time_dependent = (
            field.dim,
            field.net,
            field.time_dependent,
        )

        def body(t, h):
            if self.time_dependent:
                h = torch.cat(
                    [t.to(h).reshape(1, 1).expand(h.shape[0], 1), h], dim=1
                )
            return self.net(h)

        self.body = torch.compile(body, dynamic=False)

    def forward(self, t, h):
        self.nfe += 1
        return self.body(t, h)


def _record_inputs(model, xb):
    """(t, h) of every field evaluation of ``model(xb)``, detached."""
    field = model.field
    calls = []
    hook = field.register_forward_pre_hook(
        lambda m, args: calls.append(
            (args[0].detach().clone(), args[1].detach().clone())
        )
    )
    try:
        with torch.no_grad():
            model(xb)
    finally:
        hook.remove()
    au.reset_nfe(model)
    return calls


def _replay(field, calls, backward=True):
    """Seconds for the field evaluations ``calls`` with autograd (+ one backward pass).

    Each recorded state is a leaf that requires grad, as the solver's stage states do, and
    the backward pass computes the gradients with respect to the states and the parameters
    (``autograd.grad``: nothing is accumulated into ``.grad``)."""
    hs = [h.requires_grad_() for _, h in calls]
    params = [p for p in field.parameters() if p.requires_grad]
    grads = [
        torch.ones_like(h) for h in hs
    ]  # a field's output has its input's shape
    t0 = _clock()
    outs = [field(t, h) for (t, _), h in zip(calls, hs)]
    if backward:
        torch.autograd.grad(outs, params + hs, grads)
    sec = _clock() - t0
    for h in hs:
        h.requires_grad_(False)
    return sec


def _time_field_calls(field):
    """Time each forward call of ``field`` where it happens, inside the solve (a list that
    fills up; ``del field.forward`` ends it). Costs two clock reads a call."""
    times, forward = [], field.forward

    def timed(t, h):
        t0 = _clock()
        out = forward(t, h)
        times.append(_clock() - t0)
        return out

    field.forward = timed
    return times


class Runner:
    """One backend's model and optimizer, stepped and timed phase by phase."""

    def __init__(
        self,
        name,
        model,
        loss_fn,
        lr=1e-3,
        memory_format=None,
        fused_adam=False,
    ):
        self.name, self.model, self.loss_fn = name, model, loss_fn
        self.memory_format = memory_format
        if memory_format is not None:
            model.to(memory_format=memory_format)
        # Adam as anode_utils.train builds it (foreach); fused: torch's one
        # kernel over all parameters, the same update rounded differently, so the weights drift
        # apart from the other run's by rounding
        self.opt = (
            torch.optim.Adam(model.parameters(), lr=lr, fused=True)
            if fused_adam
            else torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
        )
        self.rows = []

    def step(self, xb, yb, replay=True):
        model = self.model
        if self.memory_format is not None:
            xb = xb.contiguous(memory_format=self.memory_format)
        calls = _record_inputs(model, xb) if replay else None
        in_situ = _time_field_calls(model.field) if replay else None
        t0 = _clock()
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(model(xb), yb)
        t1 = _clock()
        loss.backward()
        t2 = _clock()
        self.opt.step()
        t3 = _clock()
        nfe = au.read_and_reset_nfe(model)
        row = {
            "step": t3 - t0,
            "forward": t1 - t0,
            "backward": t2 - t1,
            "optimizer": t3 - t2,
            "nfe": nfe,
        }
        if replay:
            del model.field.forward
            row["field_fwd_in_situ"] = sum(in_situ)
        if replay:
            row["field_fwd"] = _replay(model.field, calls, backward=False)
            row["field"] = _replay(model.field, calls)
            au.reset_nfe(model)
        self.rows.append(row)
        return row

    def summary(self):
        med = {
            k: statistics.median(r[k] for r in self.rows) for k in self.rows[0]
        }
        # the ratio of medians would mix iterations of different NFE: take the median ratio
        med["ratio"] = statistics.median(
            r["step"] / r["field"] for r in self.rows
        )
        med["nfe"] = statistics.mean(r["nfe"] for r in self.rows)
        return med


def _lockstep(runners, data, warmup=2):
    """Step every runner on each batch in turn; check that their NFE agree."""
    mismatches = 0
    for i, (xb, yb) in enumerate(data):
        rows = [r.step(xb, yb) for r in runners]
        if len({row["nfe"] for row in rows}) > 1:
            mismatches += 1
        if i < warmup:  # first calls allocate, compile, fill caches
            for r in runners:
                r.rows.clear()
    return mismatches


def toy_profile(
    model_name="node",
    augment_dim=0,
    iters=30,
    backends=TOY_BACKENDS,
    compile_field=False,
    fused_adam=False,
):
    """Per-backend medians for training steps of the toy configuration of benchmarks/README.md; with
    ``fused_adam`` also each backend with Adam's fused implementation ("+fused Adam")."""
    torch.set_num_threads(1)
    cfg = au.make_config(model=model_name, augment_dim=augment_dim)
    (x, y), _ = au.make_data(cfg)
    base = au.make_model(cfg)
    runners = []
    for backend in backends:
        model = copy.deepcopy(base)
        model.odeblock.backend = backend
        runners.append(Runner(backend, model, torch.nn.MSELoss(), cfg["lr"]))
        if fused_adam:
            model = copy.deepcopy(base)
            model.odeblock.backend = backend
            runners.append(
                Runner(
                    backend + "+fused Adam",
                    model,
                    torch.nn.MSELoss(),
                    cfg["lr"],
                    fused_adam=True,
                )
            )
        if compile_field:
            model = copy.deepcopy(base)
            model.odeblock.backend = backend
            model.odeblock.field = CompiledField(model.odeblock.field)
            runners.append(
                Runner(
                    backend + "+compile", model, torch.nn.MSELoss(), cfg["lr"]
                )
            )
    gen = torch.Generator().manual_seed(cfg["seed"])
    data = []
    while len(data) < iters + 2:
        data += list(batches(x, y, cfg["batch_size"], gen))
    mismatches = _lockstep(runners, data[: iters + 2])
    return {r.name: r.summary() for r in runners}, mismatches


def image_profile(iters=2, batch_size=32, backends=TOY_BACKENDS):
    """The same for one MNIST ANODE (64 filters, 5 augmented channels) on random inputs."""
    from anode_utils import conv

    torch.set_num_threads(1)
    torch.manual_seed(0)
    base = conv.preset("mnist", "anode")
    x = torch.rand(
        batch_size, 1, 28, 28, generator=torch.Generator().manual_seed(0)
    )
    y = torch.randint(
        0, 10, (batch_size,), generator=torch.Generator().manual_seed(1)
    )
    runners = []
    for backend in backends:
        model = copy.deepcopy(base)
        model.odeblock.backend = backend
        runners.append(Runner(backend, model, torch.nn.CrossEntropyLoss()))
    mismatches = _lockstep(runners, [(x, y)] * (iters + 1), warmup=1)
    return {r.name: r.summary() for r in runners}, mismatches


def solver_floor(iters=300, backends=TOY_BACKENDS):
    """What a dopri5 solve costs around a field that costs almost nothing: the toy state
    (64 x 3, float32) under dh/dt = h A (one 3 x 3 matmul a call), solved over [0, 1] with
    rtol = atol = 1e-3 as the toy models are, forward and backward to A. Returns
    {backend: {"forward": s, "backward": s, "steps": accepted + rejected, "nfe": n}} (medians);
    the per-step figures are the solver's own cost, which no faster field can remove."""
    from torchdiffeq import odeint

    from anode_utils.dopri5 import odeint_dopri5

    torch.set_num_threads(1)
    a = (
        torch.randn(3, 3, generator=torch.Generator().manual_seed(0))
        .mul_(0.5)
        .requires_grad_()
    )
    y0 = torch.randn(64, 3, generator=torch.Generator().manual_seed(1))
    times = torch.tensor([0.0, 1.0])
    calls = [0]

    def field(t, h):
        calls[0] += 1
        return h @ a

    solvers = {
        "torchdiffeq": lambda: odeint(
            field, y0, times, rtol=1e-3, atol=1e-3, method="dopri5"
        ),
        "lean": lambda: odeint_dopri5(field, y0, times, 1e-3, 1e-3),
    }
    rows = {b: {"forward": [], "backward": []} for b in backends}
    nfe = {}
    for i in range(iters + 20):
        for b in backends:  # interleaved, as the training steps above
            calls[0] = 0
            t0 = _clock()
            out = solvers[b]()[-1]
            t1 = _clock()
            out.sum().backward()
            t2 = _clock()
            a.grad = None
            nfe[b] = calls[0]
            if i >= 20:
                rows[b]["forward"].append(t1 - t0)
                rows[b]["backward"].append(t2 - t1)
    return {
        b: {
            "forward": statistics.median(r["forward"]),
            "backward": statistics.median(r["backward"]),
            "nfe": nfe[b],
            "steps": (nfe[b] - 2) // 6,
        }
        for b, r in rows.items()
    }


def format_floor(floor):
    lines = [
        f"{'backend':12} {'NFE':>4} {'steps':>5} {'fwd us/step':>12} {'bwd us/step':>12}"
    ]
    for b, r in floor.items():
        lines.append(
            f"{b:12} {r['nfe']:4d} {r['steps']:5d} {1e6 * r['forward'] / r['steps']:12.0f} "
            f"{1e6 * r['backward'] / r['steps']:12.0f}"
        )
    return lines


#: Chapter 7's live pair (MNIST at 14 x 14, batch 64, no time input): NODE 22 filters vs
#: ANODE 8 filters + 2 channels.
LIVE_PAIR = {"node14": (22, 0), "anode14": (8, 2)}


def live_image_profile(iters=3, backends=TOY_BACKENDS):
    """Chapter 7's live pair on random inputs, per backend, in the default (contiguous) and the
    channels-last memory format: {model: {variant: medians}}, {model: NFE mismatches}."""
    from anode_utils import conv

    torch.set_num_threads(1)
    x = torch.rand(64, 1, 14, 14, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(1))
    out, bad = {}, {}
    for name, (filters, p) in LIVE_PAIR.items():
        torch.manual_seed(0)
        base = conv.ConvODENet((1, 14, 14), filters, p)
        runners = []
        for backend in backends:
            for fmt in (None, torch.channels_last):
                model = copy.deepcopy(base)
                model.odeblock.backend = backend
                runners.append(
                    Runner(
                        backend + ("+channels_last" if fmt else ""),
                        model,
                        torch.nn.CrossEntropyLoss(),
                        memory_format=fmt,
                    )
                )
        bad[name] = _lockstep(runners, [(x, y)] * (iters + 1), warmup=1)
        out[name] = {r.name: r.summary() for r in runners}
    return out, bad


def op_table(model_name="node", augment_dim=0, backend="torchdiffeq", rows=15):
    """torch.profiler's operators of a few toy steps, by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(1)
    cfg = au.make_config(model=model_name, augment_dim=augment_dim)
    (x, y), _ = au.make_data(cfg)
    model = au.make_model(cfg)
    model.odeblock.backend = backend
    runner = Runner(backend, model, torch.nn.MSELoss())
    xb, yb = x[:64], y[:64]
    for _ in range(3):
        runner.step(xb, yb, replay=False)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            runner.step(xb, yb, replay=False)
    return prof.key_averages().table(
        sort_by="self_cpu_time_total", row_limit=rows
    )


HEADER = (
    f"{'model':7} {'backend':26} {'ms/step':>8} {'fwd':>7} {'bwd':>7} {'opt':>6} "
    f"{'field ms':>9} {'(fwd)':>7} {'(in situ)':>9} {'other':>7} {'ratio':>6} {'NFE':>6}"
)


def format_rows(model_name, summary):
    lines = []
    for backend, m in summary.items():
        lines.append(
            f"{model_name:7} {backend:26} {1e3 * m['step']:8.2f} {1e3 * m['forward']:7.2f} "
            f"{1e3 * m['backward']:7.2f} {1e3 * m['optimizer']:6.2f} "
            f"{1e3 * m['field']:9.2f} {1e3 * m['field_fwd']:7.2f} "
            f"{1e3 * m['field_fwd_in_situ']:9.2f} "
            f"{1e3 * (m['step'] - m['field'] - m['optimizer']):7.2f} {m['ratio']:6.2f} "
            f"{m['nfe']:6.1f}"
        )
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--iters",
        type=int,
        default=30,
        help="timed toy iterations per backend",
    )
    ap.add_argument("--backends", default=",".join(TOY_BACKENDS))
    ap.add_argument(
        "--compile", action="store_true", help="also torch.compile'd fields"
    )
    ap.add_argument(
        "--image", action="store_true", help="also one MNIST ANODE image step"
    )
    ap.add_argument(
        "--ops",
        action="store_true",
        help="also torch.profiler's operator tables",
    )
    ap.add_argument(
        "--fused-adam",
        action="store_true",
        help="also each toy backend with Adam's fused implementation",
    )
    ap.add_argument(
        "--floor",
        action="store_true",
        help="also the solver's own cost per step, around an almost free field",
    )
    ap.add_argument(
        "--live-images",
        action="store_true",
        help="also chapter 7's live image pair, per backend and memory format",
    )
    ap.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="cpu",
        help="cpu: this process's CPU time (default); wall: wall-clock time",
    )
    args = ap.parse_args(argv)
    global _clock
    _clock = CLOCKS[args.clock]
    backends = tuple(b for b in args.backends.split(",") if b)
    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, 1 thread, {args.clock} time. Medians; ms per training step, "
        f"its phases (forward solve + loss, backward, Adam), the field's own time (forward + "
        f"backward of the step's evaluations, and forward alone), (in situ) = the same forward "
        f"evaluations timed where they run, inside the solve, other = step - field - Adam "
        f"(the solver's overhead, forward and backward), ratio = step / field, forward NFE."
    )
    print(HEADER)
    for name, p in (("node", 0), ("anode", 1)):
        summary, bad = toy_profile(
            name, p, args.iters, backends, args.compile, args.fused_adam
        )
        print("\n".join(format_rows(name, summary)), flush=True)
        if bad:
            print(f"  NFE differed between backends at {bad} iterations")
    if args.image:
        summary, bad = image_profile(backends=backends)
        print("\n".join(format_rows("mnist32", summary)), flush=True)
        if bad:
            print(f"  NFE differed between backends at {bad} iterations")
    if args.floor:
        print(
            "\nThe solver's own cost: dopri5 around a field of one 3 x 3 matmul (toy state 64 x 3)"
        )
        print(
            "\n".join(format_floor(solver_floor(backends=backends))),
            flush=True,
        )
    if args.live_images:
        summaries, bad = live_image_profile(backends=backends)
        for name, summary in summaries.items():
            print("\n".join(format_rows(name, summary)), flush=True)
            if bad[name]:
                print(
                    f"  NFE differed between variants at {bad[name]} iterations"
                )
    if args.ops:
        for backend in backends:
            print(f"\nToy NODE, {backend}: operators of 5 training steps")
            print(op_table(backend=backend))


if __name__ == "__main__":
    main()
