"""Measure SQLite -> polars readers, and decodeprof's loader, on a large nsys export.

    .venv/bin/python benchmarks/load_readers.py [EXPORT.sqlite] --kernels 1000000

The large export is TILED, and labelled so in the output: every event table of a real
fixture (or, when none is given or found, the synthetic export of
tests/test_load_synthetic.py) is repeated back to back in time, with start/end shifted by
the fixture's span and correlationId shifted past its largest id, until the kernel table
holds about --kernels rows. Each reader runs in a fresh subprocess so its peak RSS
(ru_maxrss of that child) is its own.

Readers compared on the same two queries (kernels joined to StringIds; runtime with the
globalTid split), each returning a polars DataFrame:
  sqlite3+from_records  stdlib sqlite3 cursor.fetchall() -> polars.DataFrame(orient="row")
  adbc                  adbc-driver-sqlite cursor.fetch_arrow_table() -> polars.from_arrow
  connectorx            polars.read_database_uri(engine="connectorx")
  decodeprof            decodeprof.load.load_trace (all frames, the reader it ships with)
  decodeprof-cached     the same with cache=True, run twice: the first run reads SQLite and
                        writes the Parquet cache, the second reads the cache
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

QUERIES = {
    "kernels": """SELECT k.start, k.end, k.deviceId, k.streamId, k.correlationId, k.globalPid,
                   s.value AS name, d.value AS demangled, k.gridX, k.blockX, k.registersPerThread
            FROM CUPTI_ACTIVITY_KIND_KERNEL AS k
            LEFT JOIN StringIds AS s ON s.id = k.shortName
            LEFT JOIN StringIds AS d ON d.id = k.demangledName""",
    "runtime": """SELECT r.start, r.end, s.value AS name, r.globalTid,
                   (r.globalTid >> 24) << 24 AS global_pid, r.globalTid & 16777215 AS tid, r.correlationId
            FROM CUPTI_ACTIVITY_KIND_RUNTIME AS r LEFT JOIN StringIds AS s ON s.id = r.nameId""",
}


def _event_tables(con: sqlite3.Connection, schema: str = "main") -> list[str]:
    names = [r[0] for r in con.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type='table'")]
    out = []
    for name in names:
        cols = {r[1] for r in con.execute(f"PRAGMA {schema}.table_info({name})")}
        if "start" in cols and name != "sqlite_sequence":
            out.append(name)
    return out


def tile(source: Path, target: Path, kernels: int) -> dict:
    """Write `target`: `source` with every event table repeated in time to ~`kernels` kernels."""
    con = sqlite3.connect(target)
    con.execute("ATTACH DATABASE ? AS src", (str(source),))
    n_kernels = con.execute("SELECT COUNT(*) FROM src.CUPTI_ACTIVITY_KIND_KERNEL").fetchone()[0]
    if n_kernels == 0:
        raise SystemExit(f"{source} has no kernels to tile")
    copies = max(1, -(-kernels // n_kernels))
    events = _event_tables(con, "src")
    lo, hi, max_corr = None, None, 0
    for t in events:
        cols = {r[1] for r in con.execute(f"PRAGMA src.table_info({t})")}
        a, b = con.execute(f"SELECT MIN(start), MAX(COALESCE({'end' if 'end' in cols else 'start'}, start)) FROM src.{t}").fetchone()
        if a is not None:
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
        if "correlationId" in cols:
            max_corr = max(max_corr, con.execute(f"SELECT COALESCE(MAX(correlationId), 0) FROM src.{t}").fetchone()[0])
    span = (hi - lo) + 1_000
    for (sql,) in con.execute("SELECT sql FROM src.sqlite_master WHERE type='table' AND name != 'sqlite_sequence'").fetchall():
        con.execute(sql)
    con.execute(f"CREATE TEMP TABLE tiles AS WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {copies - 1}) SELECT i FROM n")
    tables = [r[0] for r in con.execute("SELECT name FROM src.sqlite_master WHERE type='table' AND name != 'sqlite_sequence'")]
    for t in tables:
        cols = [r[1] for r in con.execute(f"PRAGMA src.table_info({t})")]
        if t in events:
            exprs = []
            for c in cols:
                if c in ("start", "end"):
                    exprs.append(f'"{c}" + tiles.i * {span}')
                elif c == "correlationId":
                    exprs.append(f"correlationId + tiles.i * {max_corr + 1}")
                else:
                    exprs.append(f'"{c}"')
            order = "tiles.i, start" if "start" in cols else "tiles.i"
            con.execute(f"INSERT INTO main.{t} SELECT {', '.join(exprs)} FROM src.{t}, tiles ORDER BY {order}")
        else:
            con.execute(f"INSERT INTO main.{t} SELECT * FROM src.{t}")
    con.commit()
    counts = {t: con.execute(f"SELECT COUNT(*) FROM main.{t}").fetchone()[0] for t in events}
    con.close()
    return {"source": str(source), "copies": copies, "span_ns": span, "rows": counts,
            "bytes": target.stat().st_size, "label": f"TILED x{copies} from {source.name}"}


def _read(reader: str, path: Path) -> dict:
    """Run in a child process: one reader on both queries (or the full loader)."""
    import polars as pl

    t0 = time.perf_counter()
    rows = {}
    if reader.startswith("decodeprof"):
        sys.path.insert(0, str(REPO))
        from decodeprof.load import load_trace

        trace = load_trace(path, cache=reader == "decodeprof-cached")
        rows = {f: trace.frame(f).height for f in ("kernels", "runtime", "memcpys", "syncs", "nvtx")}
    else:
        for name, sql in QUERIES.items():
            if reader == "sqlite3+from_records":
                con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                cur = con.execute(sql)
                cols = [d[0] for d in cur.description]
                df = pl.DataFrame(cur.fetchall(), schema=cols, orient="row", infer_schema_length=None)
                con.close()
            elif reader == "adbc":
                import adbc_driver_sqlite.dbapi as adbc

                with adbc.connect(str(path)) as con, con.cursor() as cur:
                    cur.execute(sql)
                    df = pl.from_arrow(cur.fetch_arrow_table())
            elif reader == "connectorx":
                df = pl.read_database_uri(sql, f"sqlite://{path}", engine="connectorx")
            else:
                raise SystemExit(f"unknown reader {reader}")
            rows[name] = df.height
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"reader": reader, "seconds": round(seconds, 3), "peak_rss_mb": round(peak_mb, 1), "rows": rows}


def _default_source(tmp: Path) -> Path:
    real = sorted(REPO.glob("tests/data/h100/*/trace.sqlite"))
    if real:
        baseline = [p for p in real if p.parent.name == "baseline"]
        return (baseline or real)[0]
    sys.path.insert(0, str(REPO / "tests"))
    from test_load_synthetic import build_export  # noqa: E402  (SYNTHETIC: said in the output)

    return build_export(tmp / "synthetic.sqlite", steps=200, kernels_per_step=20)


def main() -> None:
    sys.path.insert(0, str(REPO))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", type=Path, help="export to tile (default: a tests/data/h100 fixture)")
    parser.add_argument("--kernels", type=int, default=1_000_000)
    parser.add_argument("--readers", default="sqlite3+from_records,adbc,connectorx,decodeprof,decodeprof-cached")
    parser.add_argument("--keep", type=Path, help="write the tiled export here and keep it")
    parser.add_argument("--child", nargs=2, metavar=("READER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_read(args.child[0], Path(args.child[1]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        source = args.source or _default_source(Path(tmp))
        target = args.keep or Path(tmp) / "tiled.sqlite"
        if target.exists():
            target.unlink()
        t0 = time.perf_counter()
        info = tile(source, target, args.kernels)
        print(f"{info['label']}: {info['rows']}, {info['bytes'] / 1e6:.0f} MB, built in {time.perf_counter() - t0:.1f} s")
        from decodeprof.load.cache import cache_dir

        shutil.rmtree(cache_dir(target), ignore_errors=True)
        readers = []
        for reader in args.readers.split(","):
            readers += [reader, reader] if reader == "decodeprof-cached" else [reader]
        for reader in readers:
            note = ""
            if reader == "decodeprof-cached":
                note = " (from cache)" if cache_dir(target).is_dir() else " (SQLite + writes cache)"
            proc = subprocess.run([sys.executable, __file__, "--child", reader, str(target)],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"{reader:42s} FAILED: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{reader + note:42s} {r['seconds']:7.2f} s  peak RSS {r['peak_rss_mb']:7.0f} MB  rows {r['rows']}")


if __name__ == "__main__":
    main()
