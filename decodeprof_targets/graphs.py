"""CUDA graph capture shared by the graph variants: warm up on a side stream, capture, and
turn a capture failure into a clear error."""

from __future__ import annotations

from typing import Callable, TypeVar

import torch

from decodeprof_targets.errors import TargetError

T = TypeVar("T")


def capture(fn: Callable[[], T], warmups: int = 2) -> tuple[torch.cuda.CUDAGraph, T]:
    """Capture `fn` in a CUDA graph; returns the graph and fn's outputs (static tensors that
    every replay overwrites)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmups):  # lets cuBLAS and the allocator settle before capture
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            outputs = fn()
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TargetError(f"CUDA graph capture failed: {first_line}",
                          "run the eager 'baseline' target, or report the failing op") from exc
    return graph, outputs
