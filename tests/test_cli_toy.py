import json
import math

import pytest

import anode_utils as au
from anode_utils import cli_toy
from anode_utils.__main__ import main

TINY = {"num_inner": 40, "num_outer": 80, "epochs": 2, "batch_size": 32}


def write_config(tmp_path, experiments, **extra):
    path = tmp_path / "cfg.json"
    path.write_text(
        json.dumps({"base": TINY, "experiments": experiments, **extra})
    )
    return path


def test_tiny_config_runs_end_to_end(tmp_path):
    cfg = write_config(
        tmp_path,
        [
            {"name": "node", "config": {"model": "node"}},
            {
                "name": "anode",
                "config": {
                    "model": "anode",
                    "augment_dim": 1,
                    "val_slice": [0, math.pi / 5],
                },
            },
        ],
        record_every=2,
    )
    out = tmp_path / "res.json"
    assert (
        main(
            [
                "toy",
                "--config",
                str(cfg),
                "--out",
                str(out),
                "--seeds",
                "0-1",
                "--processes",
                "1",
            ]
        )
        == 0
    )
    res = au.load_results(out)
    assert set(res["experiments"]) == {"node", "anode"}
    assert res["seeds"] == [0, 1] and res["record_every"] == 2
    assert "state_dict" not in json.dumps(res)
    assert res["provenance"]["command"].startswith(
        "python -m anode_utils toy --config"
    )
    assert not (tmp_path / "res.json.partial").exists()
    # the series are block means of the full history computed by run_toy
    full = au.run_toy(dict(TINY, model="node", seed=1))["history"]
    run = res["experiments"]["node"]["runs"][1]
    n_iter = 2 * math.ceil(120 / 32)
    assert run["seed"] == 1 and run["summary"]["iterations"] == n_iter
    assert len(run["history"]["loss"]) == n_iter // 2
    assert run["history"]["loss"][0] == pytest.approx(
        (full["loss"][0] + full["loss"][1]) / 2, rel=1e-4
    )
    assert run["history"]["epoch_end"] == full["epoch_end"]
    anode = res["experiments"]["anode"]["runs"][0]
    assert (
        len(anode["history"]["val_loss"]) == 2 and "val_loss" in anode["final"]
    )
    hists = au.result_histories(res, "anode")
    assert isinstance(hists[0], au.History) and len(hists) == 2
    assert au.result_finals(res, "node") == [
        r["final"]["train_loss"] for r in res["experiments"]["node"]["runs"]
    ]
    assert all(
        n % 6 == 2 for n in au.result_summaries(res, "node", "nfe_forward_max")
    )


