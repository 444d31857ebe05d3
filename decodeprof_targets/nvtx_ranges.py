"""NVTX ranges in the "decodeprof" domain. The analyses rely on these names (README lists them):
warmup, measured, iteration, h2d, prefill, decode, step.

Without the `nvtx` package the ranges are no-ops and the metrics say so.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

DOMAIN = "decodeprof"

try:
    import nvtx as _nvtx

    NVTX_AVAILABLE = True
except ImportError:  # the target still runs; its metrics JSON records the fallback
    _nvtx = None
    NVTX_AVAILABLE = False


@contextmanager
def nvtx_range(name: str) -> Iterator[None]:
    if _nvtx is None:
        yield
        return
    _nvtx.push_range(name, domain=DOMAIN)
    try:
        yield
    finally:
        _nvtx.pop_range(domain=DOMAIN)
