"""Results files, read and written one way everywhere: atomic writes (a temporary file renamed
over the target), JSON with each flat list on one line, damaged files reported by name, and
floats rounded to a few significant digits before they are stored.

Used by the library (toy and image results readers) and by both commands (``toy``,
``images``); it imports nothing from them.
"""

import json
import math
import numbers
import os
import pathlib
import re
import secrets


def round_sig(x, digits=5):
    """``x`` with every float rounded to ``digits`` significant digits, inside lists, tuples
    (returned as lists) and dicts too; NaN/inf become None (JSON has neither); None, booleans,
    integers and strings are returned as they are."""
    if (
        isinstance(digits, bool)
        or not isinstance(digits, numbers.Integral)
        or digits < 1
    ):
        raise ValueError(f"digits must be a positive integer; got {digits!r}")
    if x is None or isinstance(x, (bool, numbers.Integral, str)):
        return x
    if isinstance(x, (list, tuple)):
        return [round_sig(v, digits) for v in x]
    if isinstance(x, dict):
        return {k: round_sig(v, digits) for k, v in x.items()}
    if isinstance(x, numbers.Real):
        x = float(x)
        return float(f"{x:.{digits}g}") if math.isfinite(x) else None
    return x


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file named after this process, then
    rename it over ``path``: an interrupted run never leaves half a file, two writers never
    share a temporary file, and a failed write removes its temporary file."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(
        f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    )
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path, obj):
    """Write atomically (temp file + rename), so an interrupted run never leaves half a file."""
    write_text_atomic(path, json.dumps(obj, indent=1))


def compact_json(obj):
    """``json.dumps(obj, indent=1)`` with each flat list (numbers, no strings or objects) on
    one line: a results file a few times smaller, still readable."""
    text = json.dumps(obj, indent=1)
    return re.sub(
        r"\[([^\[\]{}\"]*)\]",
        lambda m: (
            "[" + ",".join(v.strip() for v in m.group(1).split(",")) + "]"
            if m.group(1).strip()
            else "[]"
        ),
        text,
    )


def write_results(path, results):
    """Like :func:`write_json` (atomic), but each flat list on one line (:func:`compact_json`)."""
    write_text_atomic(path, compact_json(results) + "\n")


def read_json(path, advice="delete it, or pass another path"):
    """The JSON object in ``path``. A damaged file (cut short, not JSON) raises a ValueError
    that names it and ends with ``advice`` (what the user should do)."""
    path = pathlib.Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err.msg} at line {err.lineno}, column "
            f"{err.colno}); it is damaged or was cut short: {advice}"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(
            f"{path} is not a JSON text file (it holds binary data): {advice}"
        ) from None
