"""All analyses at scale: decodeprof vs `nsys stats` vs plain SQL on TILED traces.

    .venv/bin/python benchmarks/scale.py [--sizes 100000,1000000,5000000] [--write-results]

Traces are TILED, and labelled so in their file names and in the output: every event table
of a real H100 export (tests/data/h100/baseline: eager decode, many launches; nsys 2025.3)
is repeated back to back in time (start/end shifted by the fixture's span, correlationId
past its largest id; kernels, runtime, memcpy, sync, NVTX and OS-runtime rows alike, see
benchmarks/load_readers.py:tile) until the kernel table holds about N rows. The run folder's
metrics.json is copied beside each tiled export so every analysis has its inputs.

For each size, each tool runs in its own subprocess under /usr/bin/time (wall time and peak
RSS of that process and its children), one after the other on the same file:
  decodeprof cold    `decodeprof analyze T --json > /dev/null` (no cache: SQLite -> frames ->
                     all analyses -> JSON)
  decodeprof +cache  the same with --cache, first run (also writes the caches: frames and
                     analysis results as Parquet, and the printed bytes)
  decodeprof cached  the same with --cache again (the printed bytes, served before polars is
                     imported; the trace is not read)
  ... tables         the same without --json (rich tables, 20 rows each, to /dev/null): the
                     first run reads the results cache and keeps its tables, the second is served
  ... results only   --cache --json with the printed outputs removed: results from Parquet
  ... frames only    --cache --json with results and outputs removed: frames from the Parquet
                     cache, every analysis run again (and its results kept again)
  library, fast JSON load_trace (every column) + run_all in Python, each frame written whole by
                     polars' write_json (the library path, none of the CLI's column pruning,
                     row encoder or allocator settings)
  nsys stats         Debian's nsys 2022.4: gpukernsum, cudaapisum, nvtxsum, gpumemtimesum, CSV
  sqlite3 SQL        /usr/bin/sqlite3: per-name kernel, API, NVTX and memcpy sums (count,
                     total, min, max; no median)
Large files live in a temporary folder (default under /tmp) and are removed at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from load_readers import tile  # noqa: E402

FIXTURE = REPO / "tests/data/h100/baseline"
NSYS_REPORTS = "gpukernsum,cudaapisum,nvtxsum,gpumemtimesum"
SQL = """
SELECT s.value, COUNT(*), SUM(k.end - k.start), AVG(k.end - k.start), MIN(k.end - k.start), MAX(k.end - k.start)
  FROM CUPTI_ACTIVITY_KIND_KERNEL AS k JOIN StringIds AS s ON s.id = k.shortName GROUP BY k.shortName;
SELECT s.value, COUNT(*), SUM(r.end - r.start), AVG(r.end - r.start), MIN(r.end - r.start), MAX(r.end - r.start)
  FROM CUPTI_ACTIVITY_KIND_RUNTIME AS r JOIN StringIds AS s ON s.id = r.nameId GROUP BY r.nameId;
SELECT COALESCE(n.text, s.value), COUNT(*), SUM(n.end - n.start), MIN(n.end - n.start), MAX(n.end - n.start)
  FROM NVTX_EVENTS AS n LEFT JOIN StringIds AS s ON s.id = n.textId WHERE n.end IS NOT NULL GROUP BY 1;
SELECT m.copyKind, COUNT(*), SUM(m.bytes), SUM(m.end - m.start) FROM CUPTI_ACTIVITY_KIND_MEMCPY AS m GROUP BY m.copyKind;
"""

FAST_JSON = """
import json, sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from decodeprof.analyses import run_all, why_empty
from decodeprof.commands.analyze import _load, analyses_json
trace = _load(Path(sys.argv[1]), None, None, False)
frames = run_all(trace)
head = analyses_json(trace, {{}}, sys.argv[1])
del head["analyses"]
head["empty_because"] = {{n: why_empty(trace, n) for n, f in frames.items() if f.is_empty()}}
with open(sys.argv[2], "wb") as fh:
    fh.write(json.dumps(head)[:-1].encode() + b', "analyses": {{')
    for i, (name, frame) in enumerate(frames.items()):
        fh.write((", " if i else "").encode() + json.dumps(name).encode() + b": ")
        frame.write_json(fh)
    fh.write(b"}}}}")
"""


def nsys_path() -> Path | None:
    for p in (os.environ.get("NSYS"), REPO / ".tools/nsys/usr/lib/nsight-systems/bin/nsys", shutil.which("nsys")):
        if p and Path(p).is_file():
            return Path(p)
    return None


def timed(cmd: list[str], *, stdout=subprocess.DEVNULL, stdin=None, env=None) -> dict:
    """Run `cmd` under /usr/bin/time: wall seconds and peak RSS (MB) of the process tree's max."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        proc = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", tf.name, *cmd], stdout=stdout, stdin=stdin,
                              stderr=subprocess.PIPE, text=True, env=env, check=False)
        last = tf.read().strip().splitlines()[-1].split()
    out = {"seconds": float(last[0]), "peak_mb": int(last[1]) / 1024, "rc": proc.returncode}
    if proc.returncode != 0:
        out["error"] = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
    return out


