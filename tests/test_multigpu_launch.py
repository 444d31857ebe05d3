"""The multigpu target through a real torchrun (gloo on CPU), the launch helper, and world size 1
with NCCL on a GPU."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from decodeprof_targets import launch, registry

SMALL_FLAGS = ["--hidden", "64", "--vocab", "256", "--prompt-len", "8", "--steps", "6", "--iters", "1", "--warmup", "0"]


def _command(nprocs: int, device: str, flags: list[str]) -> tuple[list[str], dict[str, str]]:
    argv, env = launch.torchrun_command(["multigpu", *flags], nprocs, device)
    if "multigpu" not in registry.TARGETS:  # until the registry lists it: the module directly
        i = argv.index("decodeprof_targets")
        argv[i - 1: i + 2] = ["-m", "decodeprof_targets.multigpu"]
    return argv, env


def _run(nprocs: int, device: str, flags: list[str], extra_env: dict[str, str] | None = None,
         timeout: int = 120) -> subprocess.CompletedProcess:
    argv, env = _command(nprocs, device, flags)
    full_env = {**os.environ, **env, **(extra_env or {})}
    return subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=timeout,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _reference_digest(**overrides) -> str:
    """Digest of the single-device eager tokens on the correctness check's prompts."""
    import torch

    from decodeprof_targets import workload

    cfg = workload.Config(batch=4, prompt_len=8, steps=6, hidden=64, vocab=256, dtype="fp32", device="cpu", **overrides)
    tokens, _ = workload.reference_generate(workload.make_weights(cfg), workload.make_prompts(cfg, cfg.seed + 10_000), cfg.steps)
    return hashlib.sha256(tokens.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()[:16]


def _json(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_torchrun_two_ranks_tensor_parallel_matches_single_device() -> None:
    result = _json(_run(2, "cpu", [*SMALL_FLAGS, "--json"]))
    assert (result["world_size"], result["backend"], result["mode"]) == (2, "gloo", "tp")
    c = result["correctness"]
    assert c["tokens_match"] and c["ranks_agree"] and c["token_agreement"] == 1.0
    assert c["tokens_digest"] == c["reference_digest"] == _reference_digest()
    assert [r["rank"] for r in result["ranks"]] == [0, 1]
    assert len({r["pid"] for r in result["ranks"]}) == 2
    assert result["ranks"][0]["weight_bytes_per_step"] < result["weight_bytes_per_step"]
    assert result["metrics"]["comm_ms_per_step"]["median"] > 0
    assert result["ranks"][1]["iterations"][0]["decode_collectives"] == 12


def test_torchrun_data_parallel_graph_request_falls_back_on_cpu() -> None:
    env = {"DECODEPROF_MULTIGPU_MODE": "dp", "DECODEPROF_MULTIGPU_GRAPH": "1"}
    result = _json(_run(2, "cpu", [*SMALL_FLAGS, "--json"], env))
    assert result["mode"] == "dp" and result["active"] == ["data_parallel"]
    assert result["correctness"]["tokens_match"] and result["correctness"]["ranks_checked"] == 2
    assert any("CUDA graphs need CUDA" in f for f in result["fallbacks"])
    assert "comm_ms_per_step" not in result["metrics"]
    per_rank = sum(r["metrics"]["tokens_per_s"]["median"] for r in result["ranks"])
    assert result["metrics"]["tokens_per_s"]["median"] <= per_rank * 1.0001


def test_single_device_target_under_torchrun_writes_one_metrics_file_per_rank(tmp_path) -> None:
    """Each rank of a single-device target is an independent replica; ranks never share a file
    (two ranks writing one metrics.json once left it with two documents in it)."""
    argv, env = launch.torchrun_command(["baseline", *SMALL_FLAGS, "--json-out", str(tmp_path / "metrics.json")], 2, "cpu")
    proc = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "metrics.rank1.json"]
    for name in ("metrics.json", "metrics.rank1.json"):
        assert json.loads((tmp_path / name).read_text())["target"] == "baseline"


def test_json_out_path_per_rank(tmp_path) -> None:
    from decodeprof_targets.harness import json_out_path

    out = str(tmp_path / "m.json")
    assert json_out_path(out, {}) == tmp_path / "m.json"
    assert json_out_path(out, {"RANK": "0"}) == tmp_path / "m.json"
    assert json_out_path(out, {"RANK": "3"}) == tmp_path / "m.rank3.json"
    assert json_out_path(str(tmp_path / "m"), {"RANK": "1"}) == tmp_path / "m.rank1.json"


def test_torchrun_command_shape() -> None:
    argv, env = launch.torchrun_command(["multigpu", "--steps", "8"], 4, "cuda", python="py")
    assert argv == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "4",
                    "-m", "decodeprof_targets", "multigpu", "--steps", "8", "--device", "cuda"]
    assert env["NCCL_NVLS_ENABLE"] == "0" and env["TORCH_SYMM_MEM_DISABLE_MULTICAST"] == "1"
    assert env["NVSHMEM_DISABLE_NVLS"] == "1" and "OMP_NUM_THREADS" not in env
    argv, _ = launch.torchrun_command(["multigpu", "--device=cpu"], 2, "cpu")
    assert argv.count("--device=cpu") == 1 and "--device" not in argv
    assert argv[0] == sys.executable
    line = launch.shell_line(["py", "a b"], {"X": "1"})
    assert line == "env X=1 py 'a b'"


def test_torchrun_command_rejects_bad_input() -> None:
    from decodeprof_targets.errors import TargetError

    with pytest.raises(TargetError, match="--device cpu but the launch is for cuda"):
        launch.torchrun_command(["multigpu", "--device", "cpu"], 2, "cuda")
    with pytest.raises(TargetError, match="at least 1"):
        launch.torchrun_command(["multigpu"], 0, "cpu")
    with pytest.raises(TargetError, match="no target label"):
        launch.torchrun_command(["--steps", "3"], 2, "cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("graph", [False, True])
def test_torchrun_world_size_one_nccl(graph: bool) -> None:
    flags = ["--steps", "16", "--iters", "3", "--warmup", "1", "--json"] + (["--graph"] if graph else [])
    result = _json(_run(1, "cuda", flags, timeout=300))
    assert (result["world_size"], result["backend"]) == (1, "nccl")
    assert result["correctness"]["tokens_match"] and result["correctness"]["max_abs_logit_err"] == 0.0
    assert ("cuda_graph_decode" in result["active"]) == graph
    assert result["metrics"]["comm_ms_per_step"]["median"] > 0
