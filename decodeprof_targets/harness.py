"""The shared target harness: flags, correctness check, warm-up, timed iterations, metrics.

A target module supplies a `Variant` (see `Variant` below) and calls `main(label, build)`.
The harness owns everything else, so every target is measured the same way:

1. build the variant (compile, capture graphs, ...), outside all timing;
2. check its tokens and last logits against the eager reference on fresh random prompts;
3. warm-up iterations (NVTX "warmup"), timed apart;
4. measured iterations (NVTX "measured"), bracketed by cudaProfilerStart/Stop so
   `nsys --capture-range=cudaProfilerApi` records only these;
5. metrics JSON: TTFT, TPOT, decode, total, tokens/s, weight GB/s (min/median/max).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Protocol

import torch

from decodeprof_targets import workload
from decodeprof_targets.errors import TargetError
from decodeprof_targets.nvtx_ranges import NVTX_AVAILABLE, nvtx_range
from decodeprof_targets.workload import Config, Weights


@dataclass
class HostBatch:
    """One iteration's host-side inputs, in whatever host memory the variant prefers."""

    prompt: torch.Tensor  # [batch, prompt_len] int64
    payload: torch.Tensor | None = None  # uint8 bytes, copied to the device and not used


@dataclass(frozen=True)
class Tolerance:
    """How close a variant must come to the eager reference (free_running_check and the
    teacher-forced check enforce exactly these two numbers)."""

    # share of the tokens the variant chose that lie within 2 x max_abs_logit_err of the
    # reference's best logit for the same history (free-running), and of teacher-forced steps
    # that pick the reference's token; free-running equality (token_agreement) is reported,
    # not enforced: one flipped near-tie changes every later token
    min_token_agreement: float = 1.0
    max_abs_logit_err: float = 0.0  # last logits on the variant's own tokens, or each teacher-forced step's

    def as_dict(self) -> dict:
        return {"min_token_agreement": self.min_token_agreement, "max_abs_logit_err": self.max_abs_logit_err}


EXACT = Tolerance()


class Phases(Protocol):
    """Marks a phase boundary now, or at an already-recorded CUDA event (inside a graph)."""

    def __call__(self, name: str, event: object | None = None) -> None: ...


class Variant(Protocol):
    """What a target implements. `generate` returns tokens [batch, steps + 1] on the device
    and leaves the last step's logits in `last_logits`; it calls `phase("copied")`,
    `phase("prefilled")` and `phase("decoded")` at those boundaries. Optional: `step_fn(tok,
    state)` (one eager step, for the teacher-forced check) and `verify_runs()` (called once after
    the measured runs, untimed; raises if they went wrong in a way only the variant can see)."""

    active: list[str]
    fallbacks: list[str]
    tolerance: Tolerance
    last_logits: torch.Tensor

    def host_batch(self, prompt: torch.Tensor, payload: torch.Tensor | None) -> HostBatch: ...

    def generate(self, batch: HostBatch, next_batch: HostBatch | None, phase: Phases) -> torch.Tensor: ...


Builder = Callable[[Config, Weights], Variant]

PEAK_GBPS = (  # datasheet HBM/GDDR bandwidth; the first key found as whole words in the GPU name wins
    ("H100 PCIe", 2039.0), ("H100 NVL", 3938.0), ("H100", 3352.0), ("GH200", 4000.0),
    ("H200", 4800.0), ("B200", 8000.0), ("A100-SXM4-80GB", 2039.0), ("A100 80GB PCIe", 1935.0),
    ("A100", 1555.0), ("L40S", 864.0), ("L4", 300.0), ("A10", 600.0),
)


def datasheet_peak_gbps(gpu_name: str) -> float:
    for key, gbps in PEAK_GBPS:
        if re.search(rf"(?<![A-Za-z0-9]){re.escape(key)}(?![A-Za-z0-9])", gpu_name):
            return gbps
    return 0.0


