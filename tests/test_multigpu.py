"""Tensor-parallel decode math against the single-device reference, on gloo (CPU) ranks started
in-test with torch.multiprocessing.spawn; the aggregation formulas on hand-made rank results."""

from __future__ import annotations

import os
import statistics

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from decodeprof_targets import tp, workload
from decodeprof_targets.errors import TargetError
from decodeprof_targets.workload import Config

SMALL = Config(batch=3, prompt_len=8, steps=6, hidden=64, vocab=256, dtype="fp32", device="cpu",
               warmup=0, iters=1, seed=7)


def _tie_logits(vocab: int) -> torch.Tensor:
    """Rows whose maximum repeats within and across vocab shards (boundaries at 64, 128, 192 for
    4 ranks, 128 for 2): torch.argmax takes the first."""
    assert vocab == 256
    rows = torch.randn(5, vocab, generator=torch.Generator().manual_seed(3))
    rows[0] = 1.0  # all equal: index 0
    rows[1, [63, 64, 127, 128, 255]] = 9.0  # last of a shard and first of the next: 63
    rows[2, [200, 255]] = 9.0  # twice in the last shard
    rows[3] = float("-inf")
    rows[3, 129] = 0.0
    rows[4, [70, 254]] = 9.0  # an early shard beats the last
    return rows


