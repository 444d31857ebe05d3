"""The optimization ladder: the variant each of our targets builds on, and what it adds.

The report explains a variant against the rung below it (pinned against baseline, streams
against pinned, fp4 against fp8, ...), with the comparison against the baseline one click
away. The ladder is written once, in decodeprof_targets/registry.py (each target's `builds_on` and
`adds`); variants of other engines are off it and compared with the baseline.
"""

from __future__ import annotations

from decodeprof_targets import registry

# name: (builds on, what it adds to that one)
LADDER: dict[str, tuple[str, str]] = {
    info.label: (info.builds_on, info.adds) for info in registry.TARGETS.values() if info.builds_on
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
