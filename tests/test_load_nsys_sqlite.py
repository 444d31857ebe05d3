"""decodeprof.load on nsys SQLite exports: frames, kinds, versions, readers.

Expected values come from SQL written here against the same file (or, for the SYNTHETIC
exports of tests/test_load_synthetic.py, from how that file was built), never from the
loader's own output. The synthetic exports stand in for GPU exports until real ones are
committed under tests/data/h100/ (then the parametrised real-fixture tests below run too).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl
import pytest

from decodeprof import schema
from decodeprof.load import load_trace
from decodeprof.load._sqlite import read_sql
from test_load_synthetic import GLOBAL_PID, GLOBAL_TID, TID, build_export

DATA = Path(__file__).parent / "data"
CPU_2022 = DATA / "cpu_nsys2022" / "trace.sqlite"
H100 = sorted(DATA.glob("h100/*/trace.sqlite"))
FRAMES = ("kernels", "runtime", "memcpys", "memsets", "syncs", "nvtx", "gpus", "threads")


def _sql(path: Path, query: str):
    with sqlite3.connect(path) as con:
        return con.execute(query).fetchall()


def _assert_schema(trace) -> None:
    for name in FRAMES:
        assert trace.frame(name).schema == pl.Schema(schema.FRAMES[name]), name


# --- synthetic 2025.3 and 2022.4 layouts (SYNTHETIC: built from the documented schema) ---

@pytest.mark.parametrize("version", ["2025.3", "2022.4"])
def test_synthetic_export_frames(tmp_path, version):
    trace = load_trace(build_export(tmp_path / "t.sqlite", version=version, steps=4, kernels_per_step=3))
    _assert_schema(trace)
    assert trace.missing == ()
    # Built: per step 1 memcpy, 3 kernels, 1 memset, 1 sync, 6 runtime calls, 1 push/pop range.
    assert trace.kernels.height == 12 and trace.runtime.height == 24
    assert trace.memcpys.height == trace.memsets.height == trace.syncs.height == 4
    assert trace.kernels["name"].value_counts().sort("name").rows() == [("gemv_kernel", 8), ("rmsnorm_kernel", 4)]
    assert set(trace.kernels["demangled_name"]) == {"void gemv_kernel<float>(float const*, float*, int)",
                                                     "void rmsnorm_kernel<__nv_bfloat16>(__nv_bfloat16*)"}
    assert trace.kernels["shared_memory_bytes"].to_list()[:3] == [1024, 1536, 2048]  # 1024 static + 512*k dynamic
    assert (trace.kernels["dur_ns"] == trace.kernels["end_ns"] - trace.kernels["start_ns"]).all()
    assert trace.memcpys["bytes"].to_list() == [32768, 65536, 98304, 131072]
    assert set(trace.memcpys["copy_kind"]) == {"CUDA_MEMCPY_KIND_HTOD"}
    assert set(trace.memcpys["src_kind"]) == {"CUDA_MEMOPR_MEMORY_KIND_PAGEABLE"}
    assert set(trace.memcpys["dst_kind"]) == {"CUDA_MEMOPR_MEMORY_KIND_DEVICE"}
    # 2022.4: the CUPTI code, named; 2025.3: a code set ENUM_CUPTI_SYNC_TYPE does not name, kept raw
    assert set(trace.syncs["sync_type"]) == ({"syncType=2"} if version == "2025.3" else
                                             {"CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_STREAM_SYNCHRONIZE"})
    assert set(trace.runtime["tid"]) == {TID} and set(trace.runtime["global_pid"]) == {GLOBAL_PID}
    assert trace.runtime.filter(pl.col("name") == "cudaLaunchKernel_v7000").height == 12
    nvtx = trace.nvtx.sort("start_ns")
    assert nvtx.select("text", "event_kind", "domain").rows()[:3] == [
        ("warmup done", "mark", ""), ("decode", "start_end", ""), ("decode_step", "push_pop", "decodeprof")]
    assert nvtx.height == 6  # 4 steps + mark + start/end; the domain-create row is dropped
    assert nvtx.filter(pl.col("event_kind") == "mark")["end_ns"].is_null().all()
    gpu = trace.gpus.row(0, named=True)
    assert gpu["name"] == "NVIDIA H100 80GB HBM3" and gpu["sm_count"] == 132 and gpu["compute_capability"] == "9.0"
    assert gpu["clock_rate_khz"] == 1_980_000 and gpu["memory_bandwidth_bytes_per_s"] == 3_352_320_000_000
    assert trace.threads.row(0, named=True) == {"global_tid": GLOBAL_TID, "global_pid": GLOBAL_PID, "tid": TID,
                                                 "thread_name": "decode-main", "process_name": "python3"}
    assert trace.meta["nsys_version"] == ("2025.3.1.90" if version == "2025.3" else "2022.4.2.1")


def test_graph_node_ids_when_present(tmp_path):
    trace = load_trace(build_export(tmp_path / "g.sqlite", graph=True, steps=2, kernels_per_step=3))
    assert trace.kernels["graph_node_id"].to_list() == [1000, 1001, 1002] * 2
    old = load_trace(build_export(tmp_path / "o.sqlite", version="2022.4", steps=2))
    assert old.kernels["graph_node_id"].is_null().all()  # the 2022.4 layout has no graphNodeId column


def test_deprecated_sync_type_is_used_when_sync_type_is_unset(tmp_path):
    path = build_export(tmp_path / "s.sqlite", steps=2)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE CUPTI_ACTIVITY_KIND_SYNCHRONIZATION SET syncType = 0, deprecatedSyncType = 1")
    assert set(load_trace(path).syncs["sync_type"]) == {"CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_EVENT_SYNCHRONIZE"}


def test_absent_enum_tables_give_numeric_kinds_not_guesses(tmp_path):
    path = build_export(tmp_path / "e.sqlite", steps=2)
    with sqlite3.connect(path) as con:
        for t in ("ENUM_CUDA_MEMCPY_OPER", "ENUM_CUDA_MEM_KIND", "ENUM_CUPTI_SYNC_TYPE", "ENUM_NSYS_EVENT_TYPE"):
            con.execute(f"DROP TABLE {t}")
    trace = load_trace(path)
    assert set(trace.memcpys["copy_kind"]) == {"copyKind=1"}
    assert set(trace.memcpys["src_kind"]) == {"srcKind=0"} and set(trace.memcpys["dst_kind"]) == {"dstKind=2"}
    assert set(trace.syncs["sync_type"]) == {"syncType=2"}
    # Without ENUM_NSYS_EVENT_TYPE no row can be told apart: all 5 are kept, typed by number.
    assert trace.nvtx["event_kind"].value_counts().sort("event_kind").rows() == [
        ("eventType=34", 1), ("eventType=59", 2), ("eventType=60", 1), ("eventType=75", 1)]


def test_absent_tables_are_empty_frames_with_a_fix(tmp_path):
    path = build_export(tmp_path / "m.sqlite", steps=1)
    with sqlite3.connect(path) as con:
        con.execute("DROP TABLE CUPTI_ACTIVITY_KIND_KERNEL")
        con.execute("DROP TABLE NVTX_EVENTS")
        con.execute("DELETE FROM CUPTI_ACTIVITY_KIND_MEMSET")  # present but empty: not "missing"
    trace = load_trace(path)
    _assert_schema(trace)
    assert trace.kernels.height == 0 and trace.nvtx.height == 0 and trace.memsets.height == 0
    by_frame = {m.frame: m for m in trace.missing}
    assert set(by_frame) == {"kernels", "nvtx"}
    assert "--trace=cuda" in by_frame["kernels"].fix and "--trace=nvtx" in by_frame["nvtx"].fix
    assert by_frame["kernels"].table == "CUPTI_ACTIVITY_KIND_KERNEL"


def test_reader_falls_back_when_a_column_has_no_type_and_starts_null(tmp_path):
    # connectorx types an undeclared column from its first row and fails on NULL; the
    # loader must still read it (via sqlite3) with the right values.
    path = tmp_path / "u.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE StringIds (id INTEGER PRIMARY KEY, value TEXT)")
        con.execute("CREATE TABLE t (a, g)")
        con.executemany("INSERT INTO t VALUES (?, ?)", [(i, None if i < 3000 else i) for i in range(5000)])
    with sqlite3.connect(path) as con:
        df = read_sql(path, con, "SELECT a, g FROM t")
    assert df.height == 5000 and df["g"].null_count() == 3000 and df["g"].sum() == sum(range(3000, 5000))


# --- real export: Debian's nsys 2022.4, CPU only (NVTX + OSRT) ---

def test_cpu_nsys2022_fixture():
    trace = load_trace(CPU_2022.parent)  # the run folder form
    _assert_schema(trace)
    assert trace.source == CPU_2022
    kinds = _sql(CPU_2022, """SELECT e.name, COUNT(*) FROM NVTX_EVENTS n JOIN ENUM_NSYS_EVENT_TYPE e
                              ON e.id = n.eventType GROUP BY e.name""")
    wanted = {"NvtxPushPopRange": "push_pop", "NvtxStartEndRange": "start_end", "NvtxMark": "mark"}
    expected = sorted((wanted[name], count) for name, count in kinds if name in wanted)
    assert trace.nvtx["event_kind"].value_counts().sort("event_kind").rows() == expected
    texts = _sql(CPU_2022, """SELECT COALESCE(n.text, s.value), COUNT(*) FROM NVTX_EVENTS n
                              LEFT JOIN StringIds s ON s.id = n.textId
                              WHERE n.eventType IN (SELECT id FROM ENUM_NSYS_EVENT_TYPE
                                  WHERE name IN ('NvtxPushPopRange', 'NvtxStartEndRange', 'NvtxMark'))
                              GROUP BY 1 ORDER BY 1""")
    assert trace.nvtx.group_by("text").len().sort("text").rows() == texts
    domain = _sql(CPU_2022, "SELECT text FROM NVTX_EVENTS WHERE eventType = "
                            "(SELECT id FROM ENUM_NSYS_EVENT_TYPE WHERE name = 'NvtxDomainCreate')")
    assert set(trace.nvtx["domain"]) == {domain[0][0]} == {"decodeprof"}
    ends = _sql(CPU_2022, "SELECT SUM(end - start) FROM NVTX_EVENTS WHERE end IS NOT NULL AND eventType IN "
                          "(SELECT id FROM ENUM_NSYS_EVENT_TYPE WHERE name IN ('NvtxPushPopRange','NvtxStartEndRange'))")
    assert trace.nvtx["dur_ns"].sum() == ends[0][0]
    # pid/tid as the nsys docs' own queries compute them (globalTid / 0x1000000 % 0x1000000).
    pid_tid = _sql(CPU_2022, "SELECT DISTINCT globalTid / 16777216 % 16777216, globalTid % 16777216 FROM NVTX_EVENTS "
                             "WHERE eventType = 59")
    got = trace.nvtx.filter(pl.col("event_kind") == "push_pop").select(
        (pl.col("global_pid") // 2**24 % 2**24), "tid").unique().rows()
    assert sorted(got) == sorted(pid_tid)
    assert trace.threads.height == _sql(CPU_2022, "SELECT COUNT(DISTINCT globalTid) FROM ThreadNames")[0][0]
    version = _sql(CPU_2022, "SELECT value FROM EXPORT_META_DATA WHERE name = 'EXPORT_PRODUCT_VERSION'")[0][0]
    assert trace.meta["nsys_version"] == version and version.startswith("2022.4")
    assert trace.meta["schema_version"] == "3.0.0"
    assert {m.frame for m in trace.missing} == {"kernels", "runtime", "memcpys", "memsets", "syncs", "gpus"}


# --- real GPU exports (nsys 2025.3 on H100), once committed ---

@pytest.mark.skipif(not H100, reason="no tests/data/h100/*/trace.sqlite committed yet")
@pytest.mark.parametrize("path", H100, ids=[p.parent.name for p in H100])
def test_h100_fixture_matches_sql(path):
    trace = load_trace(path)
    _assert_schema(trace)
    assert trace.meta["nsys_version"].startswith("2025.3")
    k = _sql(path, "SELECT COUNT(*), SUM(end - start), COUNT(graphNodeId) FROM CUPTI_ACTIVITY_KIND_KERNEL")[0]
    assert (trace.kernels.height, trace.kernels["dur_ns"].sum(), trace.kernels["graph_node_id"].count()) == k
    names = _sql(path, "SELECT s.value, COUNT(*) FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN StringIds s "
                       "ON s.id = k.shortName GROUP BY 1 ORDER BY 1")
    assert trace.kernels.group_by("name").len().sort("name").rows() == names
    rt = _sql(path, "SELECT s.value, COUNT(*) FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN StringIds s "
                    "ON s.id = r.nameId GROUP BY 1 ORDER BY 1")
    assert trace.runtime.group_by("name").len().sort("name").rows() == rt
    tables = {r[0] for r in _sql(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "CUPTI_ACTIVITY_KIND_MEMCPY" in tables:
        kinds = _sql(path, "SELECT c.name, s.name, m.bytes FROM CUPTI_ACTIVITY_KIND_MEMCPY m "
                           "JOIN ENUM_CUDA_MEMCPY_OPER c ON c.id = m.copyKind "
                           "JOIN ENUM_CUDA_MEM_KIND s ON s.id = m.srcKind ORDER BY m.start")
        assert trace.memcpys.sort("start_ns").select("copy_kind", "src_kind", "bytes").rows() == kinds
    gpu = _sql(path, "SELECT name, smCount, clockRate / 1000, memoryBandwidth, computeMajor || '.' || computeMinor "
                     "FROM TARGET_INFO_GPU")[0]
    assert trace.gpus.select("name", "sm_count", "clock_rate_khz", "memory_bandwidth_bytes_per_s",
                             "compute_capability").row(0) == gpu
    # cudaStreamSynchronize rows carry syncType 2, which ENUM_CUPTI_SYNC_TYPE calls STREAM_WAIT_EVENT:
    # the 2025.3 column is another code set, so rows without deprecatedSyncType stay "syncType=<n>"
    syncs = _sql(path, "SELECT COALESCE(e.name, 'syncType=' || s.syncType), COUNT(*) FROM CUPTI_ACTIVITY_KIND_SYNCHRONIZATION s "
                       "LEFT JOIN ENUM_CUPTI_SYNC_TYPE e ON e.id = s.deprecatedSyncType GROUP BY 1 ORDER BY 1")
    assert trace.syncs.group_by("sync_type").len().sort("sync_type").rows() == syncs
    nvtx = _sql(path, "SELECT COALESCE(n.text, s.value), COUNT(*) FROM NVTX_EVENTS n LEFT JOIN StringIds s "
                      "ON s.id = n.textId WHERE n.eventType IN (SELECT id FROM ENUM_NSYS_EVENT_TYPE "
                      "WHERE name IN ('NvtxPushPopRange', 'NvtxStartEndRange', 'NvtxMark')) GROUP BY 1 ORDER BY 1")
    assert trace.nvtx.group_by("text").len().sort("text").rows() == nvtx
    pid_tid = _sql(path, "SELECT globalTid / 16777216 % 16777216, globalTid % 16777216, COUNT(*) "
                         "FROM CUPTI_ACTIVITY_KIND_RUNTIME GROUP BY 1, 2 ORDER BY 1, 2")
    got = trace.runtime.group_by(pl.col("global_pid") // 2**24 % 2**24, "tid").len().sort("global_pid", "tid")
    assert got.rows() == pid_tid
    # Kernels join their launch call on (correlationId, process): every kernel finds one.
    launched = trace.kernels.join(trace.runtime, on=["correlation_id", "global_pid"], how="inner")
    assert launched.height == trace.kernels.height
    folder = load_trace(path.parent)
    import json

    assert folder.target_metrics.document == json.loads((path.parent / "metrics.json").read_text())


def test_nvtx_type_missing_from_the_enum_is_kept_by_number(tmp_path):
    path = build_export(tmp_path / "n.sqlite", steps=1)
    with sqlite3.connect(path) as con:
        con.execute("INSERT INTO NVTX_EVENTS (start, end, eventType, text, globalTid) VALUES (5, 6, 99, 'odd', ?)",
                    (GLOBAL_TID,))
    nvtx = load_trace(path).nvtx
    assert nvtx.filter(pl.col("text") == "odd")["event_kind"].to_list() == ["eventType=99"]


def test_run_folder_prefers_its_export_over_the_report(tmp_path):
    build_export(tmp_path / "trace.sqlite", steps=1)
    (tmp_path / "trace.nsys-rep").write_bytes(b"newer report that no nsys here could open")
    assert load_trace(tmp_path).source == tmp_path / "trace.sqlite"
