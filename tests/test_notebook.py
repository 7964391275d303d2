"""notebook.setup(): what a chapter's first cell changes, and what it must leave alone."""

import warnings

import torch

import anode_utils as au


def test_setup_filters_named_warnings_only_and_a_training_failure_reaches_the_reader():
    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings(record=True) as caught:
            au.notebook.setup(seed=0)
            warnings.warn("a torch deprecation", DeprecationWarning)
            model = au.ODENet(1, max_num_steps=2, rtol=1e-9, atol=1e-9)
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(30)
            x, y = au.map_1d("flip", 8)
            for _ in range(2):  # the same failure twice: shown both times
                hist = au.train(model, x, y, epochs=1)
                assert hist.error and "max_num_steps" in hist.error
    finally:
        torch.set_num_threads(threads)
    messages = [str(w.message) for w in caught]
    assert "a torch deprecation" in messages
    assert (
        sum(
            m.startswith("training stopped after 0 iterations")
            for m in messages
        )
        == 2
    )
