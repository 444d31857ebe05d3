"""Bad input to decodeprof.load: each case is one TraceFileError naming the file, the problem
and the fix. Inputs are built here (a SYNTHETIC export from tests/test_load_synthetic.py
is the valid file that gets damaged)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from decodeprof.errors import TraceFileError
from decodeprof.load import load_trace
from test_load_synthetic import build_export


def _fails(path, *words):
    with pytest.raises(TraceFileError) as info:
        load_trace(path)
    err = info.value
    assert str(path) in err.message
    for word in words:
        assert word in err.message
    assert err.hint  # says what to do
    return err


def test_missing_file(tmp_path):
    _fails(tmp_path / "nope.sqlite", "no such file")


def test_missing_report(tmp_path):
    _fails(tmp_path / "nope.nsys-rep", "no such report")


def test_a_text_file_named_nsys_rep_is_not_sent_to_nsys(tmp_path, monkeypatch):
    monkeypatch.setenv("NSYS", "/nonexistent")  # nsys must not even be looked for
    path = tmp_path / "trace.nsys-rep"
    path.write_text("hello\n")
    _fails(path, "not an Nsight Systems report")


def test_truncated_export(tmp_path):
    path = build_export(tmp_path / "t.sqlite", steps=20)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _fails(path, "truncated")


def test_file_cut_inside_the_header(tmp_path):
    path = tmp_path / "t.sqlite"
    path.write_bytes(build_export(tmp_path / "full.sqlite").read_bytes()[:50])
    _fails(path, "not an SQLite database")


def test_not_sqlite(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("start,end\n1,2\n")
    _fails(path, "not an SQLite database")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.sqlite"
    path.write_bytes(b"")
    _fails(path, "not an SQLite database")


def test_sqlite_that_is_not_an_nsys_export(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE users (id INTEGER, name TEXT)")
    _fails(path, "not an Nsight Systems export")


def test_corrupt_pages(tmp_path):
    path = build_export(tmp_path / "c.sqlite", steps=50)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page: len(data)] = b"\xff" * (len(data) - page)  # keep the header page, garble the rest
    path.write_bytes(bytes(data))
    _fails(path)


def test_folder_without_a_trace(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    _fails(tmp_path, "no trace")


def test_folder_with_several_traces_and_no_trace_sqlite(tmp_path):
    build_export(tmp_path / "a.sqlite")
    build_export(tmp_path / "b.sqlite")
    _fails(tmp_path, "several traces")


def test_bad_metrics_json_in_a_run_folder(tmp_path):
    build_export(tmp_path / "trace.sqlite")
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(TraceFileError) as info:
        load_trace(tmp_path)
    assert str(tmp_path / "metrics.json") in info.value.message


def test_impossible_rows_are_dropped_counted_and_said(tmp_path):
    """Kernels and a copy ending before they start, and a negative byte count (a
    damaged export, made here from the graph sample with SQL): each row is dropped at the
    loader, counted by reason, and said in every output; no total goes negative."""
    import json
    import shutil
    import subprocess
    import sys

    db = tmp_path / "t.sqlite"
    shutil.copy(Path(__file__).parent / "data" / "h100" / "graph" / "trace.sqlite", db)
    with sqlite3.connect(db) as con:
        con.execute('UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET "end" = start - 5000 WHERE rowid IN (1, 2)')
        con.execute('UPDATE CUPTI_ACTIVITY_KIND_MEMCPY SET "end" = start - 1 WHERE rowid = 1')
        con.execute("UPDATE CUPTI_ACTIVITY_KIND_MEMCPY SET bytes = -1 WHERE rowid = 2")
        kernels = con.execute("SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL").fetchone()[0]
    out = subprocess.run([sys.executable, "-m", "decodeprof", "analyze", str(db), "--json"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert sorted(doc["dropped"]) == ["1 memcpys row(s) dropped: ends before it starts",
                                      "1 memcpys row(s) dropped: negative byte count",
                                      "2 kernels row(s) dropped: ends before it starts"]
    summary = doc["analyses"]["kernel_summary"]
    assert sum(r["count"] for r in summary) == kernels - 2 and min(r["min_ns"] for r in summary) >= 0
    tables = subprocess.run([sys.executable, "-m", "decodeprof", "analyze", str(db), "--only", "kernel_summary"],
                            capture_output=True, text=True, timeout=300)
    assert "dropped: 2 kernels row(s) dropped: ends before it starts" in tables.stdout
    from decodeprof.report import load_variant

    assert "2 kernels row(s) dropped: ends before it starts" in load_variant(db).missing


H200 = Path(__file__).parent / "data" / "h200" / "baseline" / "trace.sqlite"
K = "CUPTI_ACTIVITY_KIND_KERNEL"
MID = f"rowid = (SELECT rowid FROM {K} ORDER BY rowid LIMIT 1 OFFSET 700)"


def _damaged(tmp_path: Path, *statements: str, unlock: tuple[str, ...] = ()) -> Path:
    """A copy of the H200 baseline export with `statements` run on it (NOT NULL lifted from
    the `unlock` tables first, as damage would ignore it)."""
    import shutil

    db = tmp_path / "trace.sqlite"
    shutil.copy(H200, db)
    con = sqlite3.connect(db)
    if unlock:
        con.execute("PRAGMA writable_schema=ON")
        for t in unlock:
            con.execute("UPDATE sqlite_master SET sql = replace(sql, 'NOT NULL', '') WHERE name = ?", (t,))
        version = con.execute("PRAGMA schema_version").fetchone()[0]
        con.execute(f"PRAGMA schema_version = {version + 1}")
        con.commit()
        con.close()
        con = sqlite3.connect(db)
    for s in statements:
        con.execute(s)
    con.commit()
    con.close()
    return db


def test_every_kind_of_impossible_row_is_dropped_and_said(tmp_path):
    """One row of each kind of damage nsys never writes, each dropped with its reason; the
    rest of the 1,560 kernels kept."""
    db = _damaged(
        tmp_path,
        f"UPDATE {K} SET deviceId = NULL WHERE {MID}",
        f"UPDATE {K} SET start = 'abc' WHERE rowid = 3",
        f"UPDATE {K} SET \"end\" = 4611686018427387904 WHERE rowid = 4",
        f"UPDATE {K} SET start = start + 10 * (SELECT duration FROM ANALYSIS_DETAILS), "
        f"\"end\" = \"end\" + 10 * (SELECT duration FROM ANALYSIS_DETAILS) WHERE rowid = 5",
        f"INSERT INTO {K} SELECT * FROM {K} WHERE rowid = 6",
        "UPDATE CUPTI_ACTIVITY_KIND_MEMCPY SET bytes = 4611686018427387904 WHERE rowid = 1",
        "UPDATE CUPTI_ACTIVITY_KIND_RUNTIME SET globalTid = 9223372036854775807 WHERE rowid = 9",
        unlock=(K,))
    trace = load_trace(db)
    assert sorted(trace.dropped()) == sorted([
        "1 kernels row(s) dropped: no device id", "1 kernels row(s) dropped: no start time",
        "1 kernels row(s) dropped: a time past +-2^61 ns", "1 kernels row(s) dropped: a copy of an earlier row",
        f"1 kernels row(s) dropped: outside the capture (0 to {102845463 + 1028454:,} ns)",
        "1 memcpys row(s) dropped: byte count past 1 PiB", "1 runtime row(s) dropped: a process the export does not list"])
    assert trace.kernels.height == 1560 - 4 and trace.memcpys.height == 5
    assert (trace.kernels["dur_ns"] >= 0).all()


def test_unnamed_kinds_and_ids_are_kept_by_number_and_counted(tmp_path):
    db = _damaged(tmp_path, "UPDATE CUPTI_ACTIVITY_KIND_MEMCPY SET srcKind = 99 WHERE rowid = 1",
                  f"UPDATE {K} SET shortName = 987654321 WHERE {MID}")
    trace = load_trace(db)
    assert trace.memcpys["src_kind"].to_list().count("srcKind=99") == 1
    assert trace.kernels["name"].to_list().count("shortName=987654321") == 1
    assert sorted(trace.dropped()) == [
        "1 kernels row(s) kept: shortName id absent from StringIds (kept as shortName=<id>)",
        "1 memcpys row(s) kept: src kind unknown to the export's ENUM table (kept as srcKind=<number>)"]


def test_absent_stringids_and_enum_tables_are_missing_tables(tmp_path):
    db = _damaged(tmp_path, "DROP TABLE StringIds", "DROP TABLE ENUM_CUDA_MEM_KIND")
    trace = load_trace(db)
    said = [m.sentence() for m in trace.missing]
    assert any(s.startswith("names unreadable (table StringIds absent)") for s in said)
    assert any(s.startswith("memory kinds unreadable (table ENUM_CUDA_MEM_KIND absent)") for s in said)
    assert trace.kernels["name"].str.starts_with("shortName=").all()  # told apart by id, not merged as blanks


def test_an_enum_table_named_by_its_label_column_is_said(tmp_path):
    db = _damaged(tmp_path, 'ALTER TABLE ENUM_CUDA_MEM_KIND RENAME COLUMN "name" TO "was_name"')
    trace = load_trace(db)
    assert "Pageable" in trace.memcpys["src_kind"].to_list()  # the label: the same kinds in other words
    said = [m.sentence() for m in trace.missing]
    assert "memory kinds names not in the export (column ENUM_CUDA_MEM_KIND.name absent): memory kinds are " \
           "shown by the table's label column instead" in " ".join(said)


def test_a_table_without_a_column_every_export_has_is_refused(tmp_path):
    db = _damaged(tmp_path, f'ALTER TABLE {K} RENAME COLUMN "deviceId" TO "dev"')
    _fails(db, K, "deviceId")


def test_an_export_whose_kernels_are_mostly_impossible_is_refused(tmp_path):
    db = _damaged(tmp_path, f"UPDATE {K} SET start = start + 1000000000000000000, \"end\" = \"end\" + 1000000000000000000")
    _fails(db, "1560 of its 1560 kernels rows are impossible")


def test_blob_and_non_utf8_cells_are_read_not_fatal(tmp_path):
    db = _damaged(tmp_path, f"UPDATE {K} SET \"end\" = x'00ff' WHERE rowid = 2",
                  "UPDATE StringIds SET value = CAST(x'67656d76ff' AS TEXT) WHERE id = "
                  f"(SELECT shortName FROM {K} WHERE rowid = 1)")
    trace = load_trace(db)
    assert "1 kernels row(s) dropped: no end time" in trace.dropped()
    assert "gemv\ufffd" in trace.kernels["name"].to_list()


def test_ncu_rows_that_cannot_be_read_are_counted_and_bad_csvs_refused(tmp_path):
    from decodeprof.errors import NcuCsvError
    from decodeprof.load.ncu_csv import read_ncu_csv
    from test_load_ncu_csv import DETAILS, HEAD

    good = tmp_path / "good.csv"
    good.write_text(DETAILS.replace('"12.35"', '"1e400"').replace('"0","4242","python3","127.0.0.1","rmsnorm',
                                                                      '"1e30","4242","python3","127.0.0.1","rmsnorm') + "\n")
    frame, dropped = read_ncu_csv(good)
    assert {d["reason"]: d["rows"] for d in dropped} == {"value not finite": 1}
    for text, words in ((DETAILS.replace(HEAD, HEAD + ',"Metric Value"'), "more than once"),
                        (DETAILS + '\n"1","4242","pyth', "ends inside a quoted field")):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(NcuCsvError, match=words):
            read_ncu_csv(bad)


def test_an_export_failing_sqlites_integrity_check_is_refused(tmp_path):
    """A damaged page in a table the loader never reads: every frame still reads, and only
    SQLite's own check can tell the file is not what nsys wrote."""
    db = _damaged(tmp_path, "CREATE TABLE unread_by_decodeprof (x)",
                  "INSERT INTO unread_by_decodeprof SELECT value FROM StringIds")
    con = sqlite3.connect(db)
    (root,) = con.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'unread_by_decodeprof'").fetchone()
    (page_size,) = con.execute("PRAGMA page_size").fetchone()
    con.close()
    with open(db, "r+b") as f:  # the b-tree page's type byte: no valid page has 0xFF there
        f.seek((root - 1) * page_size)
        f.write(b"\xff")
    _fails(db, "fails SQLite's integrity check")
