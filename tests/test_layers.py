"""The floors of the house: each layer imports only the layers below it (read from the source
with `ast`, every import statement including those inside functions).

    targets/                  nothing from decodeprof
    decodeprof.load           schema, errors, trace: no capture, analyses, findings, display or commands
    decodeprof.analyses       load and below: no findings, display or commands
    decodeprof.capture        load (the export, the run folder's names) and below; no analyses,
                              findings, display or commands (profile passes the analysis in)
    decodeprof.present        no commands
    decodeprof.findings       no report, diff or commands
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
    "decodeprof.present": ("decodeprof.commands",),
    "decodeprof.findings": ("decodeprof.report", "decodeprof.diff", "decodeprof.commands"),
}


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
    wrong = [f"{p.relative_to(ROOT)} imports {name}" for p in sorted((ROOT / "targets").rglob("*.py"))
             for name in sorted(_imports(p)) if _under(name, "decodeprof")]
    assert not wrong, "\n".join(wrong)
