"""Findings on the shipped H100 runs that the other finding tests leave alone: correctness
(near-tie divergence, fallbacks), weight bytes per step, and host wait. Every expected number
is read from metrics.json with json, or computed with plain sqlite3 SQL on trace.sqlite."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import report_sql as q  # noqa: E402

from decodeprof.findings import compare, findings  # noqa: E402
from decodeprof.thresholds import HOST_WAIT_GROWTH_MIN, TOKEN_AGREEMENT_MIN, TTFT_CHANGE_MIN  # noqa: E402
from decodeprof.report import load_variant  # noqa: E402

H100 = Path(__file__).parent / "data" / "h100"


@pytest.fixture(scope="module")
def v():
    return {n: load_variant(H100 / n) for n in ("baseline", "pinned", "fp8", "fp4", "compile", "persistent", "persistent_smem")}


def of(v, name):
    return findings(name, v[name].facts, v["baseline"].facts)


def by_title(fs, title):
    hits = [f for f in fs if f.title == title]
    assert len(hits) == 1, f"expected one finding {title!r} in {[f.title for f in fs]}"
    return hits[0]


def test_fp8_near_tie_names_the_divergent_step_and_the_agreement(v):
    c = q.metrics("fp8")["correctness"]
    assert c["tokens_match"] is False and "choice_agreement" not in c  # a run recorded before choice_agreement
    # 21.9% of free-running tokens agree: below TOKEN_AGREEMENT_MIN, a warning the summary repeats
    f = by_title(of(v, "fp8"), "low token agreement")
    assert f.kind == "warning" and f.fact == "token_agreement_pct" and c["token_agreement"] < TOKEN_AGREEMENT_MIN
    assert f"a warning below {100 * TOKEN_AGREEMENT_MIN:.1f}% free-running agreement" in f.threshold
    assert f"agree {100 * c['token_agreement']:.1f}% with the eager reference" in f.sentence  # 21.9%
    assert f"they diverge from position {c['first_divergent_step']}," in f.sentence  # 2
    # the run passed its teacher-forced check: its numbers are in the sentence too
    forced = c["teacher_forced"]
    assert f"Teacher-forced, each step agrees {100 * forced['token_agreement']:.1f}%" in f.sentence
    assert "tokens differ" not in [x.title for x in of(v, "fp8")]


@pytest.mark.parametrize("name", ["fp8", "fp4"])
def test_fallbacks_are_named_in_the_warning(v, name):
    fallbacks = q.metrics(name)["fallbacks"]
    assert fallbacks  # both runs fell back (no Transformer Engine on the capture machine)
    f = by_title(of(v, name), "fell back")
    assert f.kind == "warning"
    for text in fallbacks:
        assert str(text) in f.sentence
    assert f.sentence == "The target fell back: " + "; ".join(map(str, fallbacks)) + "."


def test_no_fallback_no_warning(v):
    assert q.metrics("pinned")["fallbacks"] == []
    assert "fell back" not in [f.title for f in of(v, "pinned")]


def test_fp8_fewer_bytes_per_step_evidence_is_metrics_json(v):
    base_bytes = q.metrics("baseline")["weight_bytes_per_step"]
    fp8_bytes = q.metrics("fp8")["weight_bytes_per_step"]
    assert (base_bytes, fp8_bytes) == (20987904, 10543104)
    f = by_title(of(v, "fp8"), "fewer bytes per step")
    assert f.kind == "win"
    assert f.evidence["baseline_weight_bytes_per_step"] == base_bytes
    assert f.evidence["variant_weight_bytes_per_step"] == fp8_bytes
    assert f"streams {fp8_bytes / 1e6:,.1f} MB of weights vs {base_bytes / 1e6:,.1f} MB" in f.sentence
    assert f"({100 * (base_bytes - fp8_bytes) / base_bytes:.1f}% less)" in f.sentence


# Blocking runtime calls as decodeprof.analyses.host_wait defines them: synchronize calls
# (^cu(da)?(Stream|Device|Event|Ctx)Synchronize), synchronous copies (cu(da)Memcpy without
# "Async"), and Async copies whose host side is pageable memory (the driver stages them).
_SYNC = " OR ".join(f"s.value GLOB '{p}{what}Synchronize*'" for p in ("cu", "cuda")
                    for what in ("Stream", "Device", "Event", "Ctx"))
_MEMCPY = "(s.value GLOB 'cuMemcpy*' OR s.value GLOB 'cudaMemcpy*')"
HOST_WAIT_SQL = f"""
    SELECT coalesce(sum(r."end" - r.start), 0), count(*)
    FROM CUPTI_ACTIVITY_KIND_RUNTIME r JOIN StringIds s ON s.id = r.nameId
    WHERE ({_SYNC})
       OR ({_MEMCPY} AND s.value NOT GLOB '*Async*')
       OR ({_MEMCPY} AND s.value GLOB '*Async*' AND EXISTS (
              SELECT 1 FROM CUPTI_ACTIVITY_KIND_MEMCPY m
              JOIN ENUM_CUDA_MEM_KIND src ON src.id = m.srcKind
              JOIN ENUM_CUDA_MEM_KIND dst ON dst.id = m.dstKind
              WHERE m.correlationId = r.correlationId AND m.globalPid = (r.globalTid / 16777216) * 16777216
                AND (src.name LIKE '%PAGEABLE%' OR dst.name LIKE '%PAGEABLE%')))"""


def host_wait_per_iteration(variant: str) -> tuple[float, int]:
    """(host wait ns in blocking calls over the whole trace / NVTX "iteration" ranges, blocking calls)."""
    with q.connect(variant) as db:
        wait, calls = db.execute(HOST_WAIT_SQL).fetchone()
        iters = db.execute(
            """SELECT count(*) FROM NVTX_EVENTS n LEFT JOIN StringIds s ON s.id = n.textId
               WHERE coalesce(n.text, s.value) = 'iteration' AND n."end" IS NOT NULL""").fetchone()[0]
    return wait / iters, calls


def test_pinned_host_wait_finding_matches_sql(v):
    base, base_calls = host_wait_per_iteration("baseline")
    pinned, pinned_calls = host_wait_per_iteration("pinned")
    # baseline: 9 synchronize calls + 6 pageable cudaMemcpyAsync; pinned: its 6 copies are pinned
    assert (base_calls, pinned_calls) == (15, 3)
    f = by_title(of(v, "pinned"), "host blocked less")
    assert f.kind == "win"
    assert f.evidence["baseline_host_wait_per_iter_ns"] == pytest.approx(base, rel=1e-12)
    assert f.evidence["variant_host_wait_per_iter_ns"] == pytest.approx(pinned, rel=1e-12)
    assert f.evidence["reduction"] == pytest.approx((base - pinned) / base, rel=1e-12)
    assert f"waits {pinned / 1e3:,.1f} µs per iteration in blocking CUDA calls vs {base / 1e3:,.1f} µs" in f.sentence
    assert v["pinned"].facts.host_blocking_calls == pinned_calls
    assert v["baseline"].facts.host_blocking_calls == base_calls


def _facts(**kw):
    from decodeprof.findings import Facts

    return Facts(**{"decode_ms": 10.0, "total_ms": 12.0, **kw})


@pytest.mark.parametrize("against_baseline", [True, False])
def test_tokens_differ_without_passing_checks_is_a_warning(against_baseline):
    """tokens_match False with no teacher-forced check and no choice_agreement: the run did not
    show its divergence is a near-tie, so it is a failed check, not an info note."""
    c = {"tokens_match": False, "token_agreement": 0.5, "max_abs_logit_err": 2.0, "first_divergent_step": 3,
         "tolerance": {"min_token_agreement": 1.0, "max_abs_logit_err": 0.0}}
    v = _facts(tokens_match=False, correctness=c)
    fs = findings("bad", v, _facts() if against_baseline else None)
    f = by_title(fs, "tokens differ")
    assert f.kind == "warning"
    assert "does not count" in f.sentence
    assert "tokens diverge at a near-tie" not in [x.title for x in fs]
    assert fs[0].kind == "warning"  # warnings sort first


def test_a_near_tie_above_the_agreement_threshold_stays_an_info(v):
    c = q.metrics("compile")["correctness"]
    assert c["token_agreement"] >= TOKEN_AGREEMENT_MIN  # 68.5%
    f = by_title(of(v, "compile"), "tokens diverge at a near-tie")
    assert f.kind == "info" and "low token agreement" not in [x.title for x in of(v, "compile")]


def test_fp4_agreement_is_a_warning_in_its_own_findings(v):
    c = q.metrics("fp4")["correctness"]
    f = by_title(of(v, "fp4"), "low token agreement")
    assert f.kind == "warning" and f"agree {100 * c['token_agreement']:.1f}% with the eager reference" in f.sentence  # 3.1%


def test_persistent_smem_ttft_regression_against_baseline_and_persistent(v):
    """persistent_smem's TTFT (metrics.json median, 6.1 ms) is 2.2x the baseline's (2.7 ms) and
    persistent's: a loss, whatever its decode gains."""
    ttft = {n: q.metrics(n)["metrics"]["ttft_ms"]["median"] for n in ("baseline", "persistent", "persistent_smem")}
    for ref in ("baseline", "persistent"):
        fs = compare("persistent_smem", v["persistent_smem"].facts, v[ref].facts, ref=ref)
        f = by_title(fs, "slower first token")
        assert f.kind == "loss" and f.fact == "ttft_ms"
        assert f.evidence["ratio"] == pytest.approx(ttft["persistent_smem"] / ttft[ref])
        assert f.evidence["ratio"] >= TTFT_CHANGE_MIN
        assert f"{ttft['persistent_smem']:,.3f} ms vs {ttft[ref]:,.3f} ms in {ref}" in f.sentence
    # pinned's first token comes 6x sooner (its prompt copy no longer staged): a win
    assert by_title(of(v, "pinned"), "faster first token").kind == "win"
    # fp8's TTFT is within the threshold of the baseline's: nothing said
    assert not {"slower first token", "faster first token"} & {f.title for f in of(v, "fp8")}


def test_more_host_wait_is_a_loss_only_without_a_faster_iteration(v):
    """persistent_smem waits 4.9 ms per iteration in blocking calls (SQL, as above): +123% over
    the baseline's while 2x faster in total (the host waits for a faster GPU: info), +74% over
    persistent's while slower in total (a loss)."""
    wait = {n: host_wait_per_iteration(n)[0] for n in ("baseline", "persistent", "persistent_smem")}
    f = by_title(of(v, "persistent_smem"), "host waits longer")
    assert f.kind == "info" and f.evidence["growth"] == pytest.approx(wait["persistent_smem"] / wait["baseline"] - 1, rel=1e-9)
    f = by_title(compare("persistent_smem", v["persistent_smem"].facts, v["persistent"].facts, ref="persistent"), "host blocked more")
    assert f.kind == "loss" and f.fact == "host_wait_per_iter_ns"
    assert f.evidence["growth"] == pytest.approx(wait["persistent_smem"] / wait["persistent"] - 1, rel=1e-9)
    assert f.evidence["growth"] >= HOST_WAIT_GROWTH_MIN
    assert "vs 2,825.3 µs in persistent (+74.1%)" in f.sentence