class _Clock:
    """Phase timestamps: CUDA events on the current stream on GPU, perf_counter on CPU."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.marks: dict[str, object] = {}

    def __call__(self, name: str, event: object | None = None) -> None:
        if event is not None:
            self.marks[name] = event
        elif self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks[name] = event
        else:
            self.marks[name] = time.perf_counter_ns()

    def ms(self, a: str, b: str) -> float | None:
        if a not in self.marks or b not in self.marks:
            return None
        if self.cuda:
            return self.marks[a].elapsed_time(self.marks[b])  # type: ignore[union-attr]
        return (self.marks[b] - self.marks[a]) / 1e6  # type: ignore[operator]


def _no_phase(name: str, event: object | None = None) -> None:
    return None


def _synchronize(cfg: Config) -> None:
    if cfg.device == "cuda":
        torch.cuda.synchronize()


def _host_batches(cfg: Config, variant: Variant, count: int, seed: int) -> list[HostBatch]:
    payload_bytes = int(cfg.host_payload_mb * 1e6)
    batches = []
    for i in range(count):
        prompt = workload.make_prompts(cfg, seed + i)
        payload = torch.randint(0, 255, (payload_bytes,), dtype=torch.uint8) if payload_bytes else None
        batches.append(variant.host_batch(prompt, payload))
    return batches


def check_correctness(cfg: Config, weights: Weights, variant: Variant) -> dict:
    """Run the variant on fresh prompts and judge it against the eager reference; raise if
    outside tolerance (free_running_check). Variants that expose `step_fn` are also checked
    teacher-forced (each step gets the reference's inputs), and their token agreement and
    logit error are then judged on that check: it measures the step itself."""
    prompt = workload.make_prompts(cfg, seed=cfg.seed + 10_000)
    [batch] = _host_batches(cfg, variant, 1, seed=cfg.seed + 10_000)
    with torch.no_grad():
        tokens = variant.generate(batch, None, _no_phase)
    _synchronize(cfg)
    step_fn = getattr(variant, "step_fn", None)
    result, message = free_running_check(weights, prompt, tokens, variant.last_logits, variant.tolerance,
                                         judge_agreement=step_fn is None)
    if message is None and step_fn is not None:
        tol = variant.tolerance
        forced = result["teacher_forced"] = _teacher_forced(weights, prompt, cfg.steps, step_fn)
        if forced["token_agreement"] < tol.min_token_agreement or forced["max_abs_logit_err"] > tol.max_abs_logit_err:
            message = (f"correctness check failed: teacher-forced token agreement {forced['token_agreement']:.3f} "
                       f"(needs >= {tol.min_token_agreement}), max |logit error| {forced['max_abs_logit_err']:.4g} "
                       f"(allowed {tol.max_abs_logit_err})")
    if message is not None:
        raise TargetError(message, "this variant no longer computes the eager reference's function; fix it before timing")
    return result


def free_running_check(weights: Weights, prompt: torch.Tensor, tokens: torch.Tensor, last_logits: torch.Tensor,
                       tol: Tolerance, *, judge_agreement: bool = True,
                       ref_tokens: torch.Tensor | None = None) -> tuple[dict, str | None]:
    """Generated tokens [B, steps + 1] and last logits against the eager reference: (the
    correctness fields, the failure message or None).

    The tokens are compared with the reference's own (agreement, first divergent step: one
    flipped near-tie makes the rest diverge). Then the reference is re-run along the variant's
    tokens: each chosen token must lie within 2 x tol.max_abs_logit_err of the reference's best
    logit for that same history (choice_agreement, over batch rows and positions, >=
    tol.min_token_agreement), so a flipped near-tie passes and a wrong path does not; the last
    logits are compared with the reference's on that trajectory. judge_agreement=False leaves
    agreement and logit error to the caller (the teacher-forced check). ref_tokens: the
    reference's own tokens when the caller has them already."""
    if ref_tokens is None:
        ref_tokens, _ = workload.reference_generate(weights, prompt, tokens.shape[1] - 1)
    gaps, along_logits = _reference_along(weights, prompt, tokens)
    window = 2 * tol.max_abs_logit_err
    agreement = (tokens.cpu() == ref_tokens.cpu()).float().mean().item()
    err = (last_logits.float().cpu() - along_logits.float().cpu()).abs().max().item()
    choice = (gaps <= window).float().mean().item()
    result = {
        "tokens_match": bool(agreement == 1.0),
        "token_agreement": agreement,
        "max_abs_logit_err": err,
        "first_divergent_step": _first_divergence(tokens.cpu(), ref_tokens.cpu()),
        "choice_agreement": choice,
        "largest_choice_gap": gaps.max().item(),
        "tolerance": tol.as_dict(),
    }
    if choice < tol.min_token_agreement:
        row, pos = divmod(int((gaps > window).flatten().nonzero()[0].item()), gaps.shape[1])
        return result, (f"correctness check failed: {100 * (1 - choice):.1f}% of the generated tokens are not the "
                        f"reference's choice for the same history (first: batch row {row}, position {pos}, "
                        f"{gaps[row, pos].item():.3g} below the best logit; allowed {window:.3g}, on >= "
                        f"{tol.min_token_agreement:.0%} of tokens)")
    if judge_agreement and err > tol.max_abs_logit_err:
        return result, (f"correctness check failed: max |logit error| {err:.4g} on the variant's own tokens "
                        f"(allowed {tol.max_abs_logit_err})")
    return result, None


