"""A sample of the fault campaign (scripts/fault_campaign.py --quick): one damaged input of
each family (exports, ncu CSVs, metrics and run JSON, folder names, flags), each run through
one command in a subprocess with every input hashed before and after. No run may end in a
traceback or a hang, write to its inputs, or exit 0 with a result that differs from the
intact input's without a warning naming what was dropped. The whole campaign (a few hundred
inputs, every command) is the script itself; its summary goes in the results log.

The sample runs the commands that say what the loader dropped (analyze as tables and JSON,
report, timeline); `diff` and `analyze --csv` (which say it in warnings and on stderr) are
tested on one mutation, and the inputs that once broke a command run every command.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fault_campaign.py"
SAYS_DROPPED = ("json", "tables", "report", "timeline")  # commands whose output names the dropped rows
DIFF_AND_CSV = ("csv", "diff", "diff-html")  # say it too (on stderr, in warnings), tested on one mutation


@pytest.fixture(scope="module")
def campaign():
    spec = importlib.util.spec_from_file_location("fault_campaign", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being made
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_every_family_has_mutations_and_the_full_set_is_a_few_hundred(campaign):
    mutations = campaign.all_mutations(seed=20)
    families = {m.family for m in mutations}
    assert {"sqlite-null", "sqlite-huge", "sqlite-duplicate", "sqlite-drop-table", "sqlite-file", "ncu-csv",
            "metrics-json", "paths", "scale"} <= families
    assert len(mutations) >= 300
    assert len({m.id for m in mutations}) == len(mutations)  # each named once
    sample = campaign.quick_sample(mutations, seed=20)
    assert {m.family for m in sample} == families and all(len(m.commands) == 1 for m in sample)


def test_a_sample_of_the_fault_campaign_has_no_failure(campaign):
    lines: list[str] = []
    summary = campaign.run_campaign(quick=True, jobs=2, seed=20, timeout=120, printer=lines.append, progress=False,
                                    commands=SAYS_DROPPED)
    assert len(summary["runs"]) >= 20, "\n".join(lines)
    assert not summary["failures"], "\n".join(lines)
    assert not summary["counts"].get("skipped"), "\n".join(lines)


def test_diff_and_csv_say_what_the_loader_dropped(campaign):
    """diff (terminal, JSON, HTML) and analyze --format csv say the rows the loader dropped."""
    lines: list[str] = []
    summary = campaign.run_campaign(jobs=2, seed=20, timeout=120, printer=lines.append, progress=False,
                                    only=["sqlite-order/memcpy.end-before-start@h200-baseline"], commands=DIFF_AND_CSV,
                                    every=True)
    assert {r["command"] for r in summary["runs"]} == set(DIFF_AND_CSV), "\n".join(lines)
    assert not summary["failures"], "\n".join(lines)


# inputs that once ended in a traceback or changed an output without a word
ONCE_BROKEN = ["sqlite-rename-column/kind.name@h200-baseline",  # memory kinds named by the ENUM label column
               "sqlite-drop-table/NVTX_EVENTS@h200-graph"]  # no NVTX rows beside a metrics.json


def test_the_inputs_that_once_broke_a_command(campaign):
    lines: list[str] = []
    summary = campaign.run_campaign(jobs=2, seed=20, timeout=120, printer=lines.append, progress=False,
                                    only=ONCE_BROKEN, commands=(*SAYS_DROPPED, *DIFF_AND_CSV), every=True)
    assert len(summary["runs"]) == len(ONCE_BROKEN) * (len(SAYS_DROPPED) + len(DIFF_AND_CSV)), "\n".join(lines)
    assert not summary["failures"], "\n".join(lines)
