"""Values for the JSON outputs (analyze, diff, report): standard JSON, which has no NaN or
Infinity, so a number a run could not give is null in every one of them."""

from __future__ import annotations

import math


def finite(value):
    """`value`, or None for a float that is not finite."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def json_safe(value):
    """`value` with dict keys as text, tuples as lists, non-finite floats as null and any other
    object as its text: what json.dumps(..., allow_nan=False) always accepts."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float):
        return finite(value)
    return value if value is None or isinstance(value, (int, str, bool)) else str(value)