def _tp_worker(rank: int, world: int, init_file: str) -> None:
    """Every assertion runs on every rank; a failure fails the spawn (and the test)."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        from decodeprof_targets.multigpu import TimedCollectives

        comm = TimedCollectives(world, cuda=False, timing=True, in_graph=False)
        layout = tp.Layout(rank, world, SMALL.hidden, SMALL.vocab)
        w = workload.make_weights(SMALL)
        shard = tp.shard_weights(w, layout)
        assert shard.decode_w1.shape == (SMALL.hidden // world, SMALL.hidden)
        assert shard.decode_w2.shape == (SMALL.hidden, SMALL.hidden // world)
        assert shard.prefill_w2.shape == (SMALL.hidden, 2 * SMALL.hidden // world)
        assert shard.lm_head.shape == (SMALL.vocab // world, SMALL.hidden)

        prompt = workload.make_prompts(SMALL, seed=123)
        ref_tokens, ref_logits = workload.reference_generate(w, prompt, SMALL.steps)
        with torch.no_grad():
            comm.begin("prefill")
            state, tok = tp.prefill(shard, prompt, layout, comm)
            out = [tok]
            comm.begin("decode")
            for _ in range(SMALL.steps):
                tok, state, logits = tp.decode_step(shard, tok, state, layout, comm)
                out.append(tok)
            assert comm.totals()["decode_collectives"] == 2 * SMALL.steps  # all_reduce + all_gather per step
            with comm.untimed():
                full = tp.full_logits(logits, comm)
        assert torch.equal(torch.stack(out, dim=1), ref_tokens), "tokens differ from the single-device reference"
        assert full.shape == ref_logits.shape
        assert (full - ref_logits).abs().max().item() <= 1e-5
        assert comm.totals()["decode_collectives"] == 2 * SMALL.steps

        for dtype in (torch.float32, torch.bfloat16):
            rows = _tie_logits(SMALL.vocab).to(dtype)
            local = rows[:, layout.vocab_start: layout.vocab_start + layout.vocab_per_rank]
            got = tp.distributed_argmax(local, layout, comm)
            assert torch.equal(got, torch.argmax(rows, dim=-1)), (dtype, got, torch.argmax(rows, dim=-1))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [1, 2, 4])
def test_tensor_parallel_matches_single_device(world: int, tmp_path) -> None:
    mp.spawn(_tp_worker, args=(world, str(tmp_path / "init")), nprocs=world, join=True)


def test_layout_rejects_uneven_split() -> None:
    with pytest.raises(TargetError, match="divisible by 3: --hidden 64, --vocab 256 are not"):
        tp.Layout(0, 3, 64, 256).check()
    with pytest.raises(TargetError, match="--vocab 250 is not"):
        tp.Layout(0, 4, 64, 250).check()


def test_world_size_one_in_process(tmp_path, monkeypatch) -> None:
    """Without torchrun: a private process group of one (HashStore), exact tokens and logits."""
    import json

    from decodeprof_targets import launch, multigpu

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"):
        monkeypatch.delenv(key, raising=False)
    for key in launch.MULTICAST_OFF:  # the target forces them off whatever the environment says
        monkeypatch.setenv(key, "1" if key == "NCCL_NVLS_ENABLE" else "0")
    out = tmp_path / "r.json"
    rc = multigpu.main(["--device", "cpu", "--hidden", "64", "--vocab", "256", "--prompt-len", "8",
                        "--steps", "6", "--iters", "2", "--warmup", "1", "--json", "--json-out", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["world_size"] == 1 and result["backend"] == "gloo" and result["mode"] == "tp"
    c = result["correctness"]
    assert c["tokens_match"] and c["max_abs_logit_err"] == 0.0 and c["tolerance"]["max_abs_logit_err"] == 0.0
    assert c["tokens_digest"] == c["reference_digest"]
    assert len(result["iterations"]) == 2 and len(result["ranks"]) == 1
    assert result["ranks"][0]["iterations"][0]["decode_collectives"] == 12
    assert {k: os.environ[k] for k in launch.MULTICAST_OFF} == launch.MULTICAST_OFF


def test_uneven_split_fails_before_starting(monkeypatch, capsys) -> None:
    from decodeprof_targets import multigpu

    monkeypatch.setenv("WORLD_SIZE", "3")
    said = []
    for rank in ("1", "0"):  # every rank says the same line: whichever exits first is heard
        monkeypatch.setenv("RANK", rank)
        assert multigpu.main(["--device", "cpu", "--hidden", "64", "--vocab", "256"]) == 2
        said.append(capsys.readouterr().err)
    assert said[0] == said[1] and said[0].startswith("error: tensor parallelism over 3 processes")


def test_bad_mode_env(monkeypatch) -> None:
    from decodeprof_targets import multigpu

    monkeypatch.setenv(multigpu.ENV_MODE, "pp")
    with pytest.raises(TargetError, match="DECODEPROF_MULTIGPU_MODE='pp'"):
        multigpu.options_from_env()
    monkeypatch.setenv(multigpu.ENV_MODE, "DP")
    monkeypatch.setenv(multigpu.ENV_GRAPH, "1")
    assert multigpu.options_from_env() == multigpu.Options(mode="dp", graph=True)


def test_mode_flag_wins_over_a_bad_mode_env(monkeypatch) -> None:
    from decodeprof_targets import multigpu

    monkeypatch.setenv(multigpu.ENV_MODE, "bogus")
    _, opts, _ = multigpu.parse_args(["--device", "cpu", "--mode", "dp"])
    assert opts.mode == "dp"
    with pytest.raises(TargetError, match="'bogus' is not a mode"):
        multigpu.parse_args(["--device", "cpu"])
    monkeypatch.setenv(multigpu.ENV_MODE, "tp")
    monkeypatch.setenv(multigpu.ENV_GRAPH, "1")
    assert multigpu.parse_args(["--device", "cpu"])[1] == multigpu.Options(mode="tp", graph=True)


def _rank(rank: int, decode_ms: list[float], total_ms: list[float], comm_ms: list[float] | None, bytes_: int) -> dict:
    rows = []
    for d, t, c in zip(decode_ms, total_ms, comm_ms or [None] * len(decode_ms)):
        row = {"h2d_ms": 0.1, "ttft_ms": 1.0, "decode_ms": d, "total_ms": t}
        if c is not None:
            row.update(prefill_comm_ms=0.5, decode_comm_ms=c, decode_collectives=8)
        rows.append(row)
    return {"rank": rank, "device": {"name": "cpu", "peak_gbps": None}, "weight_bytes_per_step": bytes_,
            "build_s": 0.1 * (rank + 1), "warmup_s": 0.2, "iterations": rows,
            "metrics": {"decode_ms": {"median": statistics.median(decode_ms)}}}


def test_combine_counts_the_slowest_rank_and_all_tokens() -> None:
    from decodeprof_targets.multigpu import combine

    cfg = Config(batch=2, steps=4, device="cpu", dtype="fp32")
    ranks = [_rank(0, [10.0, 20.0], [12.0, 22.0], [2.0, 4.0], 1000),
             _rank(1, [15.0, 10.0], [16.0, 11.0], [3.0, 1.0], 1000)]
    tp_result = combine(cfg, "tp", "gloo", ranks, ["tensor_parallel"], [], {"tokens_match": True})
    assert [r["decode_ms"] for r in tp_result["iterations"]] == [15.0, 20.0]
    assert [r["decode_comm_ms"] for r in tp_result["iterations"]] == [3.0, 4.0]
    m = tp_result["metrics"]
    assert m["tokens_per_s"] == {"min": 2 * 4 / 0.020, "median": (2 * 4 / 0.015 + 2 * 4 / 0.020) / 2, "max": 2 * 4 / 0.015}
    assert m["comm_ms_per_step"]["max"] == 1.0 and m["comm_ms_per_step"]["min"] == 0.75
    assert m["comm_fraction_of_decode"]["max"] == 0.2
    assert m["weight_gbps"]["max"] == 2000 * 4 / 0.015 / 1e9
    assert tp_result["slowest_rank"] == 0 and tp_result["weight_bytes_per_step"] == 2000
    assert tp_result["device"]["name"] == "2 x cpu" and tp_result["build_s"] == 0.2

    dp_result = combine(cfg, "dp", "gloo", [_rank(r, [10.0], [11.0], None, 1000) for r in range(2)], [], [], {})
    assert dp_result["metrics"]["tokens_per_s"]["median"] == 2 * 2 * 4 / 0.010
    assert dp_result["metrics"]["e2e_tokens_per_s"]["median"] == 2 * 2 * 5 / 0.011
    assert "comm_ms_per_step" not in dp_result["metrics"]


def test_compare_fails_a_wrong_token_and_drifting_logits_and_passes_the_reference():
    """multigpu.compare: the tensor-parallel verdict, judged like the harness's (each token
    against the single-device reference fed the same tokens, last logits on that trajectory)."""
    from decodeprof_targets import workload
    from decodeprof_targets.harness import Tolerance
    from decodeprof_targets.multigpu import compare

    cfg = workload.Config(batch=3, prompt_len=5, steps=4, hidden=32, vocab=64, dtype="fp32", device="cpu")
    w = workload.make_weights(cfg)
    prompt = workload.make_prompts(cfg, seed=7)
    tokens, logits = workload.reference_generate(w, prompt, cfg.steps)
    tol = Tolerance(min_token_agreement=1.0, max_abs_logit_err=1e-3)
    result, message = compare(w, prompt, tokens, logits, tol)
    assert message is None and result["tokens_match"] and result["tokens_digest"] == result["reference_digest"]
    _, message = compare(w, prompt, tokens, logits + 1.0, tol)
    assert message is not None and "max |logit error| 1" in message
    wrong = tokens.clone()
    wrong[0, 2] = (wrong[0, 2] + 1) % cfg.vocab
    _, message = compare(w, prompt, wrong, logits, tol)
    assert message is not None and "not the reference's choice for the same history" in message