def _reference_along(weights: Weights, prompt: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The eager reference fed the variant's own tokens [B, steps + 1]: how far below the
    reference's best logit each chosen token lies ([B, steps + 1], 0 = the reference's argmax),
    and the reference's logits for the last position on that trajectory."""
    prompt = prompt.to(weights.embed.device)
    tokens = tokens.to(weights.embed.device, torch.int64)
    vocab = weights.lm_head.shape[0]
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab):
        raise TargetError(f"correctness check failed: generated token ids outside [0, {vocab})",
                          "the variant writes out-of-range token ids; fix it before timing")
    gaps = []
    with torch.no_grad():
        state, _ = workload.prefill(weights, prompt)
        logits = torch.nn.functional.linear(state, weights.lm_head)
        for t in range(tokens.shape[1]):
            chosen = tokens[:, t]
            scores = logits.float()
            gaps.append(scores.max(dim=-1).values - scores.gather(1, chosen[:, None]).squeeze(1))
            if t + 1 < tokens.shape[1]:
                _, state, logits = workload.decode_step(weights, chosen, state)
    return torch.stack(gaps, dim=1).cpu(), logits


def _teacher_forced(weights: Weights, prompt: torch.Tensor, steps: int, step_fn: Callable) -> dict:
    """Each decode step of `step_fn` fed the reference's tokens and state."""
    prompt = prompt.to(weights.embed.device)
    agree, total, worst = 0, 0, 0.0
    with torch.no_grad():
        state, tok = workload.prefill(weights, prompt)
        for _ in range(steps):
            ref_tok, ref_state, ref_logits = workload.decode_step(weights, tok, state)
            var_tok, _, var_logits = step_fn(tok.clone(), state.clone())
            agree += int((var_tok == ref_tok).sum().item())
            total += ref_tok.numel()
            worst = max(worst, (var_logits.float() - ref_logits.float()).abs().max().item())
            tok, state = ref_tok, ref_state
    return {"token_agreement": agree / total, "max_abs_logit_err": worst}


def _first_divergence(tokens: torch.Tensor, ref: torch.Tensor) -> int | None:
    differs = (tokens != ref).any(dim=0).nonzero()
    return int(differs[0].item()) if len(differs) else None