def test_interrupted_run_resumes_without_redoing_finished_jobs(
    tmp_path, monkeypatch
):
    cfg = write_config(
        tmp_path, [{"name": "node", "config": {"model": "node"}}]
    )
    out = tmp_path / "res.json"
    computed = []
    real = cli_toy.compute

    def fail_after_two(c):
        if len(computed) == 2:
            raise KeyboardInterrupt("simulated interruption")
        computed.append(c["seed"])
        return real(c)

    monkeypatch.setattr(cli_toy, "compute", fail_after_two)
    with pytest.raises(KeyboardInterrupt):
        main(
            [
                "toy",
                "--config",
                str(cfg),
                "--out",
                str(out),
                "--seeds",
                "0-3",
                "--processes",
                "1",
            ]
        )
    assert not out.exists()
    assert len(list((tmp_path / "res.json.partial").glob("*.json"))) == 2

    # a run stored before a field with a default value existed still counts as done
    part = tmp_path / "res.json.partial" / "node__seed0.json"
    rec = json.loads(part.read_text())
    del rec["config"]["weight_decay"]
    part.write_text(json.dumps(rec))

    computed.clear()
    monkeypatch.setattr(
        cli_toy, "compute", lambda c: computed.append(c["seed"]) or real(c)
    )
    main(
        [
            "toy",
            "--config",
            str(cfg),
            "--out",
            str(out),
            "--seeds",
            "0-3",
            "--processes",
            "1",
        ]
    )
    assert computed == [2, 3]
    res = au.load_results(out)
    assert [r["seed"] for r in res["experiments"]["node"]["runs"]] == [
        0,
        1,
        2,
        3,
    ]
    assert res["compute"] == dict(
        res["compute"], jobs_computed=2, jobs_reused=2
    )
    # the resumed results equal an uninterrupted run's
    whole = cli_toy.run_config(
        str(cfg), tmp_path / "whole.json", [0, 1, 2, 3], processes=1
    )
    assert (
        whole["experiments"]["node"]["runs"]
        == res["experiments"]["node"]["runs"]
    )

    # extending the seeds reuses the finished file; a changed config is refused for this --out
    # (its stored runs would be mixed with new ones) and recomputed under another --out
    computed.clear()
    main(
        [
            "toy",
            "--config",
            str(cfg),
            "--out",
            str(out),
            "--seeds",
            "0-4",
            "--processes",
            "1",
        ]
    )
    assert computed == [4]
    cfg2 = write_config(
        tmp_path, [{"name": "node", "config": {"model": "node", "lr": 2e-3}}]
    )
    computed.clear()
    before = out.read_text()
    with pytest.raises(
        SystemExit,
        match=r"experiment 'node' in .*res.json was run with another config "
        r"\(lr: 0.001 stored, 0.002 now\).*pass another --out",
    ):
        main(
            [
                "toy",
                "--config",
                str(cfg2),
                "--out",
                str(out),
                "--seeds",
                "0-1",
                "--processes",
                "1",
            ]
        )
    assert computed == [] and out.read_text() == before
    main(
        [
            "toy",
            "--config",
            str(cfg2),
            "--out",
            str(tmp_path / "lr2.json"),
            "--seeds",
            "0-1",
            "--processes",
            "1",
        ]
    )
    assert computed == [0, 1]


def test_parallel_workers_give_the_same_numbers(tmp_path):
    cfg = write_config(
        tmp_path, [{"name": "node", "config": {"model": "node"}}]
    )
    a = cli_toy.run_config(str(cfg), tmp_path / "a.json", [0, 1], processes=1)
    b = cli_toy.run_config(str(cfg), tmp_path / "b.json", [0, 1], processes=2)
    assert a["experiments"] == b["experiments"]


