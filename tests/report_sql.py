"""Independent numbers for the report tests: plain sqlite3 SQL on the committed nsys exports.

Nothing here imports decodeprof: these are the values the findings and the waterfall must
reproduce, computed a second way.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

H100 = Path(__file__).parent / "data" / "h100"


def connect(variant: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{H100 / variant / 'trace.sqlite'}?mode=ro", uri=True)


def metrics(variant: str) -> dict:
    return json.loads((H100 / variant / "metrics.json").read_text())


def h2d(variant: str) -> tuple[int, int, int, int]:
    """(copies, pageable copies, bytes, copy ns) of host-to-device memcpys."""
    sql = """
        SELECT count(*),
               sum(CASE WHEN src.name LIKE '%PAGEABLE%' OR dst.name LIKE '%PAGEABLE%' THEN 1 ELSE 0 END),
               sum(m.bytes), sum(m."end" - m.start)
        FROM CUPTI_ACTIVITY_KIND_MEMCPY m
        JOIN ENUM_CUDA_MEMCPY_OPER k ON k.id = m.copyKind
        JOIN ENUM_CUDA_MEM_KIND src ON src.id = m.srcKind
        JOIN ENUM_CUDA_MEM_KIND dst ON dst.id = m.dstKind
        WHERE k.name LIKE '%HTOD%'"""
    with connect(variant) as db:
        return tuple(db.execute(sql).fetchone())


def _ranges(db, name: str) -> list[tuple[int, int, int]]:
    return db.execute(
        """SELECT n.start, n."end", n.globalTid FROM NVTX_EVENTS n LEFT JOIN StringIds s ON s.id = n.textId
           WHERE coalesce(n.text, s.value) = ? AND n."end" IS NOT NULL ORDER BY n.start""", (name,)).fetchall()


def decode_kernels(variant: str) -> list[tuple[int, int, int, int]]:
    """(decode index, start, end, stream) of kernels whose launching call starts in a decode range."""
    with connect(variant) as db:
        out = []
        for i, (d0, d1, tid) in enumerate(_ranges(db, "decode")):
            rows = db.execute(
                """SELECT k.start, k."end", k.streamId FROM CUPTI_ACTIVITY_KIND_KERNEL k
                   JOIN CUPTI_ACTIVITY_KIND_RUNTIME r ON r.correlationId = k.correlationId
                   WHERE r.globalTid = ? AND r.start >= ? AND r.start < ?""", (tid, d0, d1)).fetchall()
            out += [(i, *r) for r in rows]
        return out


def decode_graph_launches(variant: str) -> int:
    with connect(variant) as db:
        n = 0
        for d0, d1, tid in _ranges(db, "decode"):
            n += db.execute(
                """SELECT count(*) FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN StringIds s ON s.id = r.nameId
                   WHERE s.value LIKE 'cudaGraphLaunch%' AND r.globalTid = ? AND r.start >= ? AND r.start < ?""",
                (tid, d0, d1)).fetchone()[0]
        return n


def decode_span_per_step(variant: str) -> float:
    """Per decode range, last kernel end - first kernel start, summed, / (ranges x config steps).
    graph_full ("prefill_decode" ranges): the window starts at the first kernel after the
    prefill's, counted in the baseline's "prefill" range (it launches the same prefill kernels)."""
    if variant == "graph_full":
        with connect("baseline") as db:
            p0, p1, tid = _ranges(db, "prefill")[0]
            prefill = db.execute(
                """SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN CUPTI_ACTIVITY_KIND_RUNTIME r
                   ON r.correlationId = k.correlationId WHERE r.globalTid = ? AND r.start >= ? AND r.start < ?""",
                (tid, p0, p1)).fetchone()[0]
        with connect(variant) as db:
            spans = []
            for d0, d1, tid in _ranges(db, "prefill_decode"):
                ks = db.execute(
                    """SELECT k.start, k."end" FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN CUPTI_ACTIVITY_KIND_RUNTIME r
                       ON r.correlationId = k.correlationId WHERE r.globalTid = ? AND r.start >= ? AND r.start < ?
                       ORDER BY k.start""", (tid, d0, d1)).fetchall()
                spans.append(max(e for _, e in ks) - ks[prefill][0])
        return sum(spans) / (metrics(variant)["config"]["steps"] * len(spans))
    k = decode_kernels(variant)
    spans = {}
    for i, s, e, _ in k:
        lo, hi = spans.get(i, (s, e))
        spans[i] = (min(lo, s), max(hi, e))
    steps = metrics(variant)["config"]["steps"] * len(spans)
    return sum(hi - lo for lo, hi in spans.values()) / steps


def kernels_per_step_range(variant: str) -> list[int]:
    """Kernel count launched inside each NVTX "step" range."""
    with connect(variant) as db:
        return [db.execute(
            """SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN CUPTI_ACTIVITY_KIND_RUNTIME r
               ON r.correlationId = k.correlationId WHERE r.globalTid = ? AND r.start >= ? AND r.start < ?""",
            (tid, s0, s1)).fetchone()[0] for s0, s1, tid in _ranges(db, "step")]


def copy_overlap(variant: str) -> tuple[int, int]:
    """(copy ns, copy ns during which a kernel runs on another stream of the device)."""
    with connect(variant) as db:
        copies = db.execute('SELECT start, "end", streamId, deviceId FROM CUPTI_ACTIVITY_KIND_MEMCPY').fetchall()
        total = overlapped = 0
        for c0, c1, stream, dev in copies:
            total += c1 - c0
            ks = db.execute('SELECT start, "end" FROM CUPTI_ACTIVITY_KIND_KERNEL WHERE deviceId = ? AND streamId != ? '
                            'AND start < ? AND "end" > ? ORDER BY start', (dev, stream, c1, c0)).fetchall()
            cur = c0  # union of kernel intervals clipped to the copy, by a sweep
            for k0, k1 in ks:
                lo, hi = max(k0, cur), min(k1, c1)
                if hi > lo:
                    overlapped += hi - lo
                    cur = hi
        return total, overlapped