def build(size: int, folder: Path) -> tuple[Path, dict]:
    label = f"TILED-{size // 1000}k-from-h100-baseline"
    run_dir = folder / label
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / f"{label}.sqlite"
    t0 = time.perf_counter()
    info = tile(FIXTURE / "trace.sqlite", target, size)
    info["build_s"] = time.perf_counter() - t0
    info["label"] = f"TILED x{info['copies']} from tests/data/h100/baseline"
    shutil.copy(FIXTURE / "metrics.json", run_dir / "metrics.json")
    return target, info


def measure(target: Path, tmp: Path) -> dict:
    py = sys.executable
    analyze = [py, "-m", "decodeprof", "analyze", str(target), "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cache = target.with_name(target.name + ".decodeprof-cache")
    shutil.rmtree(cache, ignore_errors=True)
    res = {"decodeprof cold": timed(analyze, env=env)}
    res["decodeprof +cache (writes)"] = timed(analyze + ["--cache"], env=env)
    res["decodeprof cached"] = timed(analyze + ["--cache"], env=env)
    res["decodeprof cached, tables (no --json), keeps them"] = timed(analyze[:-1] + ["--cache"], env=env)
    res["decodeprof cached, tables (no --json)"] = timed(analyze[:-1] + ["--cache"], env=env)
    shutil.rmtree(cache / "outputs", ignore_errors=True)
    res["decodeprof results cache only (printed output removed)"] = timed(analyze + ["--cache"], env=env)
    shutil.rmtree(cache / "outputs", ignore_errors=True)
    for results in cache.glob("results-*"):
        shutil.rmtree(results)
    res["decodeprof cached frames only, analyses rerun"] = timed(analyze + ["--cache"], env=env)
    shutil.rmtree(cache, ignore_errors=True)
    res["library, fast JSON"] = timed([py, "-c", FAST_JSON.format(repo=str(REPO)), str(target), str(tmp / "fast.json")], env=env)
    nsys = nsys_path()
    if nsys is not None:
        out = tmp / "nsys"
        res["nsys stats"] = timed([str(nsys), "stats", "--report", NSYS_REPORTS, "--format", "csv", "--force-overwrite",
                                   "true", "--output", str(out), str(target)])
    with open(os.devnull, "w") as sink, tempfile.TemporaryFile("w+") as sql:
        sql.write(SQL)
        sql.seek(0)
        res["sqlite3 SQL"] = timed(["sqlite3", f"file:{target}?mode=ro"], stdin=sql, stdout=sink)
    return res


def table(rows: list[tuple[str, dict, dict]]) -> str:
    lines = ["| trace | tool | time s | peak RSS MB | time vs nsys stats | RSS vs nsys stats |",
             "| --- | --- | --- | --- | --- | --- |"]
    for label, info, res in rows:
        ref = res.get("nsys stats")
        for tool, r in res.items():
            if r.get("rc"):
                lines.append(f"| {label} | {tool} | FAILED: {r.get('error', '')} | | | |")
                continue
            ratio = f"{r['seconds'] / ref['seconds']:.2f}x" if ref and not ref.get("rc") else "n/a"
            mem = f"{r['peak_mb'] / ref['peak_mb']:.2f}x" if ref and not ref.get("rc") else "n/a"
            lines.append(f"| {label} | {tool} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | {ratio} | {mem} |")
    return "\n".join(lines)


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    mem = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))) / 2**20
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, load average {load:.1f} at start, Python {platform.python_version()}"


def write_results(text: str) -> None:
    path = REPO / "benchmarks/RESULTS.md"
    old = path.read_text()
    head, _, rest = old.partition("\n## ")
    path.write_text(f"{head.rstrip()}\n\n{text.strip()}\n\n## {rest}" if rest else f"{old.rstrip()}\n\n{text}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000,5000000", help="kernel counts to tile to")
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the tiled exports (default: a new /tmp folder)")
    parser.add_argument("--write-results", action="store_true", help="add a dated section to benchmarks/RESULTS.md")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="decodeprof-scale-", dir=args.tmp))
    rows = []
    try:
        host = machine()
        print(host, flush=True)
        for size in (int(s) for s in args.sizes.split(",")):
            target, info = build(size, base)
            r = info["rows"]
            label = (f"{info['label']}: {r['CUPTI_ACTIVITY_KIND_KERNEL']:,} kernels, {r['CUPTI_ACTIVITY_KIND_RUNTIME']:,} API, "
                     f"{r.get('NVTX_EVENTS', 0):,} NVTX, {r.get('CUPTI_ACTIVITY_KIND_MEMCPY', 0):,} memcpy, "
                     f"{r.get('OSRT_API', 0):,} OSRT rows, {info['bytes'] / 1e6:.0f} MB")
            print(f"{label} (built in {info['build_s']:.1f} s)", flush=True)
            res = measure(target, base)
            for tool, m in res.items():
                print(f"  {tool:28s} {m['seconds']:7.2f} s  {m['peak_mb']:6.0f} MB {m.get('error', '')}", flush=True)
            rows.append((label, info, res))
            shutil.rmtree(target.parent, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = table(rows)
    print("\n" + text)
    if args.write_results:
        day = dt.date.today().isoformat()
        write_results(f"## {day} — analyses at scale on TILED traces (CPU machine: {host})\n\n"
                      f"    .venv/bin/python benchmarks/scale.py --sizes {args.sizes} --write-results\n\n{text}\n")


if __name__ == "__main__":
    main()
