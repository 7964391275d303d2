import math

import pytest
import torch

import anode_utils as au

TINY = dict(num_inner=60, num_outer=120, epochs=2, batch_size=32)


def test_history_records_every_iteration():
    r = au.run_toy(dict(TINY, model="anode", augment_dim=1))
    h = au.History.from_dict(r["history"])
    n_iter = 2 * math.ceil(180 / 32)
    assert len(h) == n_iter
    assert (
        len(h.nfe_forward) == len(h.nfe_backward) == len(h.accuracy) == n_iter
    )
    assert h.epoch_end == [n_iter // 2, n_iter]
    assert all(n % 6 == 2 for n in h.nfe_forward) and set(h.nfe_backward) == {
        0
    }
    assert 0.0 <= r["final"]["train_accuracy"] <= 1.0


def test_same_seed_same_history_and_model():
    a = au.run_toy(dict(TINY, seed=4))
    b = au.run_toy(dict(TINY, seed=4))
    c = au.run_toy(dict(TINY, seed=5))
    assert a["history"]["loss"] == b["history"]["loss"]
    assert all(
        torch.equal(a["state_dict"][k], b["state_dict"][k])
        for k in a["state_dict"]
    )
    assert a["history"]["loss"] != c["history"]["loss"]


def test_training_reduces_loss_on_an_easy_task():
    r = au.run_toy(
        dict(
            task="identity",
            model="node",
            readout=False,
            epochs=30,
            batch_size=20,
            lr=1e-2,
        )
    )
    h = r["history"]
    assert h["loss"][-1] < 0.1 * h["loss"][0]


def test_validation_slice_is_evaluated_each_epoch():
    r = au.run_toy(dict(TINY, val_slice=[0.0, math.pi / 5]))
    assert len(r["history"]["val_loss"]) == 2
    assert "val_accuracy" in r["final"]


def test_load_model_reproduces_outputs():
    r = au.run_toy(TINY)
    model = au.load_model(r)
    (x, y), _ = au.make_data(r["config"])
    loss, acc = au.evaluate(model, x, y)
    assert loss == pytest.approx(r["final"]["train_loss"])


def test_resnet_trains():
    r = au.run_toy(dict(TINY, model="resnet"))
    assert set(r["history"]["nfe_forward"]) == {5}  # the authors' 5 blocks


@pytest.mark.parametrize(
    "model,weight_decay,backend",
    [
        ("resnet", 0.0, "torchdiffeq"),
        ("anode", 1e-3, "torchdiffeq"),
        ("node", 0.0, "lean"),
    ],
)
def test_trainings_adam_gives_torchs_adam_numbers(
    model, weight_decay, backend
):
    """train() builds torch.optim.Adam(foreach=True); its per-tensor loop gives the same numbers
    bit for bit (weights and losses), so stored results stay valid either way."""
    cfg = au.make_config(
        **dict(
            TINY,
            model=model,
            augment_dim=int(model == "anode"),
            weight_decay=weight_decay,
            backend=backend,
        )
    )
    (x, y), _ = au.make_data(cfg)
    runs = []
    for foreach in (False, True, None):  # None: train() builds its own
        m = au.make_model(cfg)
        opt = (
            None
            if foreach is None
            else torch.optim.Adam(
                m.parameters(),
                lr=cfg["lr"],
                weight_decay=weight_decay,
                foreach=foreach,
            )
        )
        h = au.train(
            m,
            x,
            y,
            epochs=2,
            batch_size=32,
            lr=cfg["lr"],
            weight_decay=weight_decay,
            seed=cfg["seed"],
            optimizer=opt,
        )
        runs.append((h.loss, [p.detach().clone() for p in m.parameters()]))
    for loss, weights in runs[1:]:
        assert loss == runs[0][0]
        assert all(torch.equal(a, b) for a, b in zip(weights, runs[0][1]))


def test_solver_failure_is_recorded_not_raised():
    model = au.ODENet(1, max_num_steps=2, rtol=1e-9, atol=1e-9)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(30)
    x, y = au.map_1d("flip", 8)
    with pytest.warns(RuntimeWarning, match="training stopped"):
        h = au.train(model, x, y, epochs=1)
    assert h.error and "max_num_steps" in h.error and len(h) == 0


@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(modle="node"), "unknown config field.*'modle'"),
        (dict(model="mlp"), "model must be one of"),
        (dict(model="anode", augment_dim=0), "augment_dim > 0"),
        (dict(model="node", augment_dim=2), "use model='anode'"),
        (dict(task="moons"), "task must be one of"),
    ],
)
def test_bad_configs(bad, match):
    with pytest.raises(ValueError, match=match):
        au.make_config(**bad)


