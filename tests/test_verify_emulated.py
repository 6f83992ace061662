"""verify says yes to a good artifact on a CPU that computes int8 differently, and still no to a bad one.

Opt-in (``--run-emulated``; ``nox -s canary-cpus`` installs qemu-user and runs it): verify itself runs
under ``qemu-x86_64 -cpu Haswell`` (AVX2, no AVX-512, no VNNI), so the plan it makes anew, the probe
record included, is computed with other int8 kernels than the build's. The artifacts' own self-checks
still run natively (qemu-user does not follow exec), as a user's machine would run them: their int8
vectors then meet verify's emulated ones at the canary's calibrated floor, not at fp32's 0.9999.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.canary_cpus import EMULATED_CPU, QEMU
from devtools.demo_project import Project
from devtools.tampering import forge_records, probe_agreement_lowered
from tests.artifacts import linked_copy
from tests.support import REPO_ROOT, child_env

pytestmark = [pytest.mark.emulated, pytest.mark.slow, pytest.mark.timeout(7200)]


def verify_emulated(project: Project, reports: Path, *dists: Path) -> subprocess.CompletedProcess[str]:
    assert shutil.which(QEMU), f"{QEMU} is missing: run `nox -s canary-cpus`, which installs qemu-user"
    command = [QEMU, "-cpu", EMULATED_CPU, sys.executable, str(REPO_ROOT / "scripts" / "verify_artifact.py"),
               *map(str, dists), "--reports", str(reports)]  # fmt: skip
    return subprocess.run(command, cwd=project.root, env=child_env(), capture_output=True, text=True, timeout=7000)


def test_good_artifacts_pass_verify_on_an_emulated_haswell(
    artifact_project: Project, pyinstaller_artifact: Path, nuitka_artifact: Path, tmp_path: Path
) -> None:
    result = verify_emulated(artifact_project, tmp_path, pyinstaller_artifact, nuitka_artifact)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in ("local-notes", "local-notes.dist"):
        report = json.loads((tmp_path / f"{name}.verify.json").read_text())
        assert report["verdict"] == "pass" and (tmp_path / f"{name}.SHA256SUMS").is_file()


def test_a_lowered_int8_figure_still_fails_on_an_emulated_haswell(
    artifact_project: Project, pyinstaller_artifact: Path, tmp_path: Path
) -> None:
    """The probe record's int8 figure lowered by 0.05 (the runtime's floor with it): outside the spread
    two CPUs compute, wherever verify runs."""
    copy = linked_copy(pyinstaller_artifact, tmp_path / "artifacts" / pyinstaller_artifact.name)
    changed = probe_agreement_lowered(copy, artifact_project).relative_to(copy).as_posix()
    forge_records(copy)
    result = verify_emulated(artifact_project, tmp_path / "reports", copy)
    assert result.returncode == 1 and f"{changed} records int8 agreeing with fp32 at" in result.stderr, result.stderr
    assert not (tmp_path / "reports" / f"{copy.name}.SHA256SUMS").exists()
