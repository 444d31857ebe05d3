"""multigpu: the decode workload over N processes started by torchrun (one per GPU; gloo on CPU).

    torchrun --nproc-per-node N -m decodeprof_targets multigpu [workload flags] [--mode tp|dp] [--graph]

Modes (flag --mode, or env DECODEPROF_MULTIGPU_MODE):
- tp (default): tensor parallel (decodeprof_targets/tp.py). Each decode step costs two collectives: the
  MLP's all_reduce of the state [B, h] and the argmax's all_gather of [2, B] float64. Prefill
  costs one all_reduce of [B, P, h] and one all_gather.
- dp: data parallel, a full replica per rank on its own prompts: no collective in the hot path.
--graph (or DECODEPROF_MULTIGPU_GRAPH=1) captures the decode loop, collectives included, in one
CUDA graph per rank.

Each rank runs the shared harness's warm-up and measured loop (same NVTX ranges, plus
"allreduce"/"allgather" around each collective); rank 0 gathers every rank's metrics and prints
one result: per-rank metrics under "ranks", the aggregate (slowest rank per iteration) under
"metrics". docs/multigpu.md documents every field.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import os
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist

from decodeprof_targets import graphs, harness, tp, workload
from decodeprof_targets.errors import TargetError
from decodeprof_targets.harness import EXACT, HostBatch, Phases, Tolerance
from decodeprof_targets.launch import MULTICAST_OFF
from decodeprof_targets.loop import EagerVariant, prefill_and_decode
from decodeprof_targets.nvtx_ranges import NVTX_AVAILABLE, nvtx_range
from decodeprof_targets.workload import Config, Weights

ENV_MODE = "DECODEPROF_MULTIGPU_MODE"
ENV_GRAPH = "DECODEPROF_MULTIGPU_GRAPH"
ENV_TIMEOUT = "DECODEPROF_MULTIGPU_TIMEOUT_S"
MODES = ("tp", "dp")
# Split reductions change the summation order: fp32 keeps every token, lower precision may
# flip a near-tie and then diverge (as compile.py explains), so it is held to an agreement rate.
TP_FP32 = Tolerance(min_token_agreement=1.0, max_abs_logit_err=1e-3)
TP_LOW_PRECISION = Tolerance(min_token_agreement=0.9, max_abs_logit_err=0.25)
DP_PROMPT_SEED_STRIDE = 1_000_000  # rank r draws its prompts from seed + r * stride


@dataclass(frozen=True)
class Options:
    mode: str = "tp"
    graph: bool = False
    comm_timing: bool = True


@dataclass(frozen=True)
class Rank:
    rank: int
    world: int
    local_rank: int
    backend: str


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def options_from_env() -> Options:
    mode = os.environ.get(ENV_MODE, "tp").strip().lower() or "tp"
    if mode not in MODES:
        raise TargetError(f"{ENV_MODE}={mode!r} is not a mode", f"set it to one of: {', '.join(MODES)}")
    return Options(mode=mode, graph=_env_flag(ENV_GRAPH))


def init_distributed(cfg: Config) -> Rank:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*), or a
    private one of size 1 without torchrun. On CUDA each rank takes GPU LOCAL_RANK, so "cuda"
    in the config (and the harness's synchronize and events) means that GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    os.environ.update(MULTICAST_OFF)  # read by NCCL at communicator creation: also when started without launch.py
    kwargs: dict = {}
    if cfg.device == "cuda":
        if local >= torch.cuda.device_count():
            raise TargetError(f"rank {rank} wants GPU {local} but only {torch.cuda.device_count()} are visible",
                              "start at most one process per GPU (--nproc-per-node <= GPU count)")
        torch.cuda.set_device(local)
        backend = "nccl"
        kwargs["device_id"] = torch.device("cuda", local)
    else:
        backend = "gloo"
    if not dist.is_initialized():
        timeout = datetime.timedelta(seconds=float(os.environ.get(ENV_TIMEOUT, "300")))
        if "MASTER_ADDR" in os.environ:
            dist.init_process_group(backend, timeout=timeout, **kwargs)
        elif world == 1:
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout, **kwargs)
        else:
            raise TargetError(f"WORLD_SIZE={world} but no MASTER_ADDR", "launch through torchrun")
    return Rank(dist.get_rank(), dist.get_world_size(), local, dist.get_backend())


class _Spans:
    """Start and end of each collective in one phase, summed after the GPU finished: CUDA event
    pairs on the current stream (captured ones are re-recorded by every replay), or
    perf_counter on CPU, where gloo collectives return when done."""

    def __init__(self, cuda: bool, external: bool) -> None:
        self.cuda, self.external = cuda, external
        self.pairs: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self.cpu_ms: list[float] = []
        self.count = 0

    def restart(self) -> None:
        self.count, self.cpu_ms = 0, []

    @contextmanager
    def span(self) -> Iterator[None]:
        if not self.cuda:
            t0 = time.perf_counter_ns()
            yield
            self.cpu_ms.append((time.perf_counter_ns() - t0) / 1e6)
        else:
            if self.count == len(self.pairs):
                kind = {"enable_timing": True, **({"external": True} if self.external else {})}
                self.pairs.append((torch.cuda.Event(**kind), torch.cuda.Event(**kind)))
            start, end = self.pairs[self.count]
            start.record()
            yield
            end.record()
        self.count += 1

    def total_ms(self) -> float:
        if not self.cuda:
            return sum(self.cpu_ms)
        if self.count:
            self.pairs[self.count - 1][1].synchronize()
        return sum(s.elapsed_time(e) for s, e in self.pairs[: self.count])


class TimedCollectives:
    """tp.Collectives over the default process group, each call in an NVTX range ("allreduce",
    "allgather") and, unless timing is off, timed into the current phase ("prefill"/"decode")."""

    def __init__(self, world: int, *, cuda: bool, timing: bool, in_graph: bool) -> None:
        self.world = world
        self.fallbacks: list[str] = []
        external = False
        if timing and in_graph:
            try:
                torch.cuda.Event(enable_timing=True, external=True)
                external = True
            except TypeError:
                timing = False
                self.fallbacks.append("torch lacks external CUDA events: no communication timing inside the CUDA graph")
        self.phases = {p: _Spans(cuda, external) for p in ("prefill", "decode")} if timing else {}
        self.current: _Spans | None = None
        # all_gather_single where torch has it (2.13 deprecates the old name), else all_gather_into_tensor
        self._gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor

    def begin(self, phase: str) -> None:
        self.current = self.phases.get(phase)
        if self.current is not None:
            self.current.restart()

    @contextmanager
    def untimed(self) -> Iterator[None]:
        saved, self.current = self.current, None
        try:
            yield
        finally:
            self.current = saved

    def _span(self):
        return self.current.span() if self.current is not None else nullcontext()

    def all_reduce_sum(self, t: torch.Tensor) -> None:
        with nvtx_range("allreduce"), self._span():
            dist.all_reduce(t)

    def all_gather(self, t: torch.Tensor) -> torch.Tensor:
        out = t.new_empty((self.world * t.shape[0], *t.shape[1:]))
        with nvtx_range("allgather"), self._span():
            self._gather(out, t)
        return out.view(self.world, *t.shape)

    def totals(self) -> dict:
        """Communication of the last generate call (ms), once the device has finished it."""
        if not self.phases:
            return {}
        return {"prefill_comm_ms": self.phases["prefill"].total_ms(), "decode_comm_ms": self.phases["decode"].total_ms(),
                "decode_collectives": self.phases["decode"].count}


class TensorParallel:
    """The variant of tensor-parallel mode: prefill eager, decode eager or one CUDA graph.
    `last_logits` is this rank's vocab shard [B, V/N]; `full_last_logits()` joins them."""

    def __init__(self, cfg: Config, shard: Weights, layout: tp.Layout, comm: TimedCollectives, graph: bool) -> None:
        self.cfg, self.w, self.layout, self.comm = cfg, shard, layout, comm
        self.active = ["tensor_parallel"] + (["cuda_graph_decode"] if graph else [])
        self.fallbacks: list[str] = []
        self.tolerance = EXACT if layout.world == 1 else (TP_FP32 if cfg.dtype == "fp32" else TP_LOW_PRECISION)
        self.eager = EagerVariant(cfg, shard, pinned=False)  # the baseline's pageable copies
        self.comm_rows: list[dict] = []  # per generate call, filled one call late
        self._uncollected = False
        self.last_logits = torch.empty(0)
        self.graph = None
        if graph:
            self.tok_in = torch.zeros(cfg.batch, dtype=torch.int64, device="cuda")
            self.state_in = torch.zeros(cfg.batch, cfg.hidden, dtype=cfg.torch_dtype, device="cuda")
            torch.cuda.synchronize()  # no NCCL work in flight when capture begins
            self.graph, (self.out_tokens, self.out_logits) = graphs.capture(self._decode_loop)
            self.last_logits = self.out_logits

    def _prefill(self, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.comm.begin("prefill")
        out = tp.prefill(self.w, prompt, self.layout, self.comm)
        if self.graph is None:
            self.comm.begin("decode")
        return out

    def _step(self, tok: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tp.decode_step(self.w, tok, state, self.layout, self.comm)

    def _decode_loop(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.comm.begin("decode")  # at capture: replays re-record the same timing events
        tok, state, logits, out = self.tok_in, self.state_in, None, []
        for _ in range(self.cfg.steps):
            tok, state, logits = self._step(tok, state)
            out.append(tok)
        return torch.stack(out, dim=1), logits

    def host_batch(self, prompt: torch.Tensor, payload: torch.Tensor | None) -> HostBatch:
        return self.eager.host_batch(prompt, payload)

    def generate(self, batch: HostBatch, next_batch: HostBatch | None, phase: Phases) -> torch.Tensor:
        self.collect_comm()  # the previous call's timings (the harness synchronized since)
        prompt = self.eager.copy_in(batch)
        phase("copied")
        if self.graph is None:
            tokens, self.last_logits = prefill_and_decode(prompt, self.cfg.steps, phase, self._prefill, self._step)
        else:
            with nvtx_range("prefill"):
                state, tok = self._prefill(prompt)
                self.state_in.copy_(state)
                self.tok_in.copy_(tok)
            phase("prefilled")
            with nvtx_range("decode"):
                self.graph.replay()
            phase("decoded")
            tokens = torch.cat([tok[:, None], self.out_tokens], dim=1)
        self._uncollected = True
        return tokens

    def collect_comm(self) -> None:
        if self._uncollected:
            self.comm_rows.append(self.comm.totals())
            self._uncollected = False

    def full_last_logits(self) -> torch.Tensor:
        with self.comm.untimed():
            return tp.full_logits(self.last_logits, self.comm)


def build_variant(cfg: Config, full: Weights, opts: Options, rank: Rank) -> tuple[object, Weights]:
    """The variant this rank runs and the weights it reads per step (its shard, or a replica)."""
    graph = opts.graph and cfg.device == "cuda"
    if opts.mode == "dp":
        from decodeprof_targets.graph import Graph

        variant = Graph(cfg, full) if graph else EagerVariant(cfg, full, pinned=False, active=["data_parallel"])
        if graph:
            variant.active = ["data_parallel", *variant.active]
        weights = full
    else:
        layout = tp.Layout(rank.rank, rank.world, cfg.hidden, cfg.vocab)
        weights = tp.shard_weights(full, layout)
        comm = TimedCollectives(rank.world, cuda=cfg.device == "cuda", timing=opts.comm_timing, in_graph=graph)
        variant = TensorParallel(cfg, weights, layout, comm, graph)
        variant.fallbacks.extend(comm.fallbacks)
        if not opts.comm_timing:
            variant.fallbacks.append("communication not timed (--no-comm-timing): no comm_ms metrics")
    if opts.graph and not graph:
        variant.fallbacks.append("CUDA graphs need CUDA: on CPU (gloo) the decode loop runs eagerly")
    return variant, weights


def build(cfg: Config, w: Weights) -> object:
    """The registry's builder: this process's variant (world size 1 unless torchrun started it).
    At world size > 1 use main(), which checks correctness across ranks."""
    return build_variant(cfg, w, options_from_env(), init_distributed(cfg))[0]


def _digest(tokens: torch.Tensor) -> str:
    return hashlib.sha256(tokens.cpu().to(torch.int64).contiguous().numpy().tobytes()).hexdigest()[:16]


def compare(full: Weights, prompt: torch.Tensor, tokens: torch.Tensor, logits: torch.Tensor,
            tol: Tolerance) -> tuple[dict, str | None]:
    """The harness's correctness fields for generated outputs (harness.free_running_check: each
    token judged against the single-device reference fed the same tokens), with digests."""
    ref_tokens, _ = workload.reference_generate(full, prompt, tokens.shape[1] - 1)
    result, message = harness.free_running_check(full, prompt, tokens, logits, tol, ref_tokens=ref_tokens)
    result.update(tokens_digest=_digest(tokens), reference_digest=_digest(ref_tokens))
    return result, message


def check_tensor_parallel(cfg: Config, full: Weights | None, variant: TensorParallel, rank: Rank) -> dict:
    """Every rank generates from the same prompts; rank 0 compares with the single-device eager
    reference on the full weights and broadcasts the verdict, so every rank fails together."""
    prompt = workload.make_prompts(cfg, seed=cfg.seed + 10_000)
    with torch.no_grad():
        tokens = variant.generate(variant.host_batch(prompt, None), None, lambda name, event=None: None)
        logits = variant.full_last_logits()
        with variant.comm.untimed():
            every_rank = variant.comm.all_gather(tokens.contiguous())
    verdict: list = [None, None]
    if rank.rank == 0:
        result, message = compare(full, prompt, tokens, logits, variant.tolerance)
        result["ranks_agree"] = bool((every_rank == every_rank[0]).all().item())
        if message is None and not result["ranks_agree"]:
            message = "ranks disagree on the generated tokens: the distributed argmax is broken"
        verdict = [result, message]
    dist.broadcast_object_list(verdict, src=0)
    if verdict[1] is not None:
        raise _shared(TargetError(verdict[1], "the sharded decode no longer computes the reference's function; fix it before timing"))
    return verdict[0]


def check_data_parallel(cfg: Config, full: Weights, variant: object, rank: Rank) -> dict:
    """Each rank checks its replica on its own prompts against the eager reference."""
    try:
        mine: tuple[dict | None, str | None] = (harness.check_correctness(cfg, full, variant), None)
    except TargetError as exc:
        mine = (None, f"rank {rank.rank}: {exc.message}")
    everyone: list = [None] * rank.world
    dist.all_gather_object(everyone, mine)
    failures = [m for _, m in everyone if m is not None]
    if failures:
        raise _shared(TargetError("; ".join(failures), "a replica no longer computes the reference's function"))
    result = dict(everyone[0][0])
    result["tokens_match"] = all(r["tokens_match"] for r, _ in everyone)
    result["ranks_checked"] = rank.world
    return result


def run_rank(cfg: Config, opts: Options, rank: Rank) -> dict | None:
    """This rank's whole run; returns the gathered result on rank 0, None elsewhere."""
    torch.manual_seed(cfg.seed)
    full: Weights | None = workload.make_weights(cfg)
    start = time.perf_counter()
    with torch.no_grad():
        variant, weights = build_variant(cfg, full, opts, rank)
    build_s = time.perf_counter() - start
    rank_cfg = cfg
    if opts.mode == "tp":
        if rank.rank != 0:
            full = None  # only rank 0 keeps the full model, for the reference
        correctness = check_tensor_parallel(cfg, full, variant, rank)
    else:
        rank_cfg = dataclasses.replace(cfg, seed=cfg.seed + rank.rank * DP_PROMPT_SEED_STRIDE)
        correctness = check_data_parallel(rank_cfg, weights, variant, rank)
    full = None
    dist.barrier()  # every rank starts its warm-up together
    rows, warmup_s = harness.measure(rank_cfg, weights, variant)
    if isinstance(variant, TensorParallel):
        variant.collect_comm()
        for row, comm in zip(rows, variant.comm_rows[-len(rows):]):
            row.update(comm)
    mine = rank_result(cfg, rank, weights, rows, build_s, warmup_s)
    everyone: list = [None] * rank.world
    dist.all_gather_object(everyone, mine)
    if rank.rank != 0:
        return None
    fallbacks = list(variant.fallbacks) + ([] if NVTX_AVAILABLE else ["nvtx package missing: no NVTX ranges emitted"])
    return combine(cfg, opts.mode, rank.backend, everyone, list(variant.active), fallbacks, correctness)


def _summary(values: list[float]) -> dict:
    return harness._summary(values)


def rank_result(cfg: Config, rank: Rank, weights: Weights, rows: list[dict], build_s: float, warmup_s: float) -> dict:
    """One rank's metrics: the harness's (over its shard's bytes) plus its communication."""
    m = harness.metrics(cfg, workload.weight_bytes_per_step(weights, cfg.batch), rows)
    for key in ("prefill_comm_ms", "decode_comm_ms"):
        values = [r[key] for r in rows if r.get(key) is not None]
        if values:
            m[key] = _summary(values)
    if "decode_comm_ms" in m:
        m["comm_ms_per_step"] = _summary([r["decode_comm_ms"] / cfg.steps for r in rows])
    device = harness.device_info(cfg)
    device["index"] = torch.cuda.current_device() if cfg.device == "cuda" else None
    return {"rank": rank.rank, "local_rank": rank.local_rank, "pid": os.getpid(), "device": device,
            "weight_bytes_per_step": workload.weight_bytes_per_step(weights, cfg.batch),
            "build_s": build_s, "warmup_s": warmup_s, "metrics": m, "iterations": rows}


def combine(cfg: Config, mode: str, backend: str, ranks: list[dict], active: list[str], fallbacks: list[str],
            correctness: dict) -> dict:
    """The run's result from every rank's: each measured iteration counts at its slowest rank
    (ranks run concurrently, so that is the wall time); throughput counts the tokens of all
    ranks (tp: one shared batch; dp: one batch per rank); weight GB/s sums every rank's bytes."""
    world = len(ranks)
    slowest = []
    for per_rank in zip(*(r["iterations"] for r in ranks)):
        row = {}
        for key in per_rank[0]:
            values = [r[key] for r in per_rank if isinstance(r.get(key), (int, float))]
            row[key] = max(values) if values else None
        slowest.append(row)
    batches = world if mode == "dp" else 1
    total_bytes = sum(r["weight_bytes_per_step"] for r in ranks)
    m: dict[str, dict] = {}
    for key in ("h2d_ms", "ttft_ms", "decode_ms", "total_ms", "prefill_comm_ms", "decode_comm_ms"):
        values = [r[key] for r in slowest if r.get(key) is not None]
        if values:
            m[key] = _summary(values)
    decode = [r["decode_ms"] for r in slowest if r.get("decode_ms") is not None]
    if decode:
        m["tpot_ms"] = _summary([d / cfg.steps for d in decode])
        m["tokens_per_s"] = _summary([batches * cfg.batch * cfg.steps / (d / 1e3) for d in decode])
        m["weight_gbps"] = _summary([total_bytes * cfg.steps / (d / 1e3) / 1e9 for d in decode])
    m["e2e_tokens_per_s"] = _summary([batches * cfg.batch * (cfg.steps + 1) / (r["total_ms"] / 1e3) for r in slowest])
    with_comm = [r for r in slowest if r.get("decode_comm_ms") is not None and r.get("decode_ms")]
    if with_comm:
        m["comm_ms_per_step"] = _summary([r["decode_comm_ms"] / cfg.steps for r in with_comm])
        m["comm_fraction_of_decode"] = _summary([r["decode_comm_ms"] / r["decode_ms"] for r in with_comm])
    device = dict(ranks[0]["device"])
    device["name"] = f"{world} x {device['name']}" if world > 1 else device["name"]
    if device.get("peak_gbps") and "weight_gbps" in m:
        m["weight_bw_fraction"] = {k: v / (device["peak_gbps"] * world) for k, v in m["weight_gbps"].items()}
    slowest_rank = max(ranks, key=lambda r: r["metrics"].get("decode_ms", {}).get("median", 0.0))["rank"]
    return {
        "target": "multigpu", "mode": mode, "world_size": world, "backend": backend, "config": cfg.as_dict(),
        "device": device, "active": active, "fallbacks": fallbacks, "correctness": correctness,
        "weight_bytes_per_step": total_bytes, "build_s": max(r["build_s"] for r in ranks),
        "warmup_s": max(r["warmup_s"] for r in ranks), "metrics": m, "slowest_rank": slowest_rank,
        "iterations": slowest, "ranks": ranks,
    }


def format_table(result: dict) -> str:
    """The harness's summary of the aggregate, then the communication and one line per rank."""
    lines = [harness.format_table(result),
             f"  mode {result['mode']}, {result['world_size']} process(es), backend {result['backend']}, "
             f"slowest rank {result['slowest_rank']}"]
    m = result["metrics"]
    if "comm_ms_per_step" in m:
        lines.append(f"  {'comm_ms_per_step':<18} {m['comm_ms_per_step']['median']:>12.4g} ms     "
                     f"({m['comm_fraction_of_decode']['median']:.1%} of decode)")
    for r in result["ranks"]:
        rm = r["metrics"]
        comm = f", comm {rm['comm_ms_per_step']['median']:.4g} ms/step" if "comm_ms_per_step" in rm else ""
        lines.append(f"  rank {r['rank']} (pid {r['pid']}): decode {rm['decode_ms']['median']:.4g} ms, "
                     f"{rm['tokens_per_s']['median']:.4g} tok/s{comm}")
    return "\n".join(lines)


def _shared(exc: TargetError) -> TargetError:
    """Mark an error every rank raises alike, so main prints it once (rank 0)."""
    exc.every_rank = True  # type: ignore[attr-defined]
    return exc


def parse_args(argv: list[str] | None) -> tuple[Config, Options, argparse.Namespace]:
    parser = harness.FlagParser(prog="torchrun --nproc-per-node N -m decodeprof_targets multigpu",
                                     description="The decode workload over the processes torchrun starts.")
    workload.add_config_flags(parser)
    parser.add_argument("--mode", choices=MODES, default=None,
                        help=f"tp: tensor parallel (default); dp: data parallel (env {ENV_MODE})")
    parser.add_argument("--graph", action="store_true",
                        help=f"capture the decode loop and its collectives in a CUDA graph (env {ENV_GRAPH}=1)")
    parser.add_argument("--no-comm-timing", action="store_true",
                        help="no CUDA events around the collectives (their cost off the timed loop)")
    parser.add_argument("--json", action="store_true", help="print the metrics JSON alone on stdout (rank 0)")
    parser.add_argument("--json-out", default=None, help="also write the metrics JSON to this file (rank 0)")
    args = parser.parse_args(argv)
    if args.json_out:
        harness.check_json_out(args.json_out)
    # the environment fills in what the flags leave out (a bad ENV_MODE matters only then)
    mode = args.mode or options_from_env().mode
    opts = Options(mode=mode, graph=args.graph or _env_flag(ENV_GRAPH), comm_timing=not args.no_comm_timing)
    return workload.config_from_args(args), opts, args


def main(argv: list[str] | None = None) -> int:
    """Entry point of every rank: run, print on rank 0, turn expected errors into one line."""
    rank_name = os.environ.get("RANK", "0")
    prefix = f"[rank {rank_name}] " if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
    try:
        cfg, opts, args = parse_args(argv)
        if opts.mode == "tp":
            try:
                tp.Layout(0, int(os.environ.get("WORLD_SIZE", "1")), cfg.hidden, cfg.vocab).check()
            except TargetError as exc:
                raise _shared(exc) from None
        rank = init_distributed(cfg)
        result = run_rank(cfg, opts, rank)
    except TargetError as exc:  # no destroy_process_group: peers may be stuck; torchrun ends them
        # An error every rank meets is printed by every rank, unprefixed (identical lines, which
        # `decodeprof run` shows once): torchrun stops the others when the first rank exits, so
        # only the first is sure to be heard.
        said = exc.message if getattr(exc, "every_rank", False) else f"{prefix}{exc.message}"
        hint = f"\nhint: {exc.hint}" if exc.hint else ""
        print(f"error: {said}{hint}", file=sys.stderr, flush=True)
        return 2
    dist.destroy_process_group()
    if result is not None:
        harness.emit(result, args, format_table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
