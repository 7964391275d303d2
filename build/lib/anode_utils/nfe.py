"""Reading the function-evaluation counters of every field inside a model."""
from .fields import CountingField


def _fields(model):
    return [m for m in model.modules() if isinstance(m, CountingField)]


def nfe(model):
    """Total evaluations counted by all fields of ``model`` since the last reset."""
    return sum(f.nfe for f in _fields(model))


def reset_nfe(model):
    for f in _fields(model):
        f.nfe = 0


def read_and_reset_nfe(model):
    """Return the count so far and start a new one (call after forward, then after backward)."""
    n = nfe(model)
    reset_nfe(model)
    return n