def test_bad_training_arguments():
    model = au.ODENet(2)
    x, y = au.concentric_spheres(2, 10, 10)
    for kw, match in (
        (dict(epochs=-1), "epochs"),
        (dict(lr=0), "lr"),
        (dict(loss="l1"), "loss"),
        (dict(batch_size=0), "batch_size"),
    ):
        with pytest.raises(ValueError, match=match):
            au.train(model, x, y, **kw)


def test_parallel_runs_equal_sequential_runs():
    jobs = au.seed_configs(dict(TINY, epochs=1), [0, 1])
    seq = au.run_parallel(au.run_toy, jobs, processes=1)
    par = au.run_parallel(au.run_toy, jobs, processes=2)
    assert [r["history"]["loss"] for r in seq] == [
        r["history"]["loss"] for r in par
    ]


def test_summarize_means_over_seeds():
    rs = [
        {"final": {"train_loss": 1.0}, "history": {"nfe_forward": [14, 20]}},
        {"final": {"train_loss": 3.0}, "history": {"nfe_forward": [20, 20]}},
    ]
    s = au.experiments.summarize(rs)
    assert s["train_loss"] == (2.0, 1.0) and s["nfe_forward"] == (18.5, 1.5)


def test_epoch_means_and_nfe_ratio():
    h = au.History(
        loss=[1.0, 3.0, 2.0, 2.0],
        nfe_forward=[14, 14, 20, 22],
        epoch_end=[2, 4],
    )
    assert h.epoch_means() == [2.0, 2.0]
    assert h.nfe_ratio() == pytest.approx(21 / 14)
    with pytest.raises(ValueError, match="two epochs"):
        au.History(nfe_forward=[14], epoch_end=[1]).nfe_ratio()


def test_feature_snapshots_callback_leaves_training_unchanged():
    cfg = au.make_config(**dict(TINY, epochs=1))
    (x, y), _ = au.make_data(cfg)
    plain = au.train(au.make_model(cfg), x, y, epochs=1, batch_size=32)
    model = au.make_model(cfg)
    snaps = au.FeatureSnapshots(model, x[:7], at=[0, 2, 6])
    watched = au.train(model, x, y, epochs=1, batch_size=32, callback=snaps)
    assert sorted(snaps.features) == [0, 2, 6] and snaps.features[2].shape == (
        7,
        2,
    )
    assert (
        watched.loss == plain.loss and watched.nfe_forward == plain.nfe_forward
    )


def test_resume_in_pieces_equals_one_run():
    """Resume(history) skips the len(history) iterations already done: one call per epoch (as
    the image command trains), stopped by max_iterations and picked up again, gives the one
    call's history and weights bit for bit."""
    cfg = au.make_config(**dict(TINY, model="anode", augment_dim=1))
    (x, y), val = au.make_data(cfg)
    whole_model = au.make_model(cfg)
    whole = au.train(whole_model, x, y, epochs=3, batch_size=32, val=val)
    model = au.make_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
    run = au.Resume(au.History(), max_iterations=8)  # stops inside epoch 2
    for epoch in (1, 2, 2, 3):
        if epoch == 2 and len(run.history) == 8:
            run.max_iterations = None  # the 'resumed' piece
        h = au.train(
            model,
            x,
            y,
            epochs=epoch,
            batch_size=32,
            val=val,
            optimizer=opt,
            resume=run,
        )
        assert h is run.history
    assert h.to_dict() == whole.to_dict()
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.parameters(), whole_model.parameters())
    )


def test_callbacks_list_and_progress_bar_leave_training_unchanged():
    cfg = au.make_config(**TINY)
    (x, y), _ = au.make_data(cfg)
    plain = au.train(au.make_model(cfg), x, y, epochs=1, batch_size=32)
    seen = []
    with au.ProgressBar(total=6) as bar:
        h = au.train(
            au.make_model(cfg),
            x,
            y,
            epochs=1,
            batch_size=32,
            callback=[bar, lambda m, hist: seen.append(len(hist))],
        )
    assert h.to_dict() == plain.to_dict() and seen == list(range(1, 7))
    assert bar.bar.n == 6


@pytest.mark.parametrize(
    "kw,err,match",
    [
        (dict(callback=3), TypeError, "callback must be callable"),
        (dict(callback=[print, "x"]), TypeError, r"callback\[1\]"),
        (
            dict(optimizer="adam"),
            TypeError,
            "optimizer must be a torch.optim.Optimizer",
        ),
        (dict(resume=au.History()), TypeError, "resume must be a Resume"),
        (
            dict(resume=au.Resume([])),
            TypeError,
            "resume.history must be a History",
        ),
        (
            dict(resume=au.Resume(max_iterations=-1)),
            ValueError,
            "resume.max_iterations",
        ),
    ],
)
def test_bad_run_options_named_before_training(kw, err, match):
    model = au.ODENet(2)
    x, y = au.concentric_spheres(2, 10, 10)
    with pytest.raises(err, match=match):
        au.train(model, x, y, **kw)
