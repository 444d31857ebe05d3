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
