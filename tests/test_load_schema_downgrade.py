"""SYNTHETIC downgrade, not a real old capture: the loader reads a real nsys 2025.3 export
rewritten to the pre-Dec-2023 column layout, and returns exactly the same frames.

No export captured with nsys 2023.4 can be obtained here, so each H100 fixture
(tests/data/h100/<variant>/trace.sqlite, EXPORT_SCHEMA_VERSION 3.20.3, see its README) is
copied into tmp_path and rolled back, step by step, along NVIDIA's export schema changelog:
`host/target-linux-x64/exporter/export_schema_version_notes.txt` as bundled with nsys 2025.3.1
(a copy: /work/.device/1/exp/export_schema_version_notes.txt). That file starts at 3.7.3
("approx Dec 2023"), so the result has the layout it implies for schema < 3.7.3, i.e. before
the 3.17.0 sync-type rename:

- 3.17.0: SYNCHRONIZATION.syncType was renamed deprecatedSyncType and a new syncType added,
  plus eventSyncId. Rolled back to one `syncType` holding the old column's values. The 2025.3
  fixtures leave deprecatedSyncType NULL in every row, so where it is NULL the new syncType's
  value is kept: the file stays loadable, but that code set is not CUPTI's (2 for a
  cudaStreamSynchronize), so the downgraded file's sync names are not to be trusted.
- 3.17.2 MEMCPY.copyCount and 3.13.2 NVTX_EVENTS.binaryData dropped.
- Tables the changelog lists as added after 3.7.3 dropped where present: META_DATA_CAPTURE
  (3.11.0), TARGET_INFO_CUDA_DEVICE (3.16.4), NVTX_SCOPES (3.16.2), CUPTI_ACTIVITY_KIND_CUDA_EVENT
  (3.10.0; which also takes its 3.17.0 eventSyncId), ANALYSIS_FILE (3.8.5), DIAGNOSTIC_EVENT
  (3.8.4), ENUM_NSYS_GENERIC_EVENT_* (3.13.0), ENUM_SCHEDULING_THREAD_BLOCK (3.13.1).
- greenContextId dropped from the GPU activity tables. The changelog never mentions it; green
  contexts arrived with CUDA 12.4 (2024), after 2023.4, and the loader already treats it as
  optional (decodeprof/load/nsys_sqlite.py).
- META_DATA_EXPORT.EXPORT_PRODUCT_VERSION set to 2023.4.4.54. The EXPORT_SCHEMA_VERSION rows
  stay as exported: the changelog does not say which number 2023.4.4 wrote, and the loader
  picks columns by asking the file (PRAGMA table_info), never by version number.

What this shows: the loader handles that layout. What it cannot show: anything a real
2023.4 export does differently that the changelog does not record (row contents, enums,
other tables). Both copies are loaded with cache=False from separate folders, so no Parquet
cache (decodeprof.load.cache) is written or shared between them.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from decodeprof.analyses import run_all
from decodeprof.load import load_trace
from decodeprof.load.cache import cache_dir

H100 = Path(__file__).parent / "data" / "h100"
VARIANTS = ("baseline", "graph", "pinned", "streams")
FRAMES = ("kernels", "runtime", "memcpys", "memsets", "syncs", "nvtx", "gpus", "threads")
OLD_VERSION = "2023.4.4.54"

SYNC = "CUPTI_ACTIVITY_KIND_SYNCHRONIZATION"
GPU_ACTIVITY = ("CUPTI_ACTIVITY_KIND_KERNEL", "CUPTI_ACTIVITY_KIND_MEMCPY", "CUPTI_ACTIVITY_KIND_MEMSET", SYNC)
# Columns added after 3.7.3 per the changelog (greenContextId: see the module docstring).
NEW_COLUMNS = {("CUPTI_ACTIVITY_KIND_MEMCPY", "copyCount"), ("NVTX_EVENTS", "binaryData"), (SYNC, "eventSyncId")}
NEW_TABLES = ("META_DATA_CAPTURE", "TARGET_INFO_CUDA_DEVICE", "NVTX_SCOPES", "CUPTI_ACTIVITY_KIND_CUDA_EVENT",
              "ANALYSIS_FILE", "DIAGNOSTIC_EVENT", "ENUM_SCHEDULING_THREAD_BLOCK")
NEW_TABLE_PREFIXES = ("ENUM_NSYS_GENERIC_EVENT_",)


def layout(db: Path) -> dict[str, list[str]]:
    """{table: column names} of an SQLite file."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: [r[1] for r in con.execute(f'PRAGMA table_info("{t}")')] for t in tables}


