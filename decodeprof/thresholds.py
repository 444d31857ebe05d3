"""Every threshold a finding, a verdict or a flag is judged by, in one place: the findings of
one run and against a reference, the multi-GPU findings and the diff's verdict
(decodeprof.findings) read them from here, so "faster" means the same everywhere.

A finding is stated only past its threshold, which it names in its text.
"""

from __future__ import annotations

# Single-GPU findings (relative changes are vs the baseline).
SPEEDUP_MIN = 1.03  # decode or total time at least 3% faster counts as a win
SLOWDOWN_MAX = 0.97  # at least 3% slower counts as a loss
# TTFT (one copy + prefill per iteration, a few ms) moves by 10-15% between runs of the same
# path (the H200 samples: 3.0-3.7 ms for every target with pageable copies): 1.25x either way
# is a change (pinned 0.41 vs 3.16 ms; persistent_smem 6.1 vs 2.7 ms on the H100)
TTFT_CHANGE_MIN = 1.25
REDUCTION_MIN = 0.25  # a per-step cost (CPU API time, GPU idle, host wait) down by >= 25%
LAUNCH_REDUCTION_MIN = 0.50  # launch calls per step down by >= 50%
KERNEL_REDUCTION_MIN = 0.10  # kernels per step down by >= 10%
BYTES_REDUCTION_MIN = 0.10  # weight bytes per step down by >= 10%
# host wait per iteration up by >= 25% and by >= 0.1 ms is stated (pinned's 23 µs -> streams'
# 49 µs is +109% of nothing)
HOST_WAIT_GROWTH_MIN = 0.25
HOST_WAIT_MIN_NS = 100_000
# free-running tokens agreeing with the eager reference below this share: a warning even when
# the run passed its checks (each token a near-tie); the outputs mostly differ
TOKEN_AGREEMENT_MIN = 0.50
# a waterfall part whose change is below this share of the larger decode span per step is
# folded into one "unchanged" row (it stays in the table's detail)
WATERFALL_FOLD_FRACTION = 0.01
COPY_BW_GAIN_MIN = 2.0  # H2D GB/s at least doubled
OVERLAP_MIN = 0.50  # at least half of copy time runs under kernels on other streams
# copies on a kernel stream are judged for overlap only when their overlapped share is this much
# (5 points) above the reference's: a copy stream shows by overlapping more than before
OVERLAP_GAIN_MIN = 0.05
BW_GAIN_MIN = 1.20  # achieved weight bandwidth up by >= 20%
IDLE_BOUND_PCT = 50.0  # the GPU idles more than half of a decode step: launch-bound
DRAM_BOUND_PCT = 60.0  # ncu: time-weighted DRAM throughput above this is near the roofline
COPY_BOUND_PCT = 30.0  # copies take at least this share of the GPU's busy time: copy-bound
PROFILER_OVERHEAD_PCT = 10.0  # profiled TPOT this much above the unprofiled run's: trace times are inflated
UNSTABLE_SPREAD = 1.5  # max / min of a timing over the measured iterations above this: host noise
PAGEABLE_MIN_BYTES = 1_000_000  # pageable H2D bytes below this (a few token ids) block too briefly to matter
# weights used >= 3x faster than the profiled kernels pull DRAM bytes: they come from L2 / shared
# memory (kernels that stream their weights once per step measure 1.5-1.6x here, because ncu
# times each kernel alone with flushed caches; the persistent kernels measure 8-9x at 8 steps)
ON_CHIP_RATIO = 3.0

# The diff's highlights: the host's blocked time is said to change past this share of A's.
HOST_WAIT_CHANGE_SHOWN = 0.05

# Multi-GPU findings.
COMM_BOUND_FRACTION = 0.25  # collectives take at least a quarter of decode time
IMBALANCE_MIN = 1.05  # the slowest rank's decode time >= 5% above the fastest's
COLLECTIVE_OVERLAP_MIN = 0.50  # at least half of collective GPU time runs under compute on another stream
SCALING_EFFICIENCY_MIN = 0.50  # tokens/s at N ranks >= half of N x the single-GPU run's