@pytest.mark.parametrize(
    "experiments, extra, message",
    [
        (
            [{"name": "bad", "config": {"hiden_dim": 3}}],
            {},
            "experiment 'bad': unknown config field(s) 'hiden_dim'",
        ),
        (
            [{"name": "x", "config": {"model": "anode"}}],
            {},
            "experiment 'x': model='anode' needs an integer augment_dim",
        ),
        (
            [{"name": "x", "config": {"task": "annulus"}}],
            {},
            "experiment 'x': task",
        ),
        ([{"name": "x", "config": {"seed": 3}}], {}, "use --seeds"),
        ([{"name": "x"}, {"name": "x"}], {}, "unique"),
        ([{"name": "x", "cfg": {}}], {}, "experiments[0]"),
        ([{"name": "x"}], {"record_every": 0}, "record_every"),
        ([{"name": "x"}], {"seeds": [1]}, "unknown top-level key(s) 'seeds'"),
        # strict types: the first experiment is fine, the second is refused before either runs
        (
            [
                {"name": "ok"},
                {"name": "td", "config": {"time_dependent": "false"}},
            ],
            {},
            "experiment 'td': time_dependent must be true or false (a boolean); got 'false' (a string",
        ),
        (
            [{"name": "x", "config": {"adjoint": "false"}}],
            {},
            "experiment 'x': adjoint must be true or false",
        ),
        (
            [{"name": "x", "config": {"readout": 0}}],
            {},
            "experiment 'x': readout must be true or false",
        ),
        (
            [{"name": "x", "config": {"hidden_dim": "4"}}],
            {},
            "experiment 'x': hidden_dim must be a positive integer",
        ),
        (
            [{"name": "x", "config": {"lr": "0.001"}}],
            {},
            "experiment 'x': lr must be a positive finite number",
        ),
        (
            [{"name": "x", "config": {"epochs": 1.5}}],
            {},
            "experiment 'x': epochs must be a non-negative integer",
        ),
        (
            [{"name": "x", "config": {"method": "dopri6"}}],
            {},
            "experiment 'x': method must be one of",
        ),
        (
            [{"name": "x", "config": {"T": -1}}],
            {},
            "experiment 'x': T must be a positive finite number; got -1",
        ),
        (
            [{"name": "x", "config": {"model": "resnet", "augment_dim": "1"}}],
            {},
            "experiment 'x': augment_dim must be a non-negative integer",
        ),
        (
            [{"name": "x", "config": {"val_slice": [1, 0]}}],
            {},
            "experiment 'x': val_slice must have start < stop",
        ),
        (
            [{"name": "x", "config": {"val_slice": [0, 1e-9]}}],
            {},
            "experiment 'x': val_slice [0, 1e-09] selects no points",
        ),
        (
            [{"name": "x", "config": {"readout": False}}],
            {},
            "experiment 'x': readout=False makes the model output",
        ),
        (
            [{"name": "x", "config": [1]}],
            {},
            "experiment 'x': 'config' must be an object",
        ),
        (
            [{"name": "x"}],
            {"description": 3},
            "'description' must be a string",
        ),
        # names become file names: nothing outside the output folder, no hidden files
        ([{"name": "../../escaped"}], {}, "'name' must be a safe file name"),
        ([{"name": "a/b"}], {}, "'name' must be a safe file name"),
        ([{"name": ".hidden"}], {}, "'name' must be a safe file name"),
        ([{"name": ""}], {}, "'name' must be a safe file name"),
        ([{"name": "x" * 101}], {}, "'name' must be a safe file name"),
        ([{"name": "Node"}, {"name": "node"}], {}, "'name' must be unique"),
    ],
)
def test_bad_config_names_the_field(
    tmp_path, monkeypatch, experiments, extra, message
):
    monkeypatch.setattr(
        cli_toy,
        "compute",
        lambda c: pytest.fail("a job ran before validation ended"),
    )
    cfg = write_config(tmp_path, experiments, **extra)
    out = tmp_path / "res.json"
    with pytest.raises(SystemExit) as err:
        main(["toy", "--config", str(cfg), "--out", str(out)])
    assert message in str(err.value)
    assert not out.exists() and not (tmp_path / "res.json.partial").exists()
    assert (
        sorted(
            p.name
            for p in tmp_path.parent.parent.iterdir()
            if p.name == "escaped"
        )
        == []
    )


def test_safe_names_with_dots_dashes_and_underscores_run(tmp_path):
    cfg = write_config(
        tmp_path,
        [
            {
                "name": "anode_p-1.v2",
                "config": {"model": "anode", "augment_dim": 1},
            }
        ],
    )
    res = cli_toy.run_config(str(cfg), tmp_path / "res.json", [0], processes=1)
    assert list(res["experiments"]) == ["anode_p-1.v2"]


def test_bad_seeds_and_missing_file(tmp_path):
    cfg = write_config(tmp_path, [{"name": "x"}])
    with pytest.raises(SystemExit, match="--seeds"):
        main(
            [
                "toy",
                "--config",
                str(cfg),
                "--out",
                str(tmp_path / "o.json"),
                "--seeds",
                "5-2",
            ]
        )
    with pytest.raises(SystemExit, match="No such file"):
        main(
            [
                "toy",
                "--config",
                str(tmp_path / "missing.json"),
                "--out",
                str(tmp_path / "o.json"),
            ]
        )
    assert cli_toy.parse_seeds("0,3,5-7") == [0, 3, 5, 6, 7]


