"""The decode workload's math, config validation and metrics, on the CPU."""

from __future__ import annotations

import argparse

import pytest
import torch

from decodeprof_targets import harness, workload
from decodeprof_targets.errors import TargetError
from decodeprof_targets.loop import EagerVariant

SMALL = workload.Config(batch=3, prompt_len=7, steps=5, hidden=32, vocab=50, dtype="fp32", device="cpu", warmup=1, iters=2)


def test_weights_are_deterministic_per_seed():
    a, b = workload.make_weights(SMALL), workload.make_weights(SMALL)
    c = workload.make_weights(workload.Config(**{**SMALL.as_dict(), "seed": 1}))
    assert torch.equal(a.lm_head, b.lm_head)
    assert not torch.equal(a.lm_head, c.lm_head)


def test_decode_step_matches_a_hand_written_float64_step():
    w = workload.make_weights(SMALL)
    tok = torch.tensor([1, 2, 3])
    state = torch.randn(3, 32)
    nxt, new_state, logits = workload.decode_step(w, tok, state)
    d = {k: v.double() for k, v in vars(w).items()}
    x = d["embed"][tok] + state.double()
    mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    x = (x - mu) / torch.sqrt(var + 1e-5) * d["decode_ln_w"] + d["decode_ln_b"]
    x = x @ d["decode_w1"].T + d["decode_b1"]
    x = 0.5 * x * (1 + torch.erf(x / 2**0.5))
    s = x @ d["decode_w2"].T + d["decode_b2"]
    ref_logits = s @ d["lm_head"].T
    assert torch.allclose(new_state.double(), s, atol=1e-4)
    assert torch.allclose(logits.double(), ref_logits, atol=1e-4)
    assert torch.equal(nxt, ref_logits.argmax(-1))


def test_prefill_seeds_state_from_the_last_position_only():
    w = workload.make_weights(SMALL)
    prompt = workload.make_prompts(SMALL, seed=3)
    state, _ = workload.prefill(w, prompt)
    changed = prompt.clone()
    changed[:, 0] = (changed[:, 0] + 1) % SMALL.vocab  # no attention: earlier positions do not reach the state
    state2, _ = workload.prefill(w, changed)
    assert torch.equal(state, state2)


def test_weight_bytes_per_step_counts_decode_weights_and_gathered_rows():
    w = workload.make_weights(SMALL)
    h, v, b = 32, 50, 3
    expected = 4 * (2 * h + h * h + h + h * h + h + v * h) + 4 * b * h
    assert workload.weight_bytes_per_step(w, b) == expected


@pytest.mark.parametrize("flag, value", [("--batch", "0"), ("--steps", "-1"), ("--host-payload-mb", "-2"), ("--dtype", "int8"),
                                         ("--vocab", "1"), ("--host-payload-mb", "inf"), ("--host-payload-mb", "nan"),
                                         ("--peak-gbps", "nan"), ("--warmup", "-1")])
def test_bad_flags_are_rejected_with_a_named_error(flag, value):
    parser = argparse.ArgumentParser()
    workload.add_config_flags(parser)
    if flag == "--dtype":
        with pytest.raises(SystemExit):
            parser.parse_args(["--device", "cpu", flag, value])
        return
    args = parser.parse_args(["--device", "cpu", flag, value])
    with pytest.raises(TargetError, match=flag):
        workload.config_from_args(args)


def test_eager_variant_matches_reference_and_metrics_add_up():
    w = workload.make_weights(SMALL)
    result = harness.run("baseline", lambda cfg, weights: EagerVariant(cfg, weights, pinned=False), SMALL)
    assert result["correctness"]["tokens_match"] and result["correctness"]["max_abs_logit_err"] == 0
    rows = result["iterations"]
    assert len(rows) == SMALL.iters
    for row in rows:
        assert row["ttft_ms"] + row["decode_ms"] <= row["total_ms"] + 1e-6
    m = result["metrics"]
    med_decode = m["decode_ms"]["median"]
    assert m["tpot_ms"]["median"] == pytest.approx(med_decode / SMALL.steps)
    # tokens/s and GB/s come from the same decode times: their ratio is bytes per token
    bytes_per_step = workload.weight_bytes_per_step(w, SMALL.batch)
    assert m["weight_gbps"]["median"] * 1e9 / m["tokens_per_s"]["median"] == pytest.approx(bytes_per_step / SMALL.batch)


def test_a_variant_that_computes_something_else_fails_the_check():
    class Wrong(EagerVariant):
        def generate(self, batch, next_batch, phase):
            tokens = super().generate(batch, next_batch, phase)
            return (tokens + 1) % SMALL.vocab

    with pytest.raises(TargetError, match="correctness check failed"):
        harness.run("wrong", lambda cfg, w: Wrong(cfg, w, pinned=False), SMALL)


def test_a_timed_path_that_ignores_its_own_tokens_fails_even_with_a_correct_step_fn():
    """The timed generate() never feeds a new token back (it reuses the prefill token) while
    step_fn, the one-step check, is right: teacher-forced it passes, so the check must judge
    the timed path's own tokens against the reference fed the same history."""
    import dataclasses

    cfg = dataclasses.replace(SMALL, steps=12)
    loose = harness.Tolerance(min_token_agreement=1.0, max_abs_logit_err=0.125)

    class Stale(EagerVariant):
        def generate(self, batch, next_batch, phase):
            prompt = self.copy_in(batch)
            state, tok = workload.prefill(self.w, prompt)
            out = [tok]
            for _ in range(self.cfg.steps):
                nxt, state, self.last_logits = workload.decode_step(self.w, out[0], state)
                out.append(nxt)
            return torch.stack(out, dim=1)

    with pytest.raises(TargetError, match="not the reference's choice for the same history"):
        harness.run("stale", lambda c, w: Stale(c, w, pinned=False, tolerance=loose), cfg)


