"""Every single-GPU target on a real GPU: matches the eager reference and emits metrics."""

from __future__ import annotations

import pytest

from decodeprof_targets import harness, registry, workload

pytestmark = pytest.mark.gpu

CFG = workload.Config(batch=3, prompt_len=16, steps=6, hidden=256, vocab=1000, warmup=1, iters=2, host_payload_mb=1)


@pytest.mark.parametrize("label", [t for t, info in registry.TARGETS.items() if info.launcher == "python"])
def test_target_matches_eager_reference_on_gpu(label):
    import torch

    info = registry.get(label)
    result = harness.run(label, info.load().build, CFG)
    torch.cuda.set_stream(torch.cuda.default_stream())  # streams switches the current stream
    # the harness's one rule (free_running_check, and teacher-forced where a target has a step
    # function): harness.run raises when it fails; the fields say what it enforced
    c = result["correctness"]
    tol = c["tolerance"]
    assert c["choice_agreement"] >= tol["min_token_agreement"]
    if "teacher_forced" in c:
        assert c["teacher_forced"]["token_agreement"] >= tol["min_token_agreement"]
        assert c["teacher_forced"]["max_abs_logit_err"] <= tol["max_abs_logit_err"]
    assert result["metrics"]["decode_ms"]["median"] > 0


def test_graph_capture_failure_is_one_clear_error():
    """A host sync inside capture is illegal: the harness must say so, not dump a traceback."""
    import torch

    from decodeprof_targets import graphs
    from decodeprof_targets.errors import TargetError

    x = torch.ones(4, device="cuda")
    with pytest.raises(TargetError, match="CUDA graph capture failed"):
        graphs.capture(lambda: (x * 2).sum().item(), warmups=1)
    torch.cuda.synchronize()