def _summary(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def measure(cfg: Config, weights: Weights, variant: Variant) -> tuple[list[dict], float]:
    """Warm-up then measured iterations; returns per-iteration phase times (ms) and warm-up seconds."""
    cuda = cfg.device == "cuda"
    batches = _host_batches(cfg, variant, cfg.warmup + cfg.iters, seed=cfg.seed + 1)
    t0 = time.perf_counter()
    with torch.no_grad(), nvtx_range("warmup"):
        for i in range(cfg.warmup):
            nxt = batches[i + 1] if i + 1 < len(batches) else None
            variant.generate(batches[i], nxt, _no_phase)
            _synchronize(cfg)
    warmup_s = time.perf_counter() - t0

    rows = []
    if cuda:
        torch.cuda.cudart().cudaProfilerStart()
    with torch.no_grad(), nvtx_range("measured"):
        for i in range(cfg.warmup, len(batches)):
            nxt = batches[i + 1] if i + 1 < len(batches) else None
            clock = _Clock(cuda)
            with nvtx_range("iteration"):
                clock("start")
                variant.generate(batches[i], nxt, clock)
                clock("end")
                _synchronize(cfg)
            rows.append({
                "h2d_ms": clock.ms("start", "copied"),
                "ttft_ms": clock.ms("start", "prefilled"),
                "decode_ms": clock.ms("prefilled", "decoded"),
                "total_ms": clock.ms("start", "end"),
            })
    if cuda:
        torch.cuda.cudart().cudaProfilerStop()
    return rows, warmup_s


def weight_bytes_per_step(cfg: Config, weights: Weights, variant: Variant) -> int:
    """Bytes of weights one decode step reads: the variant's own count where it stores weights
    differently (FP8/FP4), else the bf16/fp32 decode weights plus the gathered embedding rows."""
    own = getattr(variant, "weight_bytes_per_step", None)
    return int(own) if own else workload.weight_bytes_per_step(weights, cfg.batch)


def metrics(cfg: Config, bytes_per_step: int, rows: list[dict]) -> dict:
    """Summaries over measured iterations. Throughput counts decode tokens only
    (batch x steps / decode time); e2e counts all new tokens over the whole iteration."""
    out: dict[str, dict] = {}
    for key in ("h2d_ms", "ttft_ms", "decode_ms", "total_ms"):
        values = [r[key] for r in rows if r[key] is not None]
        if values:
            out[key] = _summary(values)
    decode = [r["decode_ms"] for r in rows if r["decode_ms"] is not None]
    total = [r["total_ms"] for r in rows]
    if decode:
        out["tpot_ms"] = _summary([d / cfg.steps for d in decode])
        out["tokens_per_s"] = _summary([cfg.batch * cfg.steps / (d / 1e3) for d in decode])
        out["weight_gbps"] = _summary([bytes_per_step * cfg.steps / (d / 1e3) / 1e9 for d in decode])
    out["e2e_tokens_per_s"] = _summary([cfg.batch * (cfg.steps + 1) / (t / 1e3) for t in total])
    return out


def device_info(cfg: Config) -> dict:
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "name": "cpu", "peak_gbps": cfg.peak_gbps or None}
    if cfg.device == "cuda":
        info["name"] = torch.cuda.get_device_name()
        info["peak_gbps"] = cfg.peak_gbps or datasheet_peak_gbps(info["name"]) or None
    return info


def run(label: str, build: Builder, cfg: Config) -> dict:
    torch.manual_seed(cfg.seed)
    weights = workload.make_weights(cfg)
    t0 = time.perf_counter()
    with torch.no_grad():
        variant = build(cfg, weights)
    build_s = time.perf_counter() - t0
    correctness = check_correctness(cfg, weights, variant)
    rows, warmup_s = measure(cfg, weights, variant)
    verify_runs = getattr(variant, "verify_runs", None)  # a variant's own after-the-fact check, untimed
    if verify_runs is not None:
        verify_runs()
    device = device_info(cfg)
    result = {
        "target": label,
        "config": cfg.as_dict(),
        "device": device,
        "active": list(variant.active),
        "fallbacks": list(variant.fallbacks) + ([] if NVTX_AVAILABLE else ["nvtx package missing: no NVTX ranges emitted"]),
        "correctness": correctness,
        "weight_bytes_per_step": weight_bytes_per_step(cfg, weights, variant),
        "build_s": build_s,
        "warmup_s": warmup_s,
        "metrics": metrics(cfg, weight_bytes_per_step(cfg, weights, variant), rows),
        "iterations": rows,
    }
    peak = device["peak_gbps"]
    if peak and "weight_gbps" in result["metrics"]:
        result["metrics"]["weight_bw_fraction"] = {k: v / peak for k, v in result["metrics"]["weight_gbps"].items()}
    return result


def format_table(result: dict) -> str:
    """A readable summary of one run's metrics (median, with min-max)."""
    m = result["metrics"]
    lines = [f"{result['target']} on {result['device']['name']} ({', '.join(result['active']) or 'eager'})"]
    for key, unit in (("ttft_ms", "ms"), ("tpot_ms", "ms"), ("decode_ms", "ms"), ("total_ms", "ms"),
                      ("tokens_per_s", "tok/s"), ("e2e_tokens_per_s", "tok/s"), ("weight_gbps", "GB/s")):
        if key in m:
            s = m[key]
            lines.append(f"  {key:<18} {s['median']:>12.4g} {unit:<6} (min {s['min']:.4g}, max {s['max']:.4g})")
    c = result["correctness"]
    lines.append(f"  correctness        tokens match: {c['tokens_match']}, agreement {c['token_agreement']:.3f}, "
                 f"max |logit err| {c['max_abs_logit_err']:.3g}")
    for note in result["fallbacks"]:
        lines.append(f"  fallback: {note}")
    return "\n".join(lines)


