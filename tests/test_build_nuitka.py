"""build-nuitka: the standalone artifact, run offline elsewhere, and the traps Nuitka sets."""

from __future__ import annotations

import ast
import os
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from build_hooks.freezing.collection import nuitka_collection
from build_hooks.freezing.manifest import data_problems, dist_entries
from build_hooks.freezing.nuitka_options import nuitka_options
from build_hooks.freezing.nuitka_startup import preload_code, sets_own_interrupt_handler
from build_hooks.freezing.plan import make_plan, write_plan
from build_hooks.freezing.records import make_readable, write_records
from build_hooks.freezing.selection import BYTECODE_PACKAGES
from build_hooks.freezing.target import manifest_path, nuitka_report_path, sbom_path
from devtools.demo_project import PROFILE_ID, Project
from tests.artifacts import copy_project, damaged, run_nuitka, self_check_elsewhere, source_vectors
from tests.support import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a cold Nuitka build alone takes ~5 min


@pytest.fixture(scope="module")
def self_check(nuitka_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The artifact copied elsewhere and run with only PATH, an empty HOME and no network."""
    return self_check_elsewhere(nuitka_artifact, tmp_path_factory.mktemp("elsewhere"), tmp_path_factory.mktemp("home"))


def test_nuitka_artifact_runs_offline_from_its_bundle(self_check: dict[str, object]) -> None:
    folder = self_check["folder"]
    assert isinstance(folder, dict) and folder["kind"] == "bundled"
    assert str(folder["path"]) == f"{self_check['_moved_to']}/data/embedding_models/{PROFILE_ID}"
    assert self_check["network_connections_attempted"] == []
    assert self_check["processes_started"] == [], "nothing may re-execute the executable"
    tiktoken_report = self_check["tiktoken"]
    assert isinstance(tiktoken_report, dict) and tiktoken_report["ok"]


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_nuitka_vectors_match_the_source_runtime(
    self_check: dict[str, object], artifact_project: Project, variant: str
) -> None:
    vectors = self_check["vectors"]
    assert isinstance(vectors, dict)
    frozen = np.array(vectors[variant], dtype=np.float32)
    source = source_vectors(artifact_project, variant)
    cosine = (frozen * source).sum(axis=1) / np.linalg.norm(frozen, axis=1) / np.linalg.norm(source, axis=1)
    assert cosine.min() >= 0.9999, cosine


def test_every_data_file_arrived_and_is_readable(nuitka_artifact: Path, artifact_project: Project) -> None:
    plan = make_plan(artifact_project.target, "nuitka")
    assert data_problems(plan, nuitka_artifact, dist_entries(nuitka_artifact)) == []
    for path in (nuitka_artifact / "data").rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o444 == 0o444, path


def test_unused_subpackages_and_libraries_are_left_out(nuitka_artifact: Path) -> None:
    assert not (nuitka_artifact / "onnxruntime" / "transformers").exists()
    assert not list(nuitka_artifact.rglob("libonnxruntime.so*")), "the unused C API library was bundled"


def test_native_backed_packages_ship_as_bytecode_and_network_modules_not_at_all(
    nuitka_artifact: Path, artifact_project: Project
) -> None:
    """The cheap compile settings took effect in the real build (its compilation report says how): the
    native-backed packages and the app's ``nuitka-bytecode`` (the demo's filelock) ship as bytecode."""
    report = ET.parse(nuitka_report_path(nuitka_artifact)).getroot()
    kinds = {node.attrib["name"]: node.attrib["kind"] for node in report.iter("module")}
    config = artifact_project.target.config
    assert config.nuitka_bytecode == ("filelock",)
    for package in (*BYTECODE_PACKAGES, *config.nuitka_bytecode):
        shipped = {name: kind for name, kind in kinds.items() if name.split(".")[0] == package}
        if package in config.exclude_modules:  # the demo leaves regex out (tiktoken's teaching module alone uses it)
            assert shipped == {}, package
            continue
        compiled = [name for name, kind in shipped.items() if kind.startswith("CompiledPython")]
        assert "UncompiledPythonPackage" in shipped.values() and not compiled, (package, compiled)
    assert kinds["embedding_runtime._service"] == "CompiledPythonModule", "the app's own code is compiled"
    assert not {n for n in kinds if n.split(".")[0] in ("http", "ftplib", "xmlrpc") or n == "urllib.request"}


def test_dropped_file_check_names_the_missing_file(
    nuitka_artifact: Path, artifact_project: Project, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    shutil.copytree(nuitka_artifact, dist, copy_function=os.link)  # hard links: fast, and no 200 MB copy
    (dist / "data" / "embedding_models" / PROFILE_ID / "onnx" / "model.onnx_data").unlink()
    (dist / "data" / "tiktoken_cache" / "fb374d419588a4632f3f557e76b4b70aebbca790").unlink()
    plan = make_plan(artifact_project.target, "nuitka", dist=dist)
    problems = data_problems(plan, dist, dist_entries(dist))
    assert problems == [
        f"data/embedding_models/{PROFILE_ID}/onnx/model.onnx_data is missing from data/",
        "data/tiktoken_cache/fb374d419588a4632f3f557e76b4b70aebbca790 is missing from data/",
    ]


@pytest.mark.parametrize(("damage", "message"), [("missing sidecar", "is missing"), ("tiktoken missing", "tiktoken")])
def test_nuitka_build_refuses_before_compiling(
    artifact_project: Project, tmp_path: Path, damage: str, message: str
) -> None:
    project = damaged(artifact_project, tmp_path, damage)
    result = run_nuitka(project)
    assert result.returncode == 1
    assert any(message in line for line in result.stderr.splitlines() if line.startswith("ERROR: "))
    assert "Nuitka" not in result.stdout, "the compiler was started"
    assert not project.nuitka_artifact.exists()


def test_mode_0600_files_become_readable(tmp_path: Path) -> None:
    sidecar = tmp_path / "data" / "embedding_models" / "p" / "onnx" / "model.onnx_data"
    sidecar.parent.mkdir(parents=True)
    sidecar.write_bytes(b"weights")
    sidecar.chmod(0o600)
    make_readable(tmp_path)
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o644


def test_data_goes_file_by_file_and_platform_specific_libraries(artifact_project: Project) -> None:
    plan = make_plan(artifact_project.target, "nuitka")
    linux = nuitka_options(plan, platform="linux")
    assert not any(arg.startswith("--include-data-dir") for arg in linux), "data dirs drop files by suffix"
    assert (
        f"--include-data-files={artifact_project.profile}/onnx/model.onnx_data=data/embedding_models/{PROFILE_ID}/onnx/model.onnx_data"
        in linux
    )
    assert "--nofollow-import-to=onnxruntime.transformers" in linux
    assert "--noinclude-dlls=onnxruntime/capi/libonnxruntime.so*" in linux
    assert "--noinclude-dlls=onnxruntime/capi/libonnxruntime*.dylib" in nuitka_options(plan, platform="darwin")
    assert not any("noinclude-dlls" in arg for arg in nuitka_options(plan, platform="win32"))


def test_the_records_of_the_build_in_another_folder_are_byte_identical(
    artifact_project: Project, nuitka_artifact: Path, tmp_path: Path
) -> None:
    """Nuitka's program is reproducible: verify builds it again in another folder and holds every file of
    the artifact to that rebuild, byte for byte (tests/test_verify_artifact.py). What is left to show is
    that the records do not depend on the folder: the project copied elsewhere, holding the files that
    rebuild gives, gets from its own plan and collection, through the build's own write_records, a
    manifest and an SBOM byte for byte the first build's (sources relative to the project, the SBOM's
    time the app's commit's). A second compile here would cost a cold Nuitka build for the same bytes."""
    project = copy_project(artifact_project, tmp_path / "elsewhere")
    dist = project.nuitka_artifact
    shutil.copytree(nuitka_artifact, dist, symlinks=True)
    shutil.copy(nuitka_report_path(nuitka_artifact), nuitka_report_path(dist))
    plan = make_plan(project.target, "nuitka", dist=dist)
    write_plan(plan)
    write_records(plan, nuitka_collection(nuitka_report_path(dist), project.root))
    for record in (manifest_path, sbom_path):
        assert record(nuitka_artifact).read_bytes() == record(dist).read_bytes(), record


HARD = {"__future__", "os", "sys", "typing", "importlib", "importlib.metadata"}.__contains__


def test_the_start_up_code_loads_the_main_modules_hard_imports_under_the_c_handler() -> None:
    """Nuitka aborts when a hard import fails, and a KeyboardInterrupt inside one is a failure: the main
    module's hard imports are loaded first (a package's parents too), under names the app never sees."""
    source = "from __future__ import annotations\nimport os, json\nimport importlib.metadata\n"
    source += "\ndef f():\n    import typing\n"
    code = preload_code(source, HARD)
    loaded = [line.split()[1] for line in code.splitlines() if line.endswith(" as _embedding_pipeline_loaded")]
    assert loaded == ["__future__", "importlib", "importlib.metadata", "os", "typing"]
    assert "del _embedding_pipeline_loaded" in code and "json" not in code
    namespace: dict[str, object] = {}
    exec(compile(code.split("import signal")[0], "<preload>", "exec"), namespace)
    assert not {"os", "typing", "importlib", "_embedding_pipeline_loaded"} & namespace.keys()


def test_an_app_that_sets_its_own_sigint_handler_gets_it_straight_from_the_c_handler() -> None:
    """The launcher sets its handler in its first lines: no Python handler comes in between (a Ctrl-C there
    was a KeyboardInterrupt that Nuitka's exit path read before it was normalised: a SIGSEGV)."""
    launcher = (REPO_ROOT / "app" / "launcher.py").read_text(encoding="utf-8")
    assert sets_own_interrupt_handler(ast.parse(launcher))
    assert "signal.signal(" not in preload_code(launcher, HARD)
    for own in (
        "import signal\nsignal.signal(signal.SIGINT, h)\n",
        "from signal import SIGINT, signal\nsignal(SIGINT, h)\n",
    ):
        assert sets_own_interrupt_handler(ast.parse(own)), own
    for other in (
        "import signal\ndef main():\n    signal.signal(signal.SIGINT, h)\n",
        "signal.signal(signal.SIGTERM, h)\n",
    ):
        assert not sets_own_interrupt_handler(ast.parse(other)), other


def test_any_other_app_gets_a_keyboard_interrupt_with_its_value() -> None:
    """An app that sets no handler gets one raising ``KeyboardInterrupt()``: an exception with its value
    (``default_int_handler``'s has none until normalised), and only where the C handler is the start-up's."""
    code = preload_code("print('app')\n", HARD)
    assert "raise KeyboardInterrupt()" in code and "default_int_handler" not in code
    child = (
        "import ctypes, signal, os\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.signal.restype = ctypes.c_void_p\n"
        "libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]\n"
        "HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_int)(lambda n: None)\n"
        "libc.signal(signal.SIGINT, ctypes.cast(HANDLER, ctypes.c_void_p))  # a C handler, as the start-up's\n"
        "real = signal.getsignal  # and Python's record of it, as a Nuitka start-up under that handler has it\n"
        "signal.getsignal = lambda n: None if n == signal.SIGINT else real(n)\n"
        f"exec({code!r})\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    [None for _ in range(10**6)]  # a signal check comes at once\n"
        "except KeyboardInterrupt as caught:\n"
        "    print(type(caught).__name__, caught.__traceback__ is not None)\n"
    )
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "KeyboardInterrupt True\n", result.stderr