def downgrade(db: Path) -> None:
    """Rewrite the export at `db` in place to the pre-3.7.3 layout (module docstring)."""
    have = layout(db)
    con = sqlite3.connect(db)
    try:
        for table in GPU_ACTIVITY:
            if "greenContextId" in have.get(table, ()):
                con.execute(f"ALTER TABLE {table} DROP COLUMN greenContextId")
        # 3.17.0 in reverse: the old syncType came back as deprecatedSyncType; keep its value
        # under the old name (the new column's code where this export left it NULL).
        con.execute(f"UPDATE {SYNC} SET deprecatedSyncType = COALESCE(deprecatedSyncType, syncType)")
        con.execute(f"ALTER TABLE {SYNC} DROP COLUMN syncType")
        con.execute(f"ALTER TABLE {SYNC} RENAME COLUMN deprecatedSyncType TO syncType")
        for table, column in sorted(NEW_COLUMNS):
            if column in have.get(table, ()):
                con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        for table in have:
            if table in NEW_TABLES or table.startswith(NEW_TABLE_PREFIXES):
                con.execute(f"DROP TABLE {table}")
        con.execute("UPDATE META_DATA_EXPORT SET value = ? WHERE name = 'EXPORT_PRODUCT_VERSION'", (OLD_VERSION,))
        con.commit()
    finally:
        con.close()


def same(got, want, what: str) -> None:
    """assert_frame_equal, exact, naming the frame in the failure."""
    try:
        assert_frame_equal(got, want, check_exact=True)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}") from None


def run_folder(src: Path, dst: Path) -> Path:
    """A copy of run folder `src` (export, metrics.json, ncu.csv; not the .nsys-rep) at `dst`."""
    dst.mkdir()
    for name in ("trace.sqlite", "metrics.json", "ncu.csv"):
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)
    return dst


@pytest.mark.parametrize("variant", VARIANTS)
def test_synthetic_downgrade_of_2025_3_export_to_pre_3_17_layout_loads_the_same(variant, tmp_path):
    """SYNTHETIC: a real nsys 2025.3 export rolled back per NVIDIA's schema changelog to the
    schema < 3.7.3 (pre-3.17) layout, NOT a capture made with nsys 2023.4. See the module
    docstring for each step and the changelog's path."""
    src = H100 / variant
    if not (src / "trace.sqlite").is_file():
        pytest.fail(f"fixture {src / 'trace.sqlite'} not present")
    new = run_folder(src, tmp_path / "as_exported")
    old = run_folder(src, tmp_path / "downgraded")
    before = layout(old / "trace.sqlite")
    downgrade(old / "trace.sqlite")
    after = layout(old / "trace.sqlite")

    # The rollback really happened (so equality below is not a no-op on these fixtures).
    assert {"greenContextId", "deprecatedSyncType", "eventSyncId"} <= set(before[SYNC])
    assert after[SYNC].count("syncType") == 1 and not {"deprecatedSyncType", "eventSyncId"} & set(after[SYNC])
    assert all("greenContextId" not in cols for cols in after.values())
    memcpy = "CUPTI_ACTIVITY_KIND_MEMCPY"
    assert "copyCount" in before[memcpy] and "copyCount" not in after[memcpy]
    assert "binaryData" in before["NVTX_EVENTS"] and "binaryData" not in after["NVTX_EVENTS"]
    assert {"META_DATA_CAPTURE", "TARGET_INFO_CUDA_DEVICE", "CUPTI_ACTIVITY_KIND_CUDA_EVENT"} <= set(before)
    assert not set(after) & set(NEW_TABLES) and not any(t.startswith(NEW_TABLE_PREFIXES) for t in after)
    with sqlite3.connect(f"file:{old / 'trace.sqlite'}?mode=ro", uri=True) as con:
        assert con.execute(f"SELECT count(*) FROM {SYNC} WHERE syncType IS NULL").fetchone() == (0,)

    a = load_trace(new, cache=False)
    b = load_trace(old, cache=False)
    assert a.meta["nsys_version"].startswith("2025.3")
    assert b.meta["nsys_version"] == OLD_VERSION
    assert b.missing == a.missing
    for name in FRAMES:
        assert a.frame(name).height > 0 or name == "memsets", name
        # sync names differ by design: the 2025.3 codes stay raw, the downgraded file names them
        drop = ["sync_type"] if name == "syncs" else []
        same(b.frame(name).drop(drop), a.frame(name).drop(drop), f"{variant}: frame {name}")
    assert a.syncs["sync_type"].str.starts_with("syncType=").all()

    outputs_new, outputs_old = run_all(a, steps=8), run_all(b, steps=8)
    assert list(outputs_old) == list(outputs_new)
    for name, frame in outputs_new.items():
        same(outputs_old[name], frame, f"{variant}: analysis {name}")
    assert not cache_dir(new / "trace.sqlite").exists() and not cache_dir(old / "trace.sqlite").exists()
