"""The floors of the house: each layer imports only the layers below it (read from the source
with `ast`, every import statement including those inside functions).

    decodeprof_targets/       nothing from decodeprof
    decodeprof.load           schema, errors, trace: no capture, analyses, findings, display or commands
    decodeprof.analyses       load and below: no findings, display or commands
    decodeprof.capture        load (the export, the run folder's names) and below; no analyses,
                              findings, display or commands (profile passes the analysis in)
    decodeprof.present        no analyses, findings, report, diff or commands
    decodeprof.findings       no report, diff or commands; of present only the unit formatters
    decodeprof.report, .diff  present frames and findings: no load, capture or commands; of the
                              analyses only the package (run_all, why_empty) and the modules whose
                              results they show (PUBLIC_ANALYSES); no trace table read
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# layer (a package or module) -> the packages/modules it must never import
FORBIDDEN = {
    "decodeprof.load": ("decodeprof.analyses", "decodeprof.findings", "decodeprof.report", "decodeprof.diff",
                        "decodeprof.commands", "decodeprof.present", "decodeprof.capture"),
    "decodeprof.analyses": ("decodeprof.findings", "decodeprof.report", "decodeprof.diff", "decodeprof.commands",
                            "decodeprof.present", "decodeprof.capture"),
    "decodeprof.capture": ("decodeprof.analyses", "decodeprof.findings", "decodeprof.report", "decodeprof.diff",
                           "decodeprof.commands", "decodeprof.present"),
    "decodeprof.present": ("decodeprof.analyses", "decodeprof.findings", "decodeprof.report", "decodeprof.diff",
                           "decodeprof.commands"),
    "decodeprof.findings": ("decodeprof.report", "decodeprof.diff", "decodeprof.commands"),
    "decodeprof.report": ("decodeprof.load", "decodeprof.capture", "decodeprof.commands"),
    "decodeprof.diff": ("decodeprof.load", "decodeprof.capture", "decodeprof.commands", "decodeprof.report"),
}
# Of present, findings use only the unit formatters (a finding's sentence states its numbers).
FINDINGS_MAY_USE = ("decodeprof.present.formats",)
PRESENTATION = ("decodeprof.report", "decodeprof.diff")
# The analyses whose results report and diff show: frames (and the small typed objects that
# carry them) computed from a trace or from two.
PUBLIC_ANALYSES = ("decodeprof.analyses.analysed", "decodeprof.analyses.alignment", "decodeprof.analyses.breakdown",
                   "decodeprof.analyses.comparison", "decodeprof.analyses.run_info", "decodeprof.analyses.step_timeline")
# Trace attributes that hold its tables (decodeprof.trace.Trace): what only analyses read.
TRACE_TABLES = ("kernels", "runtime", "memcpys", "memsets", "syncs", "nvtx", "gpus", "threads", "ncu_metrics")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path).rsplit(".", 0 if path.name == "__init__.py" else 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def _sources(layer: str) -> list[Path]:
    path = ROOT / Path(*layer.split("."))
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer):
    wrong = [f"{p.relative_to(ROOT)} imports {name}" for p in _sources(layer) for name in sorted(_imports(p))
             if any(_under(name, f) for f in FORBIDDEN[layer])]
    assert not wrong, "\n".join(wrong)


def test_the_targets_import_nothing_from_decodeprof():
    wrong = [f"{p.relative_to(ROOT)} imports {name}" for p in sorted((ROOT / "decodeprof_targets").rglob("*.py"))
             for name in sorted(_imports(p)) if _under(name, "decodeprof")]
    assert not wrong, "\n".join(wrong)


def _module(name: str) -> str:
    """The longest prefix of the dotted `name` that is a module or package of the tree
    (`from decodeprof.analyses import why_empty` names decodeprof.analyses.why_empty)."""
    parts = name.split(".")
    while parts:
        path = ROOT / Path(*parts)
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return name


@pytest.mark.parametrize("layer", PRESENTATION)
def test_report_and_diff_import_only_the_public_analyses(layer):
    wrong = [f"{p.relative_to(ROOT)} imports {name}" for p in _sources(layer) for name in sorted(_imports(p))
             if _under(name, "decodeprof.analyses")
             and _module(name) != "decodeprof.analyses" and not any(_under(_module(name), m) for m in PUBLIC_ANALYSES)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("layer", PRESENTATION)
def test_report_and_diff_read_no_trace_table(layer):
    """`<anything>.kernels` and the like: a trace's tables are the analyses' to read."""
    wrong = [f"{p.relative_to(ROOT)}:{node.lineno} reads .{node.attr}" for p in _sources(layer)
             for node in ast.walk(ast.parse(p.read_text(), str(p)))
             if isinstance(node, ast.Attribute) and node.attr in TRACE_TABLES]
    assert not wrong, "\n".join(wrong)


def test_findings_use_only_the_unit_formatters_of_present():
    wrong = [f"{p.relative_to(ROOT)} imports {name}" for p in _sources("decodeprof.findings") for name in sorted(_imports(p))
             if _under(name, "decodeprof.present") and not any(_under(_module(name), m) for m in FINDINGS_MAY_USE)]
    assert not wrong, "\n".join(wrong)


def _calls(name: str) -> list[str]:
    """Where decodeprof calls `name` (a function or class, by its last dotted part)."""
    return [f"{p.relative_to(ROOT)}:{node.lineno}" for p in sorted((ROOT / "decodeprof").rglob("*.py"))
            for node in ast.walk(ast.parse(p.read_text(), str(p)))
            if isinstance(node, ast.Call) and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) == name]


def _defined(name: str) -> list[str]:
    return [f"{p.relative_to(ROOT)}:{node.lineno}" for p in sorted((ROOT / "decodeprof").rglob("*.py"))
            for node in ast.walk(ast.parse(p.read_text(), str(p)))
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name]


def _colour_maps() -> list[str]:
    """Dict literals that give a kernel family a colour ("gemm": "#4C78A8")."""
    return [f"{p.relative_to(ROOT)}:{node.lineno}" for p in sorted((ROOT / "decodeprof").rglob("*.py"))
            for node in ast.walk(ast.parse(p.read_text(), str(p)))
            if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "gemm" and isinstance(v, ast.Constant)
                                                  and str(v.value).startswith("#") for k, v in zip(node.keys, node.values))]


def test_one_jinja_environment_one_atomic_writer_one_colour_map_one_finding():
    assert [c.split(":")[0] for c in _calls("Environment")] == ["decodeprof/present/html.py"]
    assert [d.split(":")[0] for d in _defined("Finding")] == ["decodeprof/findings/finding.py"]
    assert [p.relative_to(ROOT).as_posix() for p in (ROOT / "decodeprof").rglob("thresholds.py")] == ["decodeprof/thresholds.py"]
    assert [w.split(":")[0] for w in _defined("write_atomic")] == ["decodeprof/present/files.py"]
    assert [m.split(":")[0] for m in _colour_maps()] == ["decodeprof/present/colours.py"]


@pytest.mark.parametrize("layer", ["decodeprof.report", "decodeprof.diff", "decodeprof.findings"])
def test_numbers_are_formatted_only_by_the_unit_formatters(layer):
    """No format spec ({x:.1f}, {n:,}) outside decodeprof.present: every number shown goes
    through decodeprof.present.formats."""
    wrong = [f"{p.relative_to(ROOT)}:{node.lineno}" for p in _sources(layer)
             for node in ast.walk(ast.parse(p.read_text(), str(p)))
             if isinstance(node, ast.FormattedValue) and node.format_spec is not None]
    assert not wrong, "\n".join(wrong)


def test_thresholds_are_read_only_from_the_thresholds_module():
    """A name in decodeprof.thresholds is assigned nowhere else (no second SPEEDUP_MIN)."""
    tree = ast.parse((ROOT / "decodeprof" / "thresholds.py").read_text())
    names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
    wrong = [f"{p.relative_to(ROOT)}:{node.lineno} assigns {t.id}" for p in sorted((ROOT / "decodeprof").rglob("*.py"))
             if p.name != "thresholds.py" for node in ast.walk(ast.parse(p.read_text(), str(p)))
             if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name) and t.id in names]
    assert names and not wrong, "\n".join(wrong)
