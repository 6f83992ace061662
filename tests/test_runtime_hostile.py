"""The runtime in a hostile world: junk folders and markers, other users, bad text, Ctrl-C.

Nothing here may raise out of resolution, serve from a folder it could not
check, write under HOME, or drop a row of the caller's input.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from embedding_runtime import EmbeddingsDisabledError, EmbeddingService, InvalidTextError, ModelRoot, State
from embedding_runtime._cpu import CpuFacts
from embedding_runtime._layout import MARKER_MAX_BYTES, MARKER_NAME
from embedding_runtime._resolve import resolve
from embedding_runtime._variant import decide_variant
from embedding_runtime.build_api import folder_problem
from tests.runtime_fixtures import FIXTURE_PROFILE, write_profile
from tests.support import REPO_ROOT, child_env

VNNI = CpuFacts("x86_64", frozenset({"AVX2", "AVX512VNNI"}), "GenuineIntel", 6, 106, "Xeon")
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
# Registers the 32-wide fixture contract in a child, then runs the runtime's command line.
CLI = (
    "import sys, runpy\n"
    "from embedding_runtime import ProfileContract, register_profile\n"
    "register_profile(ProfileContract('fixture-v1', 32, (8, 16, 32), 'last_token', max_tokens=64,"
    " batch_token_budget=256))\n"
    "sys.argv = ['embedding_runtime', '--profile', 'fixture-v1', *sys.argv[1:]]\n"
    "runpy.run_module('embedding_runtime', run_name='__main__')\n"
)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every user can read (pytest's own temp folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="hostile-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    subprocess.run(["chmod", "-R", "u+rwx", str(folder)], check=False)
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def junk_values(rng: random.Random) -> Iterator[object]:
    """JSON documents of every wrong shape a marker can have."""
    good = {"schema": 1, "profile_id": "p", "repo": "a/b", "revision": "a" * 40, "variants": ["int8"]}
    yield from ([], None, 0, "text", [good], {"schema": 1}, {**good, "files": []}, {**good, "files": "x"})
    yield {**good, "files": {"tokenizer.json": 5}}
    yield {**good, "variants": "int8", "files": {}}
    yield {**good, "variants": [["int8"]], "files": {}}
    entry = {"size": 1, "sha256": "0" * 64, "mtime_ns": 0}
    yield {**good, "files": {"tokenizer.json": {**entry, "size": "1"}}}
    yield {**good, "files": {"tokenizer.json": {**entry, "size": True}}}
    yield {**good, "files": {"tokenizer.json": {**entry, "sha256": 7}}}
    yield {**good, "repo": ["a"], "files": {}}
    scalars: list[Callable[[], object]] = [
        lambda: rng.randint(-(2**70), 2**70),
        lambda: rng.random(),
        lambda: "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 20))),
        lambda: None,
        lambda: rng.random() < 0.5,
    ]

    def value(depth: int) -> object:
        if depth > 4 or rng.random() < 0.3:
            return rng.choice(scalars)()
        if rng.random() < 0.5:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        keys = ["schema", "variants", "files", "size", "sha256", "mtime_ns", "repo", "tokenizer.json"]
        return {rng.choice(keys): value(depth + 1) for _ in range(rng.randint(0, 5))}

    for _ in range(200):
        yield value(0)


def junk_markers(rng: random.Random) -> Iterator[bytes]:
    for junk in junk_values(rng):
        yield json.dumps(junk).encode()
    yield b"[" * 100_000 + b"]" * 100_000  # deep nesting
    yield b'{"schema": 1, "files": ' + b"[" * 50_000
    yield b"\xff\xfe\x00not utf-8"
    yield b'{"schema": 1, "padding": "' + b"x" * (MARKER_MAX_BYTES + 10) + b'"}'
    for _ in range(50):
        yield bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))


def test_no_junk_marker_escapes_as_an_exception(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    good_root = tmp_path / "bundled"
    write_profile(good_root, repo_files_a)
    folder = write_profile(tmp_path / "override", repo_files_a)
    roots = [ModelRoot(tmp_path / "override", "override"), ModelRoot(good_root, "bundled")]
    decision = decide_variant(VNNI, {})
    checked = 0
    for junk in junk_markers(random.Random(13)):
        (folder / MARKER_NAME).write_bytes(junk)
        for variant in ("fp32", "int8"):
            problem = folder_problem(folder, variant)
            assert problem, f"junk marker accepted: {junk[:80]!r}"
        resolution = resolve(FIXTURE_PROFILE.profile_id, roots, decision)
        assert resolution.kind == "bundled" and resolution.skipped[0].reason
        checked += 1
    assert checked > 250


def tree_damages() -> dict[str, Callable[[Path], None]]:
    def replace_with_folder(name: str) -> Callable[[Path], None]:
        def damage(folder: Path) -> None:
            (folder / name).unlink()
            (folder / name).mkdir()

        return damage

    def onnx_is_a_file(folder: Path) -> None:
        for child in (folder / "onnx").iterdir():
            child.unlink()
        (folder / "onnx").rmdir()
        (folder / "onnx").write_text("not a folder")

    def loop(folder: Path) -> None:
        for child in (folder / "onnx").iterdir():
            child.unlink()
        (folder / "onnx").rmdir()
        (folder / "onnx").symlink_to(folder / "onnx")

    return {
        "marker is a folder": replace_with_folder(MARKER_NAME),
        "tokenizer is a folder": replace_with_folder("tokenizer.json"),
        "onnx is a file": onnx_is_a_file,
        "symlink loop": loop,
    }


@pytest.mark.parametrize("damage", list(tree_damages()))
def test_junk_folder_trees_are_skipped_with_a_reason(
    tmp_path: Path, repo_files_a: dict[str, bytes], damage: str
) -> None:
    folder = write_profile(tmp_path / "override", repo_files_a)
    tree_damages()[damage](folder)
    write_profile(tmp_path / "bundled", repo_files_a)
    roots = [ModelRoot(tmp_path / "override", "override"), ModelRoot(tmp_path / "bundled", "bundled")]
    resolution = resolve(FIXTURE_PROFILE.profile_id, roots, decide_variant(VNNI, {}))
    assert resolution.kind == "bundled"
    assert resolution.skipped[0].reason and "does not exist" not in resolution.skipped[0].reason


def test_a_file_in_place_of_the_profile_folder_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / FIXTURE_PROFILE.profile_id).write_text("oops")
    assert folder_problem(tmp_path / FIXTURE_PROFILE.profile_id, "int8") == "is not a folder (a file is in its place)"
    assert folder_problem(tmp_path / ("x" * 300), "int8") is not None  # a name too long for the file system


@pytest.mark.parametrize("shape", ["[]", '{"schema": 1, "files": []}', "[" * 100_000 + "]" * 100_000])
def test_a_marker_of_the_wrong_shape_is_a_reason(tmp_path: Path, repo_files_a: dict[str, bytes], shape: str) -> None:
    folder = write_profile(tmp_path, repo_files_a)
    (folder / MARKER_NAME).write_text(shape)
    problem = folder_problem(folder, "int8")
    assert problem is not None and MARKER_NAME in problem


def test_an_oversized_marker_is_refused_unparsed(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    folder = write_profile(tmp_path, repo_files_a)
    marker = json.loads((folder / MARKER_NAME).read_text())
    marker["padding"] = "x" * (100 * 2**20)
    (folder / MARKER_NAME).write_text(json.dumps(marker))
    problem = folder_problem(folder, "int8")
    assert problem is not None and "larger than" in problem


def lock_out(*paths: Path) -> None:
    for path in paths:
        path.chmod(0o000)


UNREADABLE: dict[str, Callable[[Path], None]] = {
    "folder": lambda folder: lock_out(folder),
    "model files": lambda folder: lock_out(*folder.rglob("*.onnx*")),
    "marker": lambda folder: lock_out(folder / MARKER_NAME),
}


@pytest.mark.parametrize("how", list(UNREADABLE))
def test_an_override_the_user_cannot_read_is_skipped(
    shared_dir: Path, repo_files_a: dict[str, bytes], how: str
) -> None:
    """As an unprivileged user: the unreadable override is skipped with why, the bundled copy serves."""
    override = write_profile(shared_dir / "override", repo_files_a)
    write_profile(shared_dir / "bundled", repo_files_a)
    for path in shared_dir.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    UNREADABLE[how](override)
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from embedding_runtime import EmbeddingService, ModelRoot\n"
        "from tests.runtime_fixtures import FIXTURE_PROFILE\n"
        "root = Path(sys.argv[1])\n"
        "roots = [ModelRoot(root / 'override', 'override'), ModelRoot(root / 'bundled', 'bundled')]\n"
        "service = EmbeddingService(FIXTURE_PROFILE, roots=roots, env={})\n"
        "service.embed_documents(['hello'])\n"
        "print(json.dumps(service.explain()['resolution']))\n"
    )
    result = subprocess.run(
        [*NOBODY, sys.executable, "-c", code, str(shared_dir)],
        cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    resolution = json.loads(result.stdout)
    assert resolution["kind"] == "bundled"
    assert "Permission denied" in resolution["skipped"][0]["reason"], resolution["skipped"]


def test_a_load_that_fails_unexpectedly_disables_instead_of_hanging_in_loading(tmp_path: Path) -> None:
    class ExplodingPath:
        def __truediv__(self, other: str) -> Path:
            raise RuntimeError("boom")

    root = ModelRoot(ExplodingPath(), "bundled")  # type: ignore[arg-type]
    service = EmbeddingService(FIXTURE_PROFILE, roots=[root], env={}, cpu=VNNI)
    with pytest.raises(Exception, match="boom"):
        service.load()
    assert service.state is State.DISABLED and service.disabled_reason == "load_failed"


def test_importing_and_running_the_runtime_writes_nothing_under_home(
    tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    """onnxruntime's telemetry would write a device id under HOME on import; the runtime stops it."""
    write_profile(tmp_path / "models", repo_files_a)
    home = tmp_path / "home"
    home.mkdir()
    env = child_env({"HOME": str(home), "EMBEDDING_RUNTIME_MODELS_DIR": str(tmp_path / "models")})
    env.pop("ORT_DISABLE_TELEMETRY", None)
    result = subprocess.run(
        [sys.executable, "-c", CLI, "embed", "hello"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert list(home.rglob("*")) == []


def test_a_text_that_cannot_be_encoded_fails_its_call_by_index(model_root_service: EmbeddingService) -> None:
    with pytest.raises(InvalidTextError, match=r"text 1 cannot be embedded: character 4 is a lone surrogate") as caught:
        model_root_service.embed_documents(["fine", "bad \ud800 text", "also fine"])
    assert caught.value.index == 1
    assert model_root_service.embed_documents(["fine", "also fine"]).shape == (2, 32), "the service stays ready"


@pytest.fixture
def model_root_service(tmp_path: Path, repo_files_a: dict[str, bytes]) -> EmbeddingService:
    write_profile(tmp_path, repo_files_a)
    return EmbeddingService(FIXTURE_PROFILE, roots=[ModelRoot(tmp_path, "bundled")], env={}, cpu=VNNI)


def run_cli(models: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = child_env({"EMBEDDING_RUNTIME_MODELS_DIR": str(models)})
    return subprocess.run(
        [sys.executable, "-c", CLI, *args], cwd=REPO_ROOT, env=env, input=stdin, capture_output=True, timeout=300
    )


def test_embed_keeps_one_row_per_input_line_blank_ones_included(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    write_profile(tmp_path, repo_files_a)
    result = run_cli(tmp_path, "embed", stdin=b"first\n\nthird\n")
    assert result.returncode == 0, result.stderr
    vectors = json.loads(result.stdout)["vectors"]
    assert len(vectors) == 3 and np.isfinite(vectors).all()


def test_embed_names_the_input_line_that_is_not_utf8(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    write_profile(tmp_path, repo_files_a)
    result = run_cli(tmp_path, "embed", stdin=b"first\nbad \xff\xfe bytes\nthird\n")
    assert result.returncode == 2
    assert result.stderr.decode().strip() == "ERROR: input line 2 is not UTF-8 (byte 0xff at offset 4)"


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_a_long_embed_exits_130_with_one_line(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    write_profile(tmp_path, repo_files_a)
    env = child_env({"EMBEDDING_RUNTIME_MODELS_DIR": str(tmp_path)})
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"note {i} " + "word " * (i % 60) for i in range(200_000)))
    # As a terminal starts it: Ctrl-C not ignored (a harness that runs the tests in the background,
    # `.ci/run &`, hands its children an ignored SIGINT, which Python then leaves ignored).
    with texts.open("rb") as stdin, subprocess.Popen(
        [sys.executable, "-c", CLI, "--verbose", "embed"], cwd=REPO_ROOT, env=env,
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_sigint,
    ) as child:  # fmt: skip
        assert child.stderr is not None
        # The child logs when the model is loaded; the call (about a minute of work) starts right after.
        log: list[bytes] = []
        while not (log and b": loaded " in log[-1]):
            log.append(child.stderr.readline())
            assert log[-1], f"the child ended before loading the model: {log}"
        assert child.poll() is None, "the call ended before it could be interrupted"
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=600)
    assert child.returncode == 130
    assert stderr.decode().splitlines() == ["ERROR: interrupted"]


def peak_rss_kib(models: Path, count: int) -> int:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from embedding_runtime import EmbeddingService, ModelRoot\n"
        "from tests.runtime_fixtures import FIXTURE_PROFILE\n"
        "service = EmbeddingService(FIXTURE_PROFILE, roots=[ModelRoot(Path(sys.argv[1]), 'bundled')], env={})\n"
        "count = int(sys.argv[2])\n"
        "texts = [f'note {i} ' + 'word ' * (i % 60) for i in range(count)]\n"
        "service.embed_documents(texts)\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so that would report pytest's peak.
        "status = Path('/proc/self/status').read_text().splitlines()\n"
        "print(next(row for row in status if row.startswith('VmHWM')).split()[1])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(models), str(count)],
        cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


def test_memory_does_not_grow_with_the_length_of_a_call(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    write_profile(tmp_path, repo_files_a)
    small, large = peak_rss_kib(tmp_path, 1_000), peak_rss_kib(tmp_path, 10_000)
    assert large <= 1.3 * small, f"peak RSS {large} KiB for 10,000 texts against {small} KiB for 1,000"


def test_no_child_process_of_the_suite_runs_as_root_by_accident() -> None:
    assert os.geteuid() == 0, "these tests switch users with setpriv, which needs root (as in CI)"


def damage(folder: Path, how: str) -> None:
    """Files replaced by same-size bytes, their mtimes kept: the marker's sizes still agree, and only
    loading the model can tell. "refused": onnxruntime cannot parse the graphs; "nan": the weights
    are 0xFF bytes (NaN as float32), so the model computes NaN."""
    names = ("onnx/model.onnx", "onnx/model_quantized.onnx") if how == "refused" else ("onnx/model.onnx_data",)
    for name in names:
        path = folder / name
        st = path.stat()
        path.write_bytes(b"\xff" * st.st_size)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("how", ["refused", "nan"])
def test_an_override_that_fails_to_load_is_skipped_and_the_bundle_serves(
    tmp_path: Path, repo_files_a: dict[str, bytes], how: str
) -> None:
    damage(write_profile(tmp_path / "override", repo_files_a), how)
    write_profile(tmp_path / "bundled", repo_files_a)
    roots = [ModelRoot(tmp_path / "override", "override"), ModelRoot(tmp_path / "bundled", "bundled")]
    env = {"EMBEDDING_RUNTIME_VARIANT": "fp32"} if how == "nan" else {}  # the NaN weights are fp32's
    service = EmbeddingService(FIXTURE_PROFILE, roots=roots, env=env, cpu=VNNI)
    vectors = service.embed_documents(["hello"])
    resolution = service.explain()["resolution"]
    assert resolution["kind"] == "bundled", resolution
    reason = resolution["skipped"][0]["reason"]
    assert reason.startswith("load_failed: ") and ("computes NaN" in reason) == (how == "nan"), reason
    alone = EmbeddingService(FIXTURE_PROFILE, roots=[roots[1]], env=env, cpu=VNNI)
    np.testing.assert_allclose(vectors, alone.embed_documents(["hello"]), atol=1e-6)


def test_when_no_folder_loads_the_reason_lists_each_folders_failure(
    tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    for kind in ("override", "bundled"):
        damage(write_profile(tmp_path / kind, repo_files_a), "refused")
    roots = [ModelRoot(tmp_path / "override", "override"), ModelRoot(tmp_path / "bundled", "bundled")]
    service = EmbeddingService(FIXTURE_PROFILE, roots=roots, env={}, cpu=VNNI)
    with pytest.raises(EmbeddingsDisabledError) as caught:
        service.load()
    assert caught.value.reason == "load_failed"
    for kind in ("override", "bundled"):
        for variant in ("int8", "fp32"):
            assert f"{tmp_path / kind / 'fixture-v1'} [{variant}]: load_failed: " in caught.value.detail


# pybind11's module init, interrupted: its error handler raises ImportError("initialization failed")
# from the KeyboardInterrupt (and a broken install: an ImportError of its own).
PYBIND11_IMPORT = """
import importlib.abc, importlib.machinery, sys
class Interrupted(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name == "onnxruntime" else None
    def create_module(self, spec):
        if sys.argv[1] == "ctrl-c":
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt as err:
                raise ImportError("initialization failed") from err
        raise ImportError("libonnxruntime.so: cannot open shared object file")
    def exec_module(self, module):
        pass
sys.modules.pop("onnxruntime", None)
sys.meta_path.insert(0, Interrupted())
from embedding_runtime import EmbeddingService, ModelRoot, ProfileContract
from embedding_runtime._cpu import CpuFacts
contract = ProfileContract("fixture-v1", 32, (8, 16, 32), "last_token", max_tokens=64, batch_token_budget=256)
service = EmbeddingService(contract, roots=[ModelRoot(sys.argv[2], "bundled")], env={},
                           cpu=CpuFacts("x86_64", frozenset({"AVX2"}), "GenuineIntel", 6, 106, "Xeon"))
try:
    service.load()
except KeyboardInterrupt:
    print("interrupted", service.state.value)
except Exception as err:
    print(type(err).__name__, getattr(err, "reason", ""), service.state.value)
    import traceback; traceback.print_exc()
"""


@pytest.mark.parametrize(
    ("how", "said"),
    [("ctrl-c", "interrupted init"), ("broken", "EmbeddingsDisabledError onnxruntime_missing disabled")],
)
def test_ctrl_c_while_onnxruntime_loads_stays_a_ctrl_c(
    tmp_path: Path, repo_files_a: dict[str, bytes], how: str, said: str
) -> None:
    """Not "embeddings disabled (onnxruntime_missing)": the user pressed Ctrl-C, nothing is missing."""
    write_profile(tmp_path, repo_files_a)
    result = subprocess.run(
        [sys.executable, "-c", PYBIND11_IMPORT, how, str(tmp_path)],
        cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.stdout.strip() == said, result.stdout + result.stderr[-4000:]
