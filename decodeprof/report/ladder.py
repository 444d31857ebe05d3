"""The optimization ladder: the variant each of our targets builds on, and what it adds.

The report explains a variant against the rung below it (pinned against baseline, streams
against pinned, fp4 against fp8, ...), with the comparison against the baseline one click
away. The map follows the targets' code: graph and compile start again from the baseline's
pageable copies (targets/loop.py), the kernel targets replay their steps in a CUDA graph like
graph, double_buffer_tma is warp_specialized without warp specialization (its docstring), and
persistent_smem reuses persistent's loop with another kernel.

This is the one place the ladder is written down; it belongs in targets/registry.py (a
`builds_on` field beside each target's summary), which the report cannot change from here.
"""

from __future__ import annotations

# name: (builds on, what it adds to that one)
LADDER: dict[str, tuple[str, str]] = {
    "pinned": ("baseline", "pinned host buffers and non_blocking copies"),
    "streams": ("pinned", "a copy stream that uploads the next batch's prompt while this batch computes"),
    "compile": ("baseline", "torch.compile (Inductor) of prefill and decode step: fused kernels, still launched one by one"),
    "graph": ("baseline", "the decode loop captured once in a CUDA graph and replayed"),
    "graph_full": ("graph", "the prefill captured in the same CUDA graph as the decode loop"),
    "fp8": ("graph", "FP8 (E4M3) weights in three fused Triton kernels, replayed in the CUDA graph"),
    "fp4": ("fp8", "FP4 (E2M1, NVFP4 layout) weights instead of FP8: fewer bytes per weight"),
    "warp_specialized": ("graph", "three fused bf16 Triton kernels fed by TMA, with warp specialization"),
    "double_buffer_tma": ("warp_specialized", "the same kernels without warp specialization: TMA double buffering alone"),
    "persistent": ("warp_specialized", "one persistent kernel runs all decode steps (grid barriers, weights kept in L2)"),
    "persistent_smem": ("persistent", "every decode weight kept in shared memory (a CUDA C++ kernel)"),
}


def builds_on(name: str, present: list[str], baseline: str | None) -> str | None:
    """The variant `name` is explained against: the nearest rung below it that is among
    `present`; else (a rung missing all the way down, or a name not on the ladder) the
    report's `baseline`. None for the baseline itself or without one."""
    if baseline is None or name == baseline:
        return None
    seen, step = {name}, LADDER.get(name)
    while step is not None:
        below = step[0]
        if below in present and below != name:
            return below
        if below in seen:
            break
        seen.add(below)
        step = LADDER.get(below)
    return baseline


def adds(name: str) -> str | None:
    """What `name` adds to the rung it builds on (None off the ladder)."""
    step = LADDER.get(name)
    return step[1] if step else None


def tree(names: list[str], baseline: str | None) -> list[tuple[str, int]]:
    """(name, depth) in reading order: each variant under the one it is explained against,
    children in `names` order; variants with no reference at depth 0."""
    parent = {n: builds_on(n, names, baseline) for n in names}
    out: list[tuple[str, int]] = []

    def walk(node: str, depth: int) -> None:
        out.append((node, depth))
        for child in names:
            if parent[child] == node and child != node:
                walk(child, depth + 1)

    for root in [n for n in names if parent[n] is None]:
        walk(root, 0)
    return out
