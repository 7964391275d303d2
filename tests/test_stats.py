import numpy as np
import pytest

from anode_utils.stats import clearly_below, standard_error


def test_standard_error_of_a_difference():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0, 8.0])
    assert standard_error(a) == pytest.approx(1.0 / np.sqrt(3))
    assert standard_error(a, b) == pytest.approx(
        np.sqrt(1.0 / 3 + b.var(ddof=1) / 4)
    )
    with pytest.raises(ValueError, match="two values"):
        standard_error([1.0])


def test_clearly_below_needs_more_than_k_standard_errors():
    a, b = (
        np.array([0.0, 0.1, 0.2]),
        np.array([1.0, 1.1, 1.2]),
    )  # 1.0 apart, SE 0.082
    assert clearly_below(a, b) and not clearly_below(b, a)
    near = b - 0.95
    assert not clearly_below(a, near)  # 0.05 apart: within noise
    assert clearly_below(a, b, k=12) and not clearly_below(a, b, k=13)
