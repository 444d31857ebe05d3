"""load_ncu_csv on Nsight Compute CSVs.

The CSVs below are WRITTEN BY HAND from ncu's documented CSV layout (`--csv --page
details`: one row per kernel x metric; `--csv --page raw`: one column per metric with a
units row), with ncu's ==PROF== lines and the profiled program's own output mixed in, as
`ncu --csv ... > file` produces. They stand in until a real ncu CSV of a decode run is
committed under tests/data/h100/ (then the real-file test runs too).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from decodeprof import schema
from decodeprof.errors import NcuCsvError
from decodeprof.load import load_ncu_csv, load_trace
from test_load_synthetic import build_export

HEAD = ('"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size",'
        '"Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"')
K0 = '"0","4242","python3","127.0.0.1","gemv_kernel","1","7","(256, 1, 1)","(64, 1, 1)","0","9.0"'
K1 = '"1","4242","python3","127.0.0.1","rmsnorm_kernel","1","7","(128, 1, 1)","(4, 1, 1)","0","9.0"'
DETAILS = "\n".join([
    "==PROF== Connected to process 4242 (/usr/bin/python3.12)",
    '==PROF== Profiling "gemv_kernel" - 0: 0%....50%....100% - 9 passes',
    "decode: 4 tokens",  # the program's own stdout
    "==WARNING== Found outstanding GPU clock reset, trying to revert...Success.",
    "==PROF== Disconnected from process 4242",
    HEAD,
    K0 + ',"GPU Speed Of Light Throughput","DRAM Frequency","Ghz","2.62"',
    K0 + ',"GPU Speed Of Light Throughput","Duration","usecond","12.35"',
    K0 + ',"GPU Speed Of Light Throughput","DRAM Throughput","%","41.20"',
    K0 + ',"Memory Workload Analysis","Memory Throughput","Gbyte/second","1,234.56"',
    K0 + ',"Memory Workload Analysis","DRAM Bytes Read","Mbyte","20.97"',
    K0 + ',"Launch Statistics","Registers Per Thread","register/thread","32"',
    K0 + ',"Memory Workload Analysis","Mem Busy","%","n/a"',
    K1 + ',"GPU Speed Of Light Throughput","Duration","msecond","1.5"',
    K1 + ',"Memory Workload Analysis","DRAM Bytes Read","Kbyte","1,536"',
])
RAW = "\n".join([
    "==PROF== Connected to process 4242 (/usr/bin/python3.12)",
    ('"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size",'
     '"Device","CC","dram__bytes_read.sum","gpu__time_duration.sum","dram__throughput.avg.pct_of_peak_sustained_elapsed",'
     '"launch__grid_size","device__attribute_display_name"'),
    '"","","","","","","","","","","","Mbyte","usecond","%","",""',
    K0 + ',"20.97","7.36","95.10","64","NVIDIA H100 80GB HBM3"',
    K1 + ',"0.50","2,000.5","3.00","4","NVIDIA H100 80GB HBM3"',
])


def _write(tmp_path: Path, text: str, name: str = "ncu.csv") -> Path:
    path = tmp_path / name
    path.write_text(text + "\n")
    return path


def _value(frame: pl.DataFrame, kernel: int, metric: str) -> tuple[str, float]:
    row = frame.filter((pl.col("kernel_id") == kernel) & (pl.col("metric") == metric))
    assert row.height == 1, (kernel, metric)
    return row["unit"][0], row["value"][0]


def test_details_page(tmp_path):
    df = load_ncu_csv(_write(tmp_path, DETAILS))
    assert df.schema == pl.Schema(schema.FRAMES["ncu_metrics"])
    assert df.height == 8  # 9 metric rows, "n/a" left out
    assert _value(df, 0, "Duration") == ("ns", pytest.approx(12_350))
    assert _value(df, 0, "DRAM Frequency") == ("Hz", pytest.approx(2.62e9))
    assert _value(df, 0, "DRAM Throughput") == ("percent", pytest.approx(41.2))
    assert _value(df, 0, "Memory Throughput") == ("bytes/s", pytest.approx(1234.56e9))
    assert _value(df, 0, "DRAM Bytes Read") == ("bytes", pytest.approx(20.97e6))
    assert _value(df, 0, "Registers Per Thread") == ("register/thread", 32)
    assert _value(df, 1, "Duration") == ("ns", pytest.approx(1.5e6))
    assert _value(df, 1, "DRAM Bytes Read") == ("bytes", pytest.approx(1_536_000))  # "1,536" Kbyte, 1000-based
    first = df.filter(pl.col("kernel_id") == 0).row(0, named=True)
    assert (first["kernel_name"], first["stream_id"], first["grid"], first["block"], first["section"]) == (
        "gemv_kernel", 7, "(64, 1, 1)", "(256, 1, 1)", "GPU Speed Of Light Throughput")


def test_kernel_dram_reads_the_details_page_and_explains_a_csv_without_its_metrics(tmp_path):
    import dataclasses

    from decodeprof.analyses import run
    from decodeprof.analyses.registry import why_empty
    from decodeprof.trace import Trace

    details = dataclasses.replace(Trace.empty(), ncu_metrics=load_ncu_csv(_write(tmp_path, DETAILS)))
    out = run("kernel_dram", details).sort("kernel_id")
    assert out["duration_ns"].to_list() == pytest.approx([12_350, 1.5e6])
    assert out["dram_throughput_pct"].to_list()[0] == pytest.approx(41.2)
    assert out["dram_bytes_per_s"].to_list() == [None, None]  # the details page has no DRAM byte counters
    other = load_ncu_csv(_write(tmp_path, "\n".join([HEAD, K0 + ',"Launch Statistics","Registers Per Thread","register/thread","32"']), "other.csv"))
    bare = dataclasses.replace(Trace.empty(), ncu_metrics=other)
    assert run("kernel_dram", bare).is_empty()
    assert "holds none of gpu__time_duration.sum" in why_empty(bare, "kernel_dram")[0]


def test_raw_page(tmp_path):
    df = load_ncu_csv(_write(tmp_path, RAW))
    assert df.schema == pl.Schema(schema.FRAMES["ncu_metrics"])
    assert df.height == 8  # 2 kernels x 4 numeric metrics; the display name is not a number
    assert _value(df, 0, "dram__bytes_read.sum") == ("bytes", pytest.approx(20.97e6))
    assert _value(df, 1, "gpu__time_duration.sum") == ("ns", pytest.approx(2_000_500))
    assert _value(df, 0, "dram__throughput.avg.pct_of_peak_sustained_elapsed") == ("percent", pytest.approx(95.1))
    assert _value(df, 1, "launch__grid_size") == ("", 4)
    assert set(df["section"]) == {""} and set(df["kernel_name"]) == {"gemv_kernel", "rmsnorm_kernel"}


def test_decimal_comma_locale(tmp_path):
    text = "\n".join([HEAD, K0 + ',"GPU Speed Of Light Throughput","Duration","usecond","1.234,5"',
                      K1 + ',"GPU Speed Of Light Throughput","Duration","usecond","12,5"'])
    df = load_ncu_csv(_write(tmp_path, text))
    assert _value(df, 0, "Duration")[1] == pytest.approx(1_234_500)
    assert _value(df, 1, "Duration")[1] == pytest.approx(12_500)


@pytest.mark.parametrize("text, value", [
    ("1,234", 1234.0), ("1,234,567", 1234567.0), ("1.234,5", 1234.5), ("1,234.5", 1234.5),
    ("0,123", 0.123), ("12,5", 12.5), ("1,5e3", 1500.0), ("1.234.567", 1234567.0),
    ("-3,25", -3.25), ("7", 7.0), ("n/a", None), ("", None),
])
def test_parse_number_thousands_and_decimal_commas(text, value):
    from decodeprof.load.ncu_csv import parse_number

    assert parse_number(text) == value


def test_not_an_ncu_csv(tmp_path):
    path = _write(tmp_path, "start,end,name\n1,2,k\n", "other.csv")
    with pytest.raises(NcuCsvError) as info:
        load_ncu_csv(path)
    assert str(path) in info.value.message and info.value.hint


def test_ncu_error_output_only(tmp_path):
    path = _write(tmp_path, "==PROF== Connected to process 1\n==ERROR== ERR_NVGPUCTRPERM - no permission\n")
    with pytest.raises(NcuCsvError) as info:
        load_ncu_csv(path)
    assert str(path) in info.value.message and "ERR_NVGPUCTRPERM" in info.value.message


def test_header_without_kernel_rows(tmp_path):
    with pytest.raises(NcuCsvError):
        load_ncu_csv(_write(tmp_path, HEAD))


def test_missing_csv(tmp_path):
    with pytest.raises(NcuCsvError):
        load_ncu_csv(tmp_path / "absent.csv")


def test_run_folder_loads_ncu_and_metrics(tmp_path):
    build_export(tmp_path / "trace.sqlite", steps=1)
    _write(tmp_path, DETAILS)
    (tmp_path / "metrics.json").write_text('{"tokens_per_s": 1234.5, "config": {"batch": 4}}')
    trace = load_trace(tmp_path)
    assert trace.ncu_metrics.height == 8
    assert trace.target_metrics.document == {"tokens_per_s": 1234.5, "config": {"batch": 4}}
    assert trace.target_metrics.config == {"batch": 4}


REAL = sorted((Path(__file__).parent / "data").glob("h100/*/ncu.csv"))
# Unit factors written out here from ncu's unit names (1000-based), independent of the loader.
FACTORS = {"ns": ("ns", 1), "nsecond": ("ns", 1), "usecond": ("ns", 1e3), "msecond": ("ns", 1e6), "byte": ("bytes", 1),
           "Kbyte": ("bytes", 1e3), "Mbyte": ("bytes", 1e6), "Gbyte": ("bytes", 1e9), "%": ("percent", 1)}


@pytest.mark.skipif(not REAL, reason="no real ncu CSV committed under tests/data/h100 yet")
@pytest.mark.parametrize("path", REAL, ids=[p.parent.name for p in REAL])
def test_real_ncu_csv(path):
    import csv

    df = load_ncu_csv(path)
    rows = list(csv.reader(ln for ln in path.read_text().splitlines() if ln.startswith('"')))
    header, units, kernels = rows[0], rows[1], rows[2:]
    assert units[0] == ""  # the raw page's units row
    assert df["kernel_id"].n_unique() == len(kernels)
    checked = 0
    for metric in ("gpu__time_duration.sum", "dram__bytes_read.sum", "dram__throughput.avg.pct_of_peak_sustained_elapsed"):
        if metric not in header:
            continue
        i = header.index(metric)
        unit, factor = FACTORS[units[i]]
        for row in kernels:
            expected = float(row[i].replace(",", "")) * factor
            got = df.filter((pl.col("kernel_id") == int(row[0])) & (pl.col("metric") == metric))
            assert got.select("unit", "value").row(0) == (unit, pytest.approx(expected)), (metric, row[0])
            checked += 1
    assert checked >= len(kernels)


def test_a_real_details_page_csv_gives_metric_rows_and_kernel_dram():
    """tests/data/h200/graph/ncu.csv is `ncu --csv --page details` (nsys 2025.3.1's ncu): its
    metric rows end at "Metric Value", four fields short of the header's rule columns, and
    were all dropped before. Every profiled kernel (distinct ID, counted with csv alone) now
    has its metrics, and kernel_dram one row each."""
    import csv

    from decodeprof.analyses import run

    path = Path(__file__).parent / "data" / "h200" / "graph" / "ncu.csv"
    lines = path.read_text().splitlines()
    rows = list(csv.reader(ln for ln in lines[next(i for i, ln in enumerate(lines) if ln.startswith('"ID"')):]
                           if ln.startswith('"')))
    header, body = rows[0], rows[1:]
    assert all(len(r) < len(header) for r in body if r[header.index("Metric Name")])  # the short rows
    kernels = {r[0] for r in body}
    frame = load_ncu_csv(path)
    assert set(frame["kernel_id"].unique().to_list()) == {int(k) for k in kernels}
    assert {"Duration", "DRAM Throughput"} <= set(frame["metric"].to_list())
    dram = run("kernel_dram", load_trace(path.parent))
    assert dram.height == len(kernels) and dram["duration_ns"].min() > 0