def test_a_variant_parting_at_near_ties_passes_and_says_how_far_its_choices_are():
    """Tokens that differ from the reference's yet lie within 2 x the logit tolerance of its
    best logit for the same history are accepted; the result says how far they lie."""
    loose = harness.Tolerance(min_token_agreement=1.0, max_abs_logit_err=1e6)

    class SecondBest(EagerVariant):  # picks the runner-up at the last position only
        def generate(self, batch, next_batch, phase):
            tokens = super().generate(batch, next_batch, phase)
            tokens[:, -1] = self.last_logits.float().topk(2, dim=-1).indices[:, 1]
            return tokens

    result = harness.run("second", lambda c, w: SecondBest(c, w, pinned=False, tolerance=loose), SMALL)
    c = result["correctness"]
    assert not c["tokens_match"] and c["first_divergent_step"] == SMALL.steps
    assert c["choice_agreement"] == 1.0 and 0 < c["largest_choice_gap"] < 1e6


def test_a_step_with_drifting_logits_fails_the_teacher_forced_gate():
    """Same tokens as the reference (the argmax is unchanged by a constant shift), logits off
    by 0.5: the teacher-forced check's logit error must fail it."""
    tol = harness.Tolerance(min_token_agreement=1.0, max_abs_logit_err=0.1)

    def shifted(w):
        def step(tok, state):
            nxt, state, logits = workload.decode_step(w, tok, state)
            return nxt, state, logits + 0.5
        return step

    with pytest.raises(TargetError, match=r"teacher-forced token agreement 1.000 .* max \|logit error\| 0.5"):
        harness.run("shifted", lambda c, w: EagerVariant(c, w, pinned=False, step_fn=shifted(w), tolerance=tol), SMALL)


def test_a_variant_without_step_fn_is_judged_on_its_own_tokens_and_logits():
    """No one-step function (graph-style variants): the last logits are compared with the
    reference's along the variant's own tokens."""
    tol = harness.Tolerance(min_token_agreement=1.0, max_abs_logit_err=0.1)

    class NoStep:
        def __init__(self, cfg, w):
            self.inner = EagerVariant(cfg, w, pinned=False)
            self.active, self.fallbacks, self.tolerance = [], [], tol

        def host_batch(self, prompt, payload):
            return self.inner.host_batch(prompt, payload)

        def generate(self, batch, next_batch, phase):
            tokens = self.inner.generate(batch, next_batch, phase)
            self.last_logits = self.inner.last_logits + 0.5
            return tokens

    with pytest.raises(TargetError, match=r"max \|logit error\| 0.5 on the variant's own tokens"):
        harness.run("nostep", NoStep, SMALL)


def test_the_near_tie_window_is_twice_the_logit_tolerance():
    """The runner-up token at the last position lies `gap` below the best logit (per row): a
    tolerance just above gap / 2 accepts it, one just below rejects it."""
    prompt = workload.make_prompts(SMALL, seed=SMALL.seed + 10_000)
    w = workload.make_weights(SMALL)
    _, logits = workload.reference_generate(w, prompt, SMALL.steps)
    top2 = logits.float().topk(2, dim=-1).values
    gap = (top2[:, 0] - top2[:, 1]).max().item()

    class SecondBest(EagerVariant):
        def generate(self, batch, next_batch, phase):
            tokens = super().generate(batch, next_batch, phase)
            tokens[:, -1] = self.last_logits.float().topk(2, dim=-1).indices[:, 1]
            return tokens

    def run(tol):
        t = harness.Tolerance(min_token_agreement=1.0, max_abs_logit_err=tol)
        return harness.run("second", lambda c, w: SecondBest(c, w, pinned=False, tolerance=t), SMALL)

    assert run(gap / 2 * 1.01)["correctness"]["largest_choice_gap"] == pytest.approx(gap)
    with pytest.raises(TargetError, match="not the reference's choice for the same history"):
        run(gap / 2 * 0.99)


def test_pinned_falls_back_on_cpu_and_says_so():
    w = workload.make_weights(SMALL)
    variant = EagerVariant(SMALL, w, pinned=True)
    assert variant.fallbacks and "pageable" in variant.fallbacks[0]


def test_datasheet_peak_lookup():
    assert harness.datasheet_peak_gbps("NVIDIA H100 80GB HBM3") == 3352.0
    assert harness.datasheet_peak_gbps("NVIDIA H100 PCIe") == 2039.0
    assert harness.datasheet_peak_gbps("NVIDIA GH200 480GB") == 4000.0  # not H200's 4800
    assert harness.datasheet_peak_gbps("NVIDIA H200") == 4800.0
    assert harness.datasheet_peak_gbps("NVIDIA L40") == 0.0  # not an L4
    assert harness.datasheet_peak_gbps("NVIDIA A100-SXM4-40GB") == 1555.0
    for key, gbps in harness.PEAK_GBPS:
        assert harness.datasheet_peak_gbps(f"NVIDIA {key}") == gbps, key
    assert harness.datasheet_peak_gbps("mystery") == 0.0
