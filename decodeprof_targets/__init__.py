"""Decode targets: one decode workload (embedding + MLP + lm_head, no attention) in variants
that each remove one serving overhead. Run one with `python -m decodeprof_targets LABEL [flags]`."""
