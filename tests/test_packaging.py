"""The built wheel carries what the installed tool needs at run time: report and diff
templates, the CUDA source, the expectations; rendered from an install outside the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _third_party_imports(folder: Path) -> set[str]:
    import ast

    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and not n.startswith("decodeprof")}


def _pinned(requirements: Path) -> set[str]:
    return {line.split("==")[0].strip().lower().replace("-", "_") for line in requirements.read_text().splitlines()
            if "==" in line and not line.lstrip().startswith("#")}


def test_everything_the_analysis_side_imports_is_installed_with_it():
    """`make demo` and `pip install decodeprof` install requirements.txt / the project's
    dependencies only (no test tools): every package decodeprof/ imports must be among them
    (markupsafe comes with jinja2), or a plain install fails on the first trace that needs it."""
    import re

    text = (ROOT / "pyproject.toml").read_text()  # no tomllib: Python 3.10 is supported
    block = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    declared = {re.split(r"[<>=!\[ ;]", d, maxsplit=1)[0].lower().replace("-", "_")
                for d in re.findall(r'"([^"]+)"', block)}
    imported = _third_party_imports(ROOT / "decodeprof") - {"markupsafe"}
    imported = {"adbc_driver_sqlite" if n.startswith("adbc") else n for n in imported}
    assert imported <= declared, f"imported but not a dependency in pyproject.toml: {sorted(imported - declared)}"
    assert imported <= _pinned(ROOT / "requirements.txt"), "imported but not pinned in requirements.txt"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(out)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("decodeprof-*.whl")
    site = out / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)  # a wheel is installed by unpacking it
    return site


@pytest.mark.slow
def test_wheel_ships_templates_cuda_source_and_expectations(installed):
    for rel in ("decodeprof/templates/base.html.j2", "decodeprof/templates/diff.html.j2",
                "decodeprof_targets/kernels/cuda/persistent_smem.cu", "decodeprof_targets/expectations/h100.json"):
        assert (installed / rel).is_file(), rel
    assert not (installed / "decodeprof/templates").is_symlink()


@pytest.mark.slow
def test_wheel_installs_only_names_of_its_own(installed):
    """Top-level packages in site-packages are shared by everything installed: a generic name
    (`targets`) would shadow, or be shadowed by, another project's."""
    top = {p.name for p in installed.iterdir() if not p.name.endswith(".dist-info")}
    assert top == {"decodeprof", "decodeprof_targets"}, top


@pytest.mark.slow
def test_installed_copy_renders_report_and_diff_away_from_the_source_tree(installed, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(installed)}
    data = ROOT / "tests" / "data" / "h100"
    code = ("import decodeprof, sys; print(decodeprof.__file__); "
            "from decodeprof.cli import main; main()")
    report = subprocess.run([sys.executable, "-c", code, "report", str(data / "baseline"), str(data / "graph"),
                             "-o", str(tmp_path / "r.html")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert report.stdout.startswith(str(installed))  # the unpacked wheel, not the checkout
    diff = subprocess.run([sys.executable, "-c", code, "diff", str(data / "baseline"), str(data / "graph"),
                           "-o", str(tmp_path / "d.html")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert diff.returncode == 0, diff.stderr
    assert "<html" in (tmp_path / "r.html").read_text()[:500].lower()
    assert "<html" in (tmp_path / "d.html").read_text()[:500].lower()
