"""The one colour map of every chart: kernel families (the same family is the same colour in
the report's charts and the diff's timeline) and the roles a bar plays. Standard library only."""

from __future__ import annotations

# Kernel families (decodeprof.analyses.kernel_summary.FAMILIES) and the copy ops.
FAMILY_COLOURS = {
    "gemm": "#4C78A8", "elementwise": "#F58518", "norm": "#54A24B", "reduction": "#E45756",
    "embedding": "#72B7B2", "copy": "#B279A2", "nccl": "#FF9DA6", "triton": "#9D755D",
    "other": "#BAB0AC", "memcpy": "#EECA3B", "memset": "#EECA3B",
}

# What a bar stands for.
BUSY = "#4C78A8"  # GPU busy; a total (a decode span, a bandwidth)
SECOND = "#F58518"  # the second series beside BUSY (launch calls beside kernels)
IDLE = "#E45756"  # GPU idle; a part that grows; pageable memory; a limit line
GAIN = "#54A24B"  # a part that shrinks; pinned memory
BAR_EDGE = "#fff"


def family_colour(family: str) -> str:
    """A family's colour; a family the map does not know is drawn as "other"."""
    return FAMILY_COLOURS.get(family, FAMILY_COLOURS["other"])