class FlagParser(argparse.ArgumentParser):
    """argparse whose errors are one `error:` line and a hint (not the usage block), exit 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message}\nhint: `{self.prog} --help` lists the flags and their defaults\n")


def parse_args(label: str, argv: list[str] | None) -> tuple[Config, argparse.Namespace]:
    parser = FlagParser(prog=f"python -m decodeprof_targets {label}")
    workload.add_config_flags(parser)
    parser.add_argument("--json", action="store_true", help="print the metrics JSON alone on stdout")
    parser.add_argument("--json-out", default=None, help="also write the metrics JSON to this file")
    args = parser.parse_args(argv)
    if args.json_out:
        check_json_out(args.json_out)
    return workload.config_from_args(args), args


def check_json_out(path: str) -> None:
    """Fail before the run, not after it, when --json-out cannot be written."""
    out = Path(path)
    if out.is_dir():
        raise TargetError(f"--json-out {path} is a folder", f"pass a file name, e.g. {out / 'metrics.json'}")
    if out.exists() and not out.is_file():
        raise TargetError(f"--json-out {path} is not a regular file (a device, FIFO or socket)",
                          "pass the path of a regular file or a new one")
    if out.is_file():
        with open(out, "rb") as f:
            head = f.read(32)
        if head.startswith((b"SQLite format 3\x00", b"NVIDIA Tegra Profiler Report")):
            raise TargetError(f"--json-out {path} holds a trace (an nsys report or SQLite export)",
                              "choose another path; traces are never overwritten")
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK | os.X_OK):
        raise TargetError(f"--json-out {path}: folder {out.parent} does not exist or is not writable",
                          "create the folder first, or pass a path in a writable one")


def main(label: str, build: Builder, argv: list[str] | None = None, needs_cuda: bool = False) -> int:
    """Entry point of one target: run, print, and turn expected errors into one line."""
    try:
        cfg, args = parse_args(label, argv)
        if needs_cuda and cfg.device != "cuda":
            raise TargetError(f"target {label!r} needs a CUDA GPU", "run it with --device cuda on a GPU machine")
        try:
            result = run(label, build, cfg)
        except torch.OutOfMemoryError as exc:
            raise TargetError(f"out of {cfg.device} memory while running {label!r} (batch {cfg.batch}, hidden "
                              f"{cfg.hidden}, vocab {cfg.vocab}): {str(exc).splitlines()[0]}",
                              "lower --batch, --hidden, --vocab or --host-payload-mb, or free the device") from exc
        except MemoryError as exc:
            raise TargetError(f"out of host memory while running {label!r}",
                              "lower --batch, --prompt-len, --hidden, --vocab or --host-payload-mb") from exc
    except TargetError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2
    emit(result, args)
    return 0


def json_out_path(path: str, env: Mapping[str, str] = os.environ) -> Path:
    """Where this process writes --json-out. A single-device target started by torchrun runs one
    independent replica per rank: rank 0 writes the named file, rank r writes NAME.rank<r>.json
    beside it, so the ranks never write one file at once."""
    out = Path(path)
    rank = int(env.get("RANK", "0"))
    return out if rank == 0 else out.with_name(f"{out.stem}.rank{rank}{out.suffix or '.json'}")


def emit(result: dict, args: argparse.Namespace, table: Callable[[dict], str] | None = None) -> None:
    """Write the metrics JSON to --json-out (per rank, see json_out_path) and print it (--json)
    or the table (`table`, default format_table). The file appears whole or not at all."""
    text = json.dumps(result, indent=2)
    if args.json_out:
        out = json_out_path(args.json_out)
        partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        partial.write_text(text + "\n")
        os.replace(partial, out)
    print(text if args.json else (table or format_table)(result))
