"""Build small SQLite files shaped like Nsight Systems exports, for tests and benchmarks.

SYNTHETIC, and said so wherever used: the tables and columns follow the documented nsys
SQLite schema (2025.3: CUPTI_ACTIVITY_KIND_*, NVTX_EVENTS, StringIds, ENUM_*,
TARGET_INFO_GPU, ThreadNames, PROCESSES, META_DATA_EXPORT) and the older layout of 2022.4
(no graphNodeId/greenContextId, `syncType` only, TARGET_INFO_CUDA_GPU), so the loader's
version handling can be tested before real GPU exports exist. The enum ids below are
nsys's own (NOTES.md) but the loader must not rely on them: it joins the ENUM tables.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

PID = 4242
TID = 4243
GLOBAL_PID = (1 << 56) | (PID << 24)  # serialized GlobalId: vm/host bits, pid << 24
GLOBAL_TID = GLOBAL_PID | TID

STRINGS = {
    1: "gemv_kernel",
    2: "void gemv_kernel<float>(float const*, float*, int)",
    3: "rmsnorm_kernel",
    4: "void rmsnorm_kernel<__nv_bfloat16>(__nv_bfloat16*)",
    5: "cudaLaunchKernel_v7000",
    6: "cudaMemcpyAsync_v3020",
    7: "cudaStreamSynchronize_v3020",
    8: "cudaMemsetAsync_v3020",
    9: "decode_step",  # registered NVTX string (textId)
    10: "python3",
    11: "decode-main",
}

ENUMS = {
    "ENUM_CUDA_MEMCPY_OPER": [(0, "CUDA_MEMCPY_KIND_UNKNOWN"), (1, "CUDA_MEMCPY_KIND_HTOD"),
                              (2, "CUDA_MEMCPY_KIND_DTOH"), (8, "CUDA_MEMCPY_KIND_DTOD")],
    "ENUM_CUDA_MEM_KIND": [(0, "CUDA_MEMOPR_MEMORY_KIND_PAGEABLE"), (1, "CUDA_MEMOPR_MEMORY_KIND_PINNED"),
                           (2, "CUDA_MEMOPR_MEMORY_KIND_DEVICE")],
    "ENUM_CUPTI_SYNC_TYPE": [(0, "CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_UNKNOWN"),
                             (1, "CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_EVENT_SYNCHRONIZE"),
                             (3, "CUPTI_ACTIVITY_SYNCHRONIZATION_TYPE_STREAM_SYNCHRONIZE")],
    "ENUM_NSYS_EVENT_TYPE": [(34, "NvtxMark"), (59, "NvtxPushPopRange"), (60, "NvtxStartEndRange"),
                             (75, "NvtxDomainCreate"), (76, "NvtxDomainDestroy")],
}

KERNEL_COLS_2025 = (
    "start INTEGER NOT NULL, end INTEGER NOT NULL, deviceId INTEGER NOT NULL, contextId INTEGER NOT NULL,"
    " greenContextId INTEGER, streamId INTEGER NOT NULL, correlationId INTEGER, globalPid INTEGER,"
    " demangledName INTEGER NOT NULL, shortName INTEGER NOT NULL, mangledName INTEGER, launchType INTEGER,"
    " cacheConfig INTEGER, registersPerThread INTEGER NOT NULL, gridX INTEGER NOT NULL, gridY INTEGER NOT NULL,"
    " gridZ INTEGER NOT NULL, blockX INTEGER NOT NULL, blockY INTEGER NOT NULL, blockZ INTEGER NOT NULL,"
    " staticSharedMemory INTEGER NOT NULL, dynamicSharedMemory INTEGER NOT NULL,"
    " localMemoryPerThread INTEGER NOT NULL, localMemoryTotal INTEGER NOT NULL, gridId INTEGER NOT NULL,"
    " sharedMemoryExecuted INTEGER, graphNodeId INTEGER, sharedMemoryLimitConfig INTEGER"
)


def _schema(version: str) -> str:
    new = version >= "2023"
    green = "greenContextId INTEGER," if new else ""
    graph = ", graphNodeId INTEGER" if new else ""
    kernel = KERNEL_COLS_2025 if new else KERNEL_COLS_2025.replace(" greenContextId INTEGER,", "").replace(
        ", graphNodeId INTEGER", "")
    sync = ("deprecatedSyncType INTEGER, syncType INTEGER NOT NULL," if version >= "2025" else "syncType INTEGER NOT NULL,")
    gpu = (
        "CREATE TABLE TARGET_INFO_GPU (vmId INTEGER NOT NULL, id INTEGER NOT NULL, name TEXT, busLocation TEXT,"
        " isDiscrete INTEGER, l2CacheSize INTEGER, totalMemory INTEGER, memoryBandwidth INTEGER,"
        " clockRate INTEGER, smCount INTEGER, uuid TEXT, chipName TEXT, computeMajor INTEGER, computeMinor INTEGER);"
        if new else
        "CREATE TABLE TARGET_INFO_CUDA_GPU (deviceId INTEGER, name TEXT, totalGlobalMem INTEGER,"
        " globalMemoryBandwidth INTEGER, coreClockRate INTEGER, numMultiprocessors INTEGER,"
        " computeCapabilityMajor INTEGER, computeCapabilityMinor INTEGER);"
    )
    meta = "META_DATA_EXPORT" if new else "EXPORT_META_DATA"
    enum_tables = "".join(
        f"CREATE TABLE {t} (id INTEGER NOT NULL PRIMARY KEY, name TEXT, label TEXT);" for t in ENUMS)
    return f"""
    CREATE TABLE StringIds (id INTEGER NOT NULL PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE ThreadNames (nameId INTEGER NOT NULL, priority INTEGER, globalTid INTEGER);
    CREATE TABLE PROCESSES (globalPid INTEGER, pid INTEGER, name TEXT);
    CREATE TABLE {meta} (name TEXT NOT NULL, value TEXT);
    {enum_tables}
    {gpu}
    CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL ({kernel});
    CREATE TABLE CUPTI_ACTIVITY_KIND_RUNTIME (start INTEGER NOT NULL, end INTEGER NOT NULL,
        eventClass INTEGER NOT NULL, globalTid INTEGER, correlationId INTEGER, nameId INTEGER NOT NULL,
        returnValue INTEGER NOT NULL, callchainId INTEGER);
    CREATE TABLE CUPTI_ACTIVITY_KIND_MEMCPY (start INTEGER NOT NULL, end INTEGER NOT NULL,
        deviceId INTEGER NOT NULL, contextId INTEGER NOT NULL, {green} streamId INTEGER NOT NULL,
        correlationId INTEGER, globalPid INTEGER, bytes INTEGER NOT NULL, copyKind INTEGER NOT NULL,
        deprecatedSrcId INTEGER, srcKind INTEGER, dstKind INTEGER, srcDeviceId INTEGER,
        srcContextId INTEGER, dstDeviceId INTEGER, dstContextId INTEGER, migrationCause INTEGER{graph});
    CREATE TABLE CUPTI_ACTIVITY_KIND_MEMSET (start INTEGER NOT NULL, end INTEGER NOT NULL,
        deviceId INTEGER NOT NULL, contextId INTEGER NOT NULL, {green} streamId INTEGER NOT NULL,
        correlationId INTEGER, globalPid INTEGER, value INTEGER NOT NULL, bytes INTEGER NOT NULL{graph});
    CREATE TABLE CUPTI_ACTIVITY_KIND_SYNCHRONIZATION (start INTEGER NOT NULL, end INTEGER NOT NULL,
        deviceId INTEGER NOT NULL, contextId INTEGER NOT NULL, {green} streamId INTEGER NOT NULL,
        correlationId INTEGER, globalPid INTEGER, {sync} eventId INTEGER NOT NULL);
    CREATE TABLE NVTX_EVENTS (start INTEGER NOT NULL, end INTEGER, eventType INTEGER NOT NULL,
        rangeId INTEGER, category INTEGER, color INTEGER, text TEXT, globalTid INTEGER,
        endGlobalTid INTEGER, textId INTEGER, domainId INTEGER);
    """


def build_export(path: Path, *, version: str = "2025.3", steps: int = 4, kernels_per_step: int = 3,
                 graph: bool = False) -> Path:
    """Write a synthetic export of a `steps`-step decode loop to `path` and return it.

    Per step: one NVTX push/pop "decode_step" range (registered string, domain "decodeprof"),
    one pageable H2D cudaMemcpyAsync, `kernels_per_step` kernel launches (or, with `graph`,
    the same kernels carrying graphNodeId), one cudaMemsetAsync, one cudaStreamSynchronize.
    Plus one NVTX mark and one start/end range with inline `text` in the default domain.
    """
    path = Path(path)
    con = sqlite3.connect(path)
    con.executescript(_schema(version))
    con.executemany("INSERT INTO StringIds VALUES (?, ?)", STRINGS.items())
    for table, rows in ENUMS.items():
        con.executemany(f"INSERT INTO {table} (id, name, label) VALUES (?, ?, ?)",
                        [(i, n, n.lower()) for i, n in rows])
    new = version >= "2023"
    meta = "META_DATA_EXPORT" if new else "EXPORT_META_DATA"
    con.executemany(f"INSERT INTO {meta} VALUES (?, ?)", [
        ("EXPORT_SCHEMA_VERSION", "3.20.4" if new else "2.7.1"),
        ("EXPORT_PRODUCT_VERSION", "2025.3.1.90" if new else "2022.4.2.1"),
        ("EXPORT_PRODUCT_NAME", "NVIDIA Nsight Systems"),
    ])
    if new:
        con.execute("INSERT INTO TARGET_INFO_GPU VALUES (0, 0, 'NVIDIA H100 80GB HBM3', '0000:18:00.0', 1,"
                    " 52428800, 85045526528, 3352320000000, 1980000000, 132, 'GPU-x', 'GH100', 9, 0)")
    else:
        con.execute("INSERT INTO TARGET_INFO_CUDA_GPU VALUES (0, 'NVIDIA H100 80GB HBM3', 85045526528,"
                    " 3352320000, 1980000, 132, 9, 0)")
    con.execute("INSERT INTO ThreadNames VALUES (11, 0, ?)", (GLOBAL_TID,))
    con.execute("INSERT INTO PROCESSES VALUES (?, ?, 'python3')", (GLOBAL_PID, PID))

    ev = "INSERT INTO NVTX_EVENTS (start, end, eventType, text, globalTid, textId, domainId) VALUES (?,?,?,?,?,?,?)"
    con.execute(ev, (10, None, 75, "decodeprof", GLOBAL_TID, None, 1))  # domain create: text = name
    kernel_cols = [r[1] for r in con.execute("PRAGMA table_info(CUPTI_ACTIVITY_KIND_KERNEL)")]
    t, corr = 1_000, 100
    for step in range(steps):
        s0 = t
        rt = []
        # pageable H2D copy
        rt.append((t, t + 8_000, 6, corr))
        cols = "start, end, deviceId, contextId, streamId, correlationId, globalPid, bytes, copyKind, srcKind, dstKind"
        con.execute(f"INSERT INTO CUPTI_ACTIVITY_KIND_MEMCPY ({cols}) VALUES (?,?,0,1,7,?,?,?,1,0,2)",
                    (t + 2_000, t + 7_000, corr, GLOBAL_PID, 32768 * (step + 1)))
        t += 9_000
        corr += 1
        for k in range(kernels_per_step):
            rt.append((t, t + 4_000, 5, corr))
            row = {"start": t + 5_000, "end": t + 5_000 + 3_000 + 100 * k, "deviceId": 0, "contextId": 1,
                   "streamId": 7, "correlationId": corr, "globalPid": GLOBAL_PID,
                   "demangledName": 2 if k % 2 == 0 else 4, "shortName": 1 if k % 2 == 0 else 3,
                   "registersPerThread": 32 + k, "gridX": 64, "gridY": 1, "gridZ": 1, "blockX": 256,
                   "blockY": 1, "blockZ": 1, "staticSharedMemory": 1024, "dynamicSharedMemory": 512 * k,
                   "localMemoryPerThread": 0, "localMemoryTotal": 0, "gridId": corr, "tensorSizeMinusOneElements": ""}
            if new:
                row["graphNodeId"] = (1000 + k) if graph else None
            row = {c: v for c, v in row.items() if c in kernel_cols}
            con.execute(f"INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        tuple(row.values()))
            t += 5_000
            corr += 1
        rt.append((t, t + 1_000, 8, corr))
        con.execute("INSERT INTO CUPTI_ACTIVITY_KIND_MEMSET (start, end, deviceId, contextId, streamId,"
                    " correlationId, globalPid, value, bytes) VALUES (?,?,0,1,7,?,?,0,4096)",
                    (t + 20_000, t + 20_500, corr, GLOBAL_PID))
        t += 2_000
        corr += 1
        rt.append((t, t + 30_000, 7, corr))
        sync_cols = "deprecatedSyncType, syncType" if version >= "2025" else "syncType"
        sync_vals = "NULL, 2" if version >= "2025" else "3"  # 2025.3 writes 2 for a stream sync (see the loader)
        con.execute(f"INSERT INTO CUPTI_ACTIVITY_KIND_SYNCHRONIZATION (start, end, deviceId, contextId,"
                    f" streamId, correlationId, globalPid, {sync_cols}, eventId) VALUES (?,?,0,1,7,?,?,{sync_vals},0)",
                    (t + 100, t + 29_900, corr, GLOBAL_PID))
        t += 31_000
        corr += 1
        con.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_RUNTIME VALUES (?, ?, 1, ?, ?, ?, 0, NULL)",
                        [(a, b, GLOBAL_TID, c, n) for a, b, n, c in rt])
        con.execute(ev, (s0 - 100, t, 59, None, GLOBAL_TID, 9, 1))
        t += 1_000
    con.execute(ev, (500, None, 34, "warmup done", GLOBAL_TID, None, 0))
    con.execute(ev, (600, t, 60, "decode", GLOBAL_TID, None, 0))
    con.commit()
    con.close()
    return path


# The builder is checked here against the documented 2025.3 column names it claims to follow,
# so a typo in it cannot make the loader tests pass for the wrong reason.
DOCUMENTED_2025 = {
    "CUPTI_ACTIVITY_KIND_KERNEL": {"start", "end", "deviceId", "contextId", "greenContextId", "streamId",
                                   "correlationId", "globalPid", "demangledName", "shortName", "registersPerThread",
                                   "gridX", "gridY", "gridZ", "blockX", "blockY", "blockZ", "staticSharedMemory",
                                   "dynamicSharedMemory", "graphNodeId"},
    "CUPTI_ACTIVITY_KIND_RUNTIME": {"start", "end", "eventClass", "globalTid", "correlationId", "nameId",
                                    "returnValue", "callchainId"},
    "CUPTI_ACTIVITY_KIND_SYNCHRONIZATION": {"start", "end", "deviceId", "contextId", "greenContextId", "streamId",
                                            "correlationId", "globalPid", "deprecatedSyncType", "syncType", "eventId"},
    "NVTX_EVENTS": {"start", "end", "eventType", "rangeId", "category", "color", "text", "globalTid",
                    "endGlobalTid", "textId", "domainId"},
    "TARGET_INFO_GPU": {"vmId", "id", "name", "totalMemory", "memoryBandwidth", "clockRate", "smCount",
                        "computeMajor", "computeMinor"},
}


def test_synthetic_2025_export_has_the_documented_columns(tmp_path):
    con = sqlite3.connect(build_export(tmp_path / "t.sqlite"))
    for table, documented in DOCUMENTED_2025.items():
        have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        assert documented <= have, (table, documented - have)
