"""Where the runtime loads from: roots per OS, completeness, variant choice, resolution order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from embedding_runtime._completeness import folder_problem
from embedding_runtime._cpu import CpuFacts, cpu_facts, detect, identity_from_cpuinfo
from embedding_runtime._errors import AppDataUnavailableError
from embedding_runtime._layout import read_marker
from embedding_runtime._locations import (
    OVERRIDE_ENV,
    ModelRoot,
    ProcessFacts,
    app_data_dir,
    app_data_location,
    model_roots,
    override_root,
)
from embedding_runtime._resolve import resolve
from embedding_runtime._variant import FORCE_INT8_ENV, VARIANT_ENV, VariantDecision, decide_variant
from tests.runtime_fixtures import FIXTURE_PROFILE, write_profile

PROFILE = FIXTURE_PROFILE.profile_id
VNNI = CpuFacts("x86_64", frozenset({"AVX2", "AVX512VNNI"}), "GenuineIntel", 6, 106, "Xeon Platinum")
AVX2_ONLY = CpuFacts("x86_64", frozenset({"AVX2"}), "AuthenticAMD", 23, 49, "EPYC 7R32")
OLD_X86 = CpuFacts("x86_64", frozenset({"SSE42", "AVX"}), "GenuineIntel", 6, 42, "Core i7-2600")
BLOCKED = CpuFacts("x86_64", frozenset({"AVX2"}), "GenuineIntel", 6, 63, "Intel(R) Xeon(R) CPU E5-2666 v3 @ 2.90GHz")
APPLE = CpuFacts("arm64", frozenset({"NEON", "ASIMDDP"}), "", None, None, "Apple M2")
OLD_ARM = CpuFacts("arm64", frozenset({"NEON"}), "", None, None, "Cortex-A72")


def facts(platform: str, home: Path, env: dict[str, str] | None = None, **packaging: object) -> ProcessFacts:
    return ProcessFacts(
        platform=platform,
        env=env or {},
        home=home,
        executable=Path(str(packaging.get("executable", "/usr/bin/python3"))),
        frozen=bool(packaging.get("frozen", False)),
        meipass=packaging.get("meipass"),  # type: ignore[arg-type]
    )


# -- roots per platform -------------------------------------------------------


def test_windows_override_lives_in_local_app_data(tmp_path: Path) -> None:
    env = {"LOCALAPPDATA": r"C:\Users\ada\AppData\Local"}
    root = override_root("local-notes", facts("win32", Path(r"C:\Users\ada"), env))
    assert root == Path(r"C:\Users\ada\AppData\Local") / "local-notes" / "embedding_models"


def test_windows_without_local_app_data_falls_back_to_the_profile_folder() -> None:
    root = override_root("local-notes", facts("win32", Path("/home/ada"), {"USERPROFILE": r"C:\Users\ada"}))
    assert root == Path(r"C:\Users\ada") / "AppData" / "Local" / "local-notes" / "embedding_models"


@pytest.mark.parametrize(
    ("platform", "env", "named"),
    [
        ("win32", {}, "neither LOCALAPPDATA nor USERPROFILE"),
        ("win32", {"LOCALAPPDATA": "AppData", "USERPROFILE": ""}, "neither LOCALAPPDATA nor USERPROFILE"),
        ("linux", {"HOME": ""}, "HOME is empty"),
        ("linux", {"HOME": "ada"}, "HOME is a relative path ('ada')"),
        ("darwin", {"HOME": " "}, "HOME is empty"),
    ],
)
def test_an_environment_that_names_no_home_has_no_app_data_and_says_which_variable(
    platform: str, env: dict[str, str], named: str
) -> None:
    """Not C:\\nonexistent, not /.local/share, not wherever the app was started: none, and why."""
    location = app_data_location("local-notes", facts(platform, Path("/home/ada"), env))
    assert isinstance(location, str) and location.startswith(named), location
    with pytest.raises(AppDataUnavailableError) as raised:
        app_data_dir("local-notes", facts(platform, Path("/home/ada"), env))
    assert str(raised.value).startswith(f"cannot tell where local-notes keeps its data: {named}")
    assert isinstance(override_root("local-notes", facts(platform, Path("/home/ada"), env)), str)
    roots = model_roots("local-notes", facts(platform, Path("/home/ada"), env))
    assert [r.kind for r in roots] == [], "no override folder without a place for it"


def test_without_home_the_user_database_names_it() -> None:
    """``env -i``: HOME unset, the system's user database has the home (as Python's own Path.home)."""
    assert app_data_location("n", facts("linux", Path("/home/ada"), {"PATH": "/usr/bin"})) == Path(
        "/home/ada/.local/share/n"
    )


def test_macos_override_lives_in_application_support() -> None:
    root = override_root("local-notes", facts("darwin", Path("/Users/ada")))
    assert root == Path("/Users/ada/Library/Application Support/local-notes/embedding_models")


def test_linux_override_honours_xdg_data_home() -> None:
    assert override_root("n", facts("linux", Path("/home/ada"))) == Path("/home/ada/.local/share/n/embedding_models")
    env = {"XDG_DATA_HOME": "/data/ada"}
    assert override_root("n", facts("linux", Path("/home/ada"), env)) == Path("/data/ada/n/embedding_models")


def test_a_relative_data_home_is_ignored_as_the_xdg_specification_says() -> None:
    """A relative folder would move with the working folder: a different store in every shell."""
    for env in ({"XDG_DATA_HOME": "data"}, {"XDG_DATA_HOME": "  "}):
        assert override_root("n", facts("linux", Path("/home/ada"), env)) == Path(
            "/home/ada/.local/share/n/embedding_models"
        )
    windows = facts("win32", Path("/home/ada"), {"LOCALAPPDATA": r"AppData\Local", "USERPROFILE": r"C:\Users\ada"})
    assert override_root("n", windows) == Path(r"C:\Users\ada") / "AppData" / "Local" / "n" / "embedding_models"


def test_a_variant_setting_that_is_none_of_the_three_is_said_not_swallowed() -> None:
    from embedding_runtime._cpu import CpuFacts
    from embedding_runtime._variant import decide_variant

    vnni = CpuFacts("x86_64", frozenset({"AVX512VNNI"}), "GenuineIntel", 6, 106, "Xeon")
    decision = decide_variant(vnni, {"EMBEDDING_RUNTIME_VARIANT": "fp16"})
    assert decision.preferred == "int8"
    assert decision.reason.startswith("EMBEDDING_RUNTIME_VARIANT='fp16' is not fp32, int8 or auto, so ignored; ")


def test_env_var_points_the_override_elsewhere() -> None:
    env = {OVERRIDE_ENV: "/srv/models"}
    assert override_root("n", facts("linux", Path("/home/ada"), env)) == Path("/srv/models")


def test_pyinstaller_roots_come_after_the_override(tmp_path: Path) -> None:
    internal = tmp_path / "app" / "_internal"
    windows = facts(
        "win32", tmp_path, {"LOCALAPPDATA": r"C:\Users\ada\AppData\Local"},
        executable=tmp_path / "app" / "app.exe", frozen=True, meipass=internal,
    )  # fmt: skip
    roots = model_roots("n", windows)
    assert [r.kind for r in roots] == ["override", "bundled", "bundled"]
    assert roots[1].path == internal / "data" / "embedding_models"
    assert roots[2].path == tmp_path / "app" / "data" / "embedding_models"


def test_nuitka_root_is_beside_the_executable(tmp_path: Path) -> None:
    exe = tmp_path / "launcher.dist" / "launcher"
    roots = model_roots("n", facts("linux", tmp_path, executable=exe, frozen=True))
    assert [r.kind for r in roots] == ["override", "bundled"]
    assert roots[1].path == tmp_path / "launcher.dist" / "data" / "embedding_models"


def test_source_runs_have_no_bundled_root(tmp_path: Path) -> None:
    roots = model_roots("n", facts("linux", tmp_path), source_root=tmp_path / "project")
    assert [(r.kind, r.path) for r in roots][1:] == [("source", tmp_path / "project" / "data" / "embedding_models")]


def test_a_source_run_finds_the_folders_where_the_table_puts_them(tmp_path: Path) -> None:
    """prepare-model writes to the table's output-root and warm-tiktoken to its tiktoken-cache: a run from
    source looks there (an unreadable or silent table: data/ as always)."""
    from embedding_runtime._tiktoken_cache import TIKTOKEN_MANIFEST_NAME, bundled_cache_dir

    project = tmp_path / "project"
    (project / "assets" / "tiktoken").mkdir(parents=True)
    (project / "assets" / "tiktoken" / TIKTOKEN_MANIFEST_NAME).write_text("{}")  # a warmed cache
    (project / "pyproject.toml").write_text(
        '[tool.embedding-pipeline]\noutput-root = "assets/models"\ntiktoken-cache = "assets/tiktoken"\n'
    )
    roots = model_roots("n", facts("linux", tmp_path), source_root=project)
    assert roots[-1] == ModelRoot(project / "assets" / "models", "source")
    assert bundled_cache_dir(facts("linux", tmp_path), source_root=project) == project / "assets" / "tiktoken"
    (project / "pyproject.toml").write_text("[tool.embedding-pipeline\n")
    roots = model_roots("n", facts("linux", tmp_path), source_root=project)
    assert roots[-1] == ModelRoot(project / "data" / "embedding_models", "source")


def test_the_source_fallback_is_the_apps_project_never_the_runtimes_install(tmp_path: Path) -> None:
    """Installed from a wheel, the runtime lives in site-packages: only the app knows its project."""
    import embedding_runtime

    installed = Path(embedding_runtime.__file__).resolve().parent.parent
    for frozen in (False, True):
        roots = model_roots("n", facts("linux", tmp_path, executable=tmp_path / "x" / "app", frozen=frozen))
        assert "source" not in [r.kind for r in roots]
        assert not any(installed in r.path.parents for r in roots)


# -- completeness -------------------------------------------------------------


def test_complete_folder_serves_both_variants(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    folder = write_profile(tmp_path, repo_files_a)
    assert folder_problem(folder, "fp32") is None
    assert folder_problem(folder, "int8", verify=True) is None


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda f: (f / "tokenizer.json").unlink(), "tokenizer.json is missing"),
        (lambda f: (f / "onnx" / "model_quantized.onnx_data").unlink(), "onnx_data is missing"),
        (lambda f: (f / "onnx" / "model_quantized.onnx_data").write_bytes(b""), "is empty"),
        (lambda f: (f / "onnx" / "model_quantized.onnx").write_bytes(b"short"), "records"),
        (lambda f: (f / ".prepared.json").write_text("{"), "not valid JSON"),
    ],
)
def test_damaged_folders_are_skipped_with_the_reason(
    tmp_path: Path, repo_files_a: dict[str, bytes], damage: object, expected: str
) -> None:
    folder = write_profile(tmp_path, repo_files_a)
    assert callable(damage)
    damage(folder)
    problem = folder_problem(folder, "int8")
    assert problem is not None and expected in problem


def test_only_the_other_variant_present(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    folder = write_profile(tmp_path, repo_files_a, ("fp32",))
    assert folder_problem(folder, "fp32") is None
    assert "missing" in (folder_problem(folder, "int8") or "")


def test_verify_catches_same_size_corruption(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    folder = write_profile(tmp_path, repo_files_a)
    target = folder / "onnx" / "model.onnx_data"
    target.write_bytes(bytes(len(repo_files_a["onnx/model.onnx_data"])))
    assert folder_problem(folder, "fp32") is None, "sizes alone cannot see it"
    assert "sha256" in (folder_problem(folder, "fp32", verify=True) or "")


def test_rehash_touched_hashes_only_files_whose_mtime_moved(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    folder = write_profile(tmp_path, repo_files_a)
    target = folder / "onnx" / "model.onnx_data"
    target.write_bytes(bytes(len(repo_files_a["onnx/model.onnx_data"])))
    assert "sha256" in (folder_problem(folder, "fp32", rehash_touched=True) or ""), "a new mtime: re-hashed"
    marker = read_marker(folder)
    assert marker is not None
    recorded = marker.files["onnx/model.onnx_data"].mtime_ns
    os.utime(target, ns=(recorded, recorded))
    assert folder_problem(folder, "fp32", rehash_touched=True) is None, "the recorded mtime: trusted, not read"


def test_folder_without_marker_needs_only_non_empty_files(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    """A user's hand-made override has no marker: the seed's checks still apply."""
    folder = write_profile(tmp_path, repo_files_a, ("int8",), marker=False)
    assert folder_problem(folder, "int8") is None


@pytest.mark.parametrize("link", ["onnx/model.onnx_data", "onnx", "tokenizer.json"])
def test_symlinks_that_could_leave_the_folder_are_refused(
    tmp_path: Path, repo_files_a: dict[str, bytes], link: str
) -> None:
    outside = write_profile(tmp_path / "elsewhere", repo_files_a)
    folder = write_profile(tmp_path / "override", repo_files_a, marker=False)
    target = folder / link
    if target.is_dir():
        import shutil

        shutil.rmtree(target)
    else:
        target.unlink()
    target.symlink_to(outside / link)
    assert "symlink" in (folder_problem(folder, "fp32") or "")


def test_symlinked_profile_folder_is_refused(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    real = write_profile(tmp_path / "real", repo_files_a)
    (tmp_path / "roots").mkdir()
    (tmp_path / "roots" / PROFILE).symlink_to(real)
    assert "symlink" in (folder_problem(tmp_path / "roots" / PROFILE, "fp32") or "")


# -- variant choice -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu", "preferred", "reason"),
    [
        (VNNI, "int8", "AVX512VNNI"),
        (
            CpuFacts("x86_64", frozenset({"AVX2", "AVXVNNI"}), "GenuineIntel", 6, 151, "Core i5-12400"),
            "int8",
            "AVXVNNI",
        ),
        (AVX2_ONLY, "int8", "AVX2"),
        (OLD_X86, "fp32", "lacks fast int8"),
        (APPLE, "int8", "dot product"),
        (OLD_ARM, "fp32", "lacks fast int8"),
        (BLOCKED, "fp32", "SIGILL"),
    ],
)
def test_variant_table(cpu: CpuFacts, preferred: str, reason: str) -> None:
    decision = decide_variant(cpu, {})
    assert decision.preferred == preferred and reason in decision.reason


def test_block_list_can_be_overridden() -> None:
    decision = decide_variant(BLOCKED, {FORCE_INT8_ENV: "1"})
    assert (decision.preferred, decision.int8_allowed) == ("int8", True)
    assert FORCE_INT8_ENV in decision.reason


def test_env_chooses_the_variant() -> None:
    assert decide_variant(VNNI, {VARIANT_ENV: "fp32"}).preferred == "fp32"
    assert decide_variant(OLD_X86, {VARIANT_ENV: "int8"}).preferred == "int8"
    assert decide_variant(BLOCKED, {VARIANT_ENV: "int8"}).preferred == "fp32", "the block list still holds"


def test_cpu_facts_come_from_numpy_and_proc_cpuinfo() -> None:
    cpuinfo = (
        "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 63\n"
        "model name\t: Intel(R) Xeon(R) CPU E5-2666 v3 @ 2.90GHz\nflags\t\t: fpu avx avx2\n\nprocessor\t: 1\n"
    )
    found = cpu_facts("x86_64", {"AVX": True, "AVX512F": False}, identity_from_cpuinfo(cpuinfo))
    assert found.arch == "x86_64" and found.features == {"AVX", "AVX2"}
    assert (found.vendor, found.family, found.model) == ("GenuineIntel", 6, 63)
    assert decide_variant(found, {}).preferred == "fp32"


def test_arm_features_from_proc_cpuinfo() -> None:
    found = cpu_facts("aarch64", {}, identity_from_cpuinfo("processor : 0\nFeatures : fp asimd asimddp\n"))
    assert found.arch == "arm64" and "ASIMDDP" in found.features


def test_detection_on_this_machine_spawns_nothing() -> None:
    """CPU detection must never start a process: in a frozen app that process is the app."""
    import subprocess

    original = subprocess.Popen.__init__
    started: list[object] = []

    def refuse(self: subprocess.Popen[bytes], *args: object, **kwargs: object) -> None:
        started.append(args)
        raise AssertionError("CPU detection started a process")

    subprocess.Popen.__init__ = refuse  # type: ignore[method-assign,assignment]
    try:
        found = detect()
    finally:
        subprocess.Popen.__init__ = original  # type: ignore[method-assign]
    assert started == [] and found.arch


# -- resolution order ---------------------------------------------------------


def roots_for(tmp_path: Path) -> list[ModelRoot]:
    return [ModelRoot(tmp_path / "override", "override"), ModelRoot(tmp_path / "bundled", "bundled")]


def test_override_wins_when_complete(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    write_profile(tmp_path / "override", repo_files_a)
    write_profile(tmp_path / "bundled", repo_files_a)
    found = resolve(PROFILE, roots_for(tmp_path), decide_variant(VNNI, {}))
    assert (found.kind, found.variant) == ("override", "int8")


def test_fp32_only_override_does_not_hide_bundled_int8(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    write_profile(tmp_path / "override", repo_files_a, ("fp32",))
    write_profile(tmp_path / "bundled", repo_files_a, ("int8",))
    found = resolve(PROFILE, roots_for(tmp_path), decide_variant(VNNI, {}))
    assert (found.kind, found.variant) == ("bundled", "int8")
    assert [(s.kind, s.variant) for s in found.skipped] == [("override", "int8")]


def test_other_variant_serves_only_when_no_folder_has_the_preferred(
    tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    write_profile(tmp_path / "override", repo_files_a, ("fp32",))
    found = resolve(PROFILE, roots_for(tmp_path), decide_variant(VNNI, {}))
    assert (found.kind, found.variant) == ("override", "fp32")
    assert "no folder has int8" in found.variant_reason


def test_blocked_cpu_never_falls_back_to_int8(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    write_profile(tmp_path / "bundled", repo_files_a, ("int8",))
    found = resolve(PROFILE, roots_for(tmp_path), decide_variant(BLOCKED, {}))
    assert found.folder is None
    assert {s.variant for s in found.skipped} == {"fp32"}


def test_old_cpu_may_fall_back_to_int8(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    write_profile(tmp_path / "bundled", repo_files_a, ("int8",))
    found = resolve(PROFILE, roots_for(tmp_path), VariantDecision("fp32", True, "old cpu"))
    assert (found.kind, found.variant) == ("bundled", "int8")


def test_damaged_override_falls_back_to_the_bundle(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    override = write_profile(tmp_path / "override", repo_files_a)
    (override / "onnx" / "model_quantized.onnx_data").write_bytes(b"")
    os.truncate(override / "tokenizer.json", 0)
    write_profile(tmp_path / "bundled", repo_files_a)
    found = resolve(PROFILE, roots_for(tmp_path), decide_variant(VNNI, {}))
    assert found.kind == "bundled"
    assert "empty" in found.skipped[0].reason


def test_a_root_named_by_a_str_or_any_path_like_is_the_path_it_names(
    tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    write_profile(tmp_path, repo_files_a)

    class PathLike:
        def __fspath__(self) -> str:
            return str(tmp_path)

    for given in (str(tmp_path), PathLike(), tmp_path):
        root = ModelRoot(given, "bundled")  # type: ignore[arg-type]
        assert root.path == tmp_path and isinstance(root.path, Path)
        found = resolve(FIXTURE_PROFILE.profile_id, [root], decide_variant(VNNI, {VARIANT_ENV: "fp32"}))
        assert found.folder == tmp_path / FIXTURE_PROFILE.profile_id, found
