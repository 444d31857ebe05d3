"""Finding nsys / ncu and reading their versions: real paths, real executables, no mocks."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from decodeprof import tools
from decodeprof.errors import ToolNotFoundError


def _executable(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_env_override_to_a_missing_binary_is_an_error_not_a_fallback(monkeypatch):
    monkeypatch.setenv("NSYS", "/nonexistent")
    with pytest.raises(ToolNotFoundError) as info:
        tools.find_nsys()
    assert "$NSYS points to /nonexistent" in info.value.message
    assert "scripts/install_nsys.sh" in info.value.hint
    assert ".sqlite" in info.value.hint  # the other way out: pass an export


def test_ncu_missing_names_how_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("NCU", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH folder
    monkeypatch.setattr(tools, "ncu_candidates", lambda: [tmp_path / "no-such-ncu"])
    with pytest.raises(ToolNotFoundError) as info:
        tools.find_ncu()
    assert "ncu not found" in info.value.message
    assert "Nsight Compute" in info.value.hint and "$NCU" in info.value.hint


def test_env_and_path_are_searched_first(monkeypatch, tmp_path):
    ncu = _executable(tmp_path / "ncu", 'echo "NVIDIA (R) Nsight Compute Command Line Profiler"\necho "Version 2025.3.1.0 (build 1)"\n')
    monkeypatch.delenv("NCU", raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert tools.find_ncu() == ncu
    # ncu prints a banner first: the version line is the one that says so.
    assert tools.tool_version(ncu) == "Version 2025.3.1.0 (build 1)"
    monkeypatch.setenv("NCU", str(ncu))
    assert tools.find_ncu() == ncu


def test_a_binary_that_cannot_report_its_version_is_not_a_working_tool(tmp_path):
    broken = _executable(tmp_path / "nsys", 'echo "error while loading shared libraries: libssh.so" >&2\nexit 127\n')
    with pytest.raises(ToolNotFoundError) as info:
        tools.tool_version(broken)
    assert "libssh.so" in info.value.message


def test_search_order_lists_the_local_debian_copy_before_system_folders():
    candidates = [str(p) for p in tools.nsys_candidates()]
    local = str(tools.LOCAL_NSYS_DIR)
    assert candidates[0].startswith(local)
    assert "/usr/local/cuda/bin/nsys" in candidates


@pytest.mark.nsys
def test_installed_nsys_reports_its_version():
    try:
        nsys = tools.find_nsys()
    except ToolNotFoundError as exc:
        pytest.skip(f"nsys not installed: {exc.message} (run scripts/install_nsys.sh)")
    assert "Nsight Systems" in tools.tool_version(nsys)