def test_train_callback_sees_every_iteration_and_leaves_history_unchanged():
    cfg = au.make_config(**TINY)
    (x, y), _ = au.make_data(cfg)
    plain = au.train(au.make_model(cfg), x, y, epochs=2, batch_size=32)
    seen = []

    def snapshot(
        model, history
    ):  # solves inside the callback must not count as training NFE
        model.features(x[:5])
        seen.append(len(history))

    hist = au.train(
        au.make_model(cfg), x, y, epochs=2, batch_size=32, callback=snapshot
    )
    assert seen == list(range(1, len(hist) + 1))
    assert hist.loss == plain.loss and hist.nfe_forward == plain.nfe_forward


def test_history_band_every_scales_the_iteration_axis():
    import matplotlib

    matplotlib.use("Agg")
    from anode_utils import plots

    ax = plots.plot_history_band(
        [{"loss": [3.0, 2.0, 1.0]}, {"loss": [1.0, 2.0, 3.0]}], every=10
    )
    assert list(ax.lines[0].get_xdata()) == [10, 20, 30]
    assert list(ax.lines[0].get_ydata()) == [2.0, 2.0, 2.0]


def test_result_nfe_ratios_match_history_nfe_ratio():
    results = {
        "experiments": {
            "node": {
                "runs": [
                    {
                        "summary": {
                            "nfe_forward_first_epoch": 14.0,
                            "nfe_forward_last_epoch": 21.0,
                        }
                    },
                    {
                        "summary": {
                            "nfe_forward_first_epoch": 20.0,
                            "nfe_forward_last_epoch": 20.0,
                        }
                    },
                ]
            }
        }
    }
    assert au.result_nfe_ratios(results, "node") == [1.5, 1.0]
    h = au.History(nfe_forward=[14, 14, 21, 21], epoch_end=[2, 4])
    assert h.nfe_ratio() == au.result_nfe_ratios(results, "node")[0]


# ----------------------------------------------------------------------------- files


def _run(cfg, out, seeds):
    return main(
        [
            "toy",
            "--config",
            str(cfg),
            "--out",
            str(out),
            "--seeds",
            seeds,
            "--processes",
            "1",
        ]
    )


@pytest.mark.parametrize(
    "text, match",
    [
        (
            '{"format": "anode_utils.toy-results/1", "experi',
            r"res.json is not valid JSON \(.*line 1",
        ),
        (
            "\x00\xff",
            r"res.json is not valid JSON|res.json is not a JSON text file",
        ),
        (
            '{"format": "something-else"}',
            r"res.json is not a toy results file \(format 'something-else'\)",
        ),
        (
            '{"format": "anode_utils.toy-results/1", "experiments": {"node": {"config": {}, "runs": [{}]}}}',
            r"res.json: experiment 'node': a run without an integer 'seed'",
        ),
    ],
)
def test_corrupt_results_file_is_named_and_left_alone(
    tmp_path, monkeypatch, text, match
):
    monkeypatch.setattr(cli_toy, "compute", lambda c: pytest.fail("a job ran"))
    cfg = write_config(tmp_path, [{"name": "node"}])
    out = tmp_path / "res.json"
    out.write_text(text)
    with pytest.raises(
        SystemExit,
        match=match
        + r".*(delete it \(its runs are then recomputed\), or pass "
        r"another --out)",
    ):
        _run(cfg, out, "0")
    assert out.read_text() == text
    with pytest.raises(ValueError, match=match + ".*or pass another path"):
        au.load_results(out)


