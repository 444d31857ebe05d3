"""Kernel summary: time per kernel name, with a kernel family from the name."""

from __future__ import annotations

import polars as pl

from decodeprof.analyses.registry import analysis, shaped
from decodeprof.trace import Trace

# Kernel family from the (lower-cased) kernel name: first matching regex wins. Order matters:
# Triton's own prefixes and NCCL come first (their names also contain "reduce", "mm", "copy").
FAMILY_PATTERNS: tuple[tuple[str, str], ...] = (
    ("nccl", r"nccl"),
    ("elementwise", r"triton_poi"),
    ("reduction", r"triton_red|triton_per"),
    # our fused Triton decode kernels stream weights like a GEMV: linear|lm_head|fp4|persistent_decode count as gemm
    ("gemm", r"gemm|gemv|cutlass|cublas|sm90_xmma|xmma|nvjet|cijk|matmul|_scaled_mm|fp8|fp4|linear|lm_head|triton_tem"
             r"|persistent_decode"),
    ("copy", r"memcpy|memset|copy"),
    ("norm", r"layer_?norm|rms_?norm|rmsnorm"),
    ("embedding", r"embedding|gather|index"),
    ("reduction", r"reduce|argmax|argmin|softmax"),
    ("elementwise", r"elementwise|vectorized|unrolled"),
    ("triton", r"^triton_|triton"),
)
FAMILIES = tuple(dict.fromkeys([f for f, _ in FAMILY_PATTERNS] + ["other"]))


def kernel_family(name: pl.Expr) -> pl.Expr:
    """Expression: the kernel family of a kernel-name column (see FAMILY_PATTERNS)."""
    lower = name.str.to_lowercase()
    fam, pattern = FAMILY_PATTERNS[0]
    expr = pl.when(lower.str.contains(pattern)).then(pl.lit(fam))
    for fam, pattern in FAMILY_PATTERNS[1:]:
        expr = expr.when(lower.str.contains(pattern)).then(pl.lit(fam))
    return expr.otherwise(pl.lit("other"))


COLUMNS = {
    "name": pl.Utf8,
    "family": pl.Utf8,
    "count": pl.Int64,
    "total_ns": pl.Int64,
    "mean_ns": pl.Float64,
    "median_ns": pl.Float64,
    "min_ns": pl.Int64,
    "max_ns": pl.Int64,
    "share_pct": pl.Float64,
}


@analysis("kernel_summary", columns=COLUMNS, needs=("kernels",))
def kernel_summary(trace: Trace) -> pl.DataFrame:
    """Time per kernel name, largest total first.

    Reads: kernels. One row per kernel (short) name:
    name, family (gemm|elementwise|norm|reduction|copy|nccl|triton|embedding|other),
    count, total_ns, mean_ns, median_ns, min_ns, max_ns (ns of kernel execution),
    share_pct (total_ns as % of all kernel time, summed over streams, 0-100).
    """
    k = trace.kernels.lazy()
    out = (
        k.group_by("name")
        .agg(
            pl.len().alias("count"),
            pl.col("dur_ns").sum().alias("total_ns"),
            pl.col("dur_ns").mean().alias("mean_ns"),
            pl.col("dur_ns").median().alias("median_ns"),
            pl.col("dur_ns").min().alias("min_ns"),
            pl.col("dur_ns").max().alias("max_ns"),
        )
        .with_columns(
            kernel_family(pl.col("name")).alias("family"),
            (100.0 * pl.col("total_ns") / pl.col("total_ns").sum()).alias("share_pct"),
        )
        .sort(["total_ns", "name"], descending=[True, False])
        .collect()
    )
    return shaped(out, COLUMNS)