def test_damaged_partial_is_recomputed_with_a_warning(tmp_path):
    cfg = write_config(tmp_path, [{"name": "node"}])
    partial = tmp_path / "res.json.partial"
    partial.mkdir()
    (partial / "node__seed0.json").write_text(
        '{"experiment": "node", "se'
    )  # cut short
    (partial / "node__seed1.json").write_text(
        '{"experiment": "node"}'
    )  # not a run record
    with pytest.warns(
        RuntimeWarning, match="damaged partial result"
    ) as caught:
        res = cli_toy.run_config(
            str(cfg), tmp_path / "res.json", [0, 1], processes=1
        )
    messages = sorted(str(w.message) for w in caught)
    assert (
        "node__seed0.json (" in messages[0]
        and "is not valid JSON" in messages[0]
    )
    assert "node__seed1.json (not a partial run record" in messages[1]
    assert res["compute"]["jobs_computed"] == 2 and not partial.exists()
    assert [r["seed"] for r in res["experiments"]["node"]["runs"]] == [0, 1]


def test_leftover_temporary_files_do_not_block_a_later_run(tmp_path):
    cfg = write_config(tmp_path, [{"name": "node"}])
    partial = tmp_path / "res.json.partial"
    partial.mkdir()
    (partial / "node__seed0.json.tmp").write_text("half a fi")  # old naming
    (partial / "node__seed1.json.4242.deadbeef.tmp").write_text(
        "{"
    )  # killed writer
    cli_toy.run_config(str(cfg), tmp_path / "res.json", [0], processes=1)
    assert not partial.exists()
    # a file the command did not write stays, with a warning, and the run still succeeds
    partial.mkdir()
    (partial / "notes.txt").write_text("mine")
    with pytest.warns(
        RuntimeWarning, match=r"left .*res.json.partial in place.*notes.txt"
    ):
        cli_toy.run_config(str(cfg), tmp_path / "res.json", [0], processes=1)
    assert (partial / "notes.txt").read_text() == "mine"


def test_other_seeds_in_out_are_merged_not_dropped(tmp_path, monkeypatch):
    cfg = write_config(
        tmp_path,
        [
            {"name": "node"},
            {"name": "anode", "config": {"model": "anode", "augment_dim": 1}},
        ],
    )
    out = tmp_path / "res.json"
    _run(cfg, out, "0-1")
    first = au.load_results(out)
    computed = []
    real = cli_toy.compute
    monkeypatch.setattr(
        cli_toy, "compute", lambda c: computed.append(c["seed"]) or real(c)
    )
    _run(cfg, out, "2")
    assert computed == [2, 2]
    res = au.load_results(out)
    assert res["seeds"] == [0, 1, 2]
    for name in ("node", "anode"):
        runs = res["experiments"][name]["runs"]
        assert [r["seed"] for r in runs] == [0, 1, 2]
        assert runs[:2] == first["experiments"][name]["runs"]
    assert res["previous_provenance"] == [first["provenance"]]
    # an experiment dropped from the config stays in the file, with a warning
    cfg_node = write_config(tmp_path, [{"name": "node"}])
    with pytest.warns(
        RuntimeWarning,
        match=r"keeps experiment\(s\) 'anode' from an earlier run",
    ):
        _run(cfg_node, out, "3")
    third = au.load_results(out)
    assert [r["seed"] for r in third["experiments"]["node"]["runs"]] == [
        0,
        1,
        2,
        3,
    ]
    assert third["experiments"]["anode"] == res["experiments"]["anode"]


def test_out_recorded_with_another_record_every_is_refused(tmp_path):
    out = tmp_path / "res.json"
    _run(write_config(tmp_path, [{"name": "node"}]), out, "0")
    before = out.read_text()
    with pytest.raises(
        SystemExit,
        match=r"record_every=1, this config asks for 2.*pass another --out",
    ):
        _run(
            write_config(tmp_path, [{"name": "node"}], record_every=2),
            out,
            "1",
        )
    assert out.read_text() == before


def test_out_that_is_a_directory_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="is a directory; pass a file path"):
        _run(write_config(tmp_path, [{"name": "node"}]), tmp_path, "0")
