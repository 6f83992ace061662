"""scripts/prepare_embedding_model.py as users run it: child processes, loopback-only network."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download

from devtools.loopback_hub import LoopbackHub, serve_hub
from embedding_runtime._layout import MARKER_NAME, files_for_variants, read_marker
from tests.support import (
    PROFILE_ID,
    REPO_ID,
    REPO_ROOT,
    REVISION_A,
    REVISION_B,
    SEED_LAYOUT,
    assert_profile_matches,
    child_env,
    profile_listing,
    run_prepare_cli,
    tmpfs,
)

ALL_FILES = files_for_variants(("fp32", "int8"))
SIDECAR = "onnx/model.onnx_data"
SCRIPT = str(REPO_ROOT / "scripts" / "prepare_embedding_model.py")
SEED_FLAGS = (
    *("--repo", REPO_ID, "--revision", REVISION_A, "--profile-id", "local-text-retrieval-v1"),
    *("--output-root", "data/embedding_models", "--variant", "both"),
)


def cli_args(hub: LoopbackHub, root: Path, revision: str = REVISION_A, *extra: str) -> list[str]:
    return ["--repo", REPO_ID, "--revision", revision, "--endpoint", hub.base_url, "--output-root", str(root), *extra]


def start_prepare(args: list[str], **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, SCRIPT, *args],
        cwd=REPO_ROOT,
        env=child_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: object, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not callable(condition) or not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        time.sleep(0.05)


def test_seed_command_works_with_hf_endpoint(hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    """The seed document's exact command, run from a project folder, against the endpoint in HF_ENDPOINT."""
    result = subprocess.run(
        [sys.executable, SCRIPT, *SEED_FLAGS],
        cwd=tmp_path,
        env=child_env({"HF_ENDPOINT": hub.base_url}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    root = tmp_path / "data" / "embedding_models"
    assert profile_listing(root) == SEED_LAYOUT
    assert_profile_matches(root, repo_files_a)
    assert "ready" in result.stdout


def test_ci_environment_sets_the_pin(hub: LoopbackHub, tmp_path: Path) -> None:
    """EMBEDDING_MODEL_* stand in for missing flags; a flag still wins over them."""
    env = {
        "EMBEDDING_MODEL_REPO": REPO_ID,
        "EMBEDDING_MODEL_REVISION": REVISION_B,
        "EMBEDDING_MODEL_PROFILE_ID": "ci-profile",
    }
    result = run_prepare_cli(["--endpoint", hub.base_url, "--output-root", str(tmp_path)], env)
    assert result.returncode == 0, result.stderr
    marker = read_marker(tmp_path / "ci-profile")
    assert marker is not None and marker.revision == REVISION_B

    result = run_prepare_cli(
        ["--endpoint", hub.base_url, "--output-root", str(tmp_path), "--revision", REVISION_A], env
    )
    assert result.returncode == 0, result.stderr
    marker = read_marker(tmp_path / "ci-profile")
    assert marker is not None and marker.revision == REVISION_A


def test_endpoint_list_env_is_tried_in_order(hub: LoopbackHub, tmp_path: Path) -> None:
    with serve_hub() as empty_mirror:
        env = {
            "EMBEDDING_MODEL_ENDPOINTS": f"{empty_mirror.base_url}, {hub.base_url}",
            "HF_ENDPOINT": "http://127.0.0.1:9",
        }
        result = run_prepare_cli(["--repo", REPO_ID, "--revision", REVISION_A, "--output-root", str(tmp_path)], env)
        assert result.returncode == 0, result.stderr
        assert [r.status for r in empty_mirror.requests] == [401]
    assert read_marker(tmp_path / PROFILE_ID) is not None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--revision", "main"], "40-character lowercase commit SHA"),
        (["--revision", "ac5d898"], "40-character lowercase commit SHA"),
        (["--revision", "AC5D898C8D382B17167C33E5C8AF644A3519B47D"], "lower case"),
        (["--revision", REVISION_A, "--variant", "fp16"], "invalid choice: 'fp16'"),
        (["--revision", REVISION_A, "--repo", "not a repo"], "not a hub repo id"),
        (["--revision", REVISION_A, "--endpoint", "ftp://x"], "not an http(s) URL"),
        (["--revision", REVISION_A, "--source", "/nonexistent"], "is not a folder"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    root = tmp_path / "out"
    result = run_prepare_cli(["--repo", REPO_ID, "--output-root", str(root), *args])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: ") and expected in lines[0], result.stderr
    assert not root.exists()


def test_output_root_that_is_a_file_exits_2(tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("precious")
    result = run_prepare_cli(["--repo", REPO_ID, "--revision", REVISION_A, "--output-root", str(target)])
    assert result.returncode == 2 and "is a file" in result.stderr
    assert target.read_text() == "precious"


def test_unwritable_output_root_exits_1(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m", "ro") as readonly:
        result = run_prepare_cli(["--repo", REPO_ID, "--revision", REVISION_A, "--output-root", str(readonly)])
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "cannot write to" in result.stderr


def test_too_little_disk_space_is_refused_up_front(hub: LoopbackHub, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "64k") as small:
        result = run_prepare_cli(cli_args(hub, small))
        assert result.returncode == 1
        assert "not enough disk space" in result.stderr and "MiB" in result.stderr
        assert not (small / PROFILE_ID).exists()
    assert not hub.requests_for("/onnx/model.onnx_data", "GET"), "nothing was downloaded"


def test_disk_filling_up_mid_download_keeps_the_previous_profile(
    hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    with tmpfs(tmp_path / "disk", "1m") as disk:
        assert run_prepare_cli(cli_args(hub, disk)).returncode == 0
        hub.clear()
        hub.add_fault("slow", "*/onnx/model.onnx_data", method="GET", delay=0.05)
        child = start_prepare(cli_args(hub, disk, REVISION_B))
        body = f"GET /{REPO_ID}/resolve/{REVISION_B}/onnx/model.onnx_data"
        wait_for(lambda: body in hub.in_flight or child.poll() is not None)
        filler = disk / "filler"
        with filler.open("wb") as fh, pytest.raises(OSError):
            while True:  # fill the disk while the child is writing
                fh.write(b"\0" * 65536)
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 1, stderr
        assert stderr.strip().splitlines()[-1].startswith("ERROR: ")
        assert "No space left" in stderr
        filler.unlink()
        assert_profile_matches(disk, repo_files_a)
        hub.clear()
        assert run_prepare_cli(cli_args(hub, disk, REVISION_B)).returncode == 0, "the next run repairs it"
        marker = read_marker(disk / PROFILE_ID)
        assert marker is not None and marker.revision == REVISION_B


def kill_mid_sidecar(hub: LoopbackHub, root: Path, revision: str) -> int:
    """Start a prepare of ``revision`` on a slowed hub, kill -9 it inside the sidecar's body; bytes on disk."""
    hub.add_fault("slow", f"*/{SIDECAR}", method="GET", delay=0.1)
    child = start_prepare(cli_args(hub, root, revision))
    # A fifth of the file more than any earlier run left (the body comes in fiftieths).
    goal = partial_size(root) + len(hub.repos[(REPO_ID, revision)].files[SIDECAR]) // 5
    wait_for(lambda: partial_size(root) >= goal)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=300)
    hub.clear()
    return partial_size(root)


def partial_size(root: Path) -> int:
    part = root / f".{PROFILE_ID}.download" / f"{SIDECAR}.part"
    return part.stat().st_size if part.is_file() else 0


def download_leftovers(root: Path) -> list[str]:
    folder = root / f".{PROFILE_ID}.download"
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_kill_9_mid_download_resumes_with_the_remainder_only(
    hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes], repo_files_b: dict[str, bytes]
) -> None:
    assert run_prepare_cli(cli_args(hub, tmp_path)).returncode == 0
    hub.clear()
    received = kill_mid_sidecar(hub, tmp_path, REVISION_B)
    assert 0 < received < len(repo_files_b[SIDECAR])
    assert_profile_matches(tmp_path, repo_files_a)  # never a mixed profile
    # One partial (and its record) per file: the others completed before the kill and wait as partials too.
    assert download_leftovers(tmp_path) == sorted(f + suffix for f in ALL_FILES for suffix in (".part", ".part.json"))

    again = kill_mid_sidecar(hub, tmp_path, REVISION_B)  # a second kill resumes, and piles nothing up
    assert received < again < len(repo_files_b[SIDECAR])
    assert [r.headers.get("range") for r in hub.requests_for(SIDECAR, "GET")] == []  # (cleared by the helper)
    assert len(download_leftovers(tmp_path)) == 2 * len(ALL_FILES)

    result = run_prepare_cli(cli_args(hub, tmp_path, REVISION_B))
    assert result.returncode == 0, result.stderr
    assert_profile_matches(tmp_path, repo_files_b)
    [get] = [r for r in hub.requests if r.method == "GET" and "/resolve/" in r.path]
    assert get.path.endswith(SIDECAR) and (get.headers.get("range"), get.status) == (f"bytes={again}-", 206)
    assert f"fetched {SIDECAR}" in result.stderr and "resumed at" in result.stderr
    assert not (tmp_path / f".{PROFILE_ID}.download").exists(), "the download folder is cleaned after success"


def test_a_partial_of_another_pin_is_discarded(
    hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    assert kill_mid_sidecar(hub, tmp_path, REVISION_B) > 0
    result = run_prepare_cli(cli_args(hub, tmp_path, REVISION_A))
    assert result.returncode == 0, result.stderr
    assert_profile_matches(tmp_path, repo_files_a)
    assert [(r.headers.get("range"), r.status) for r in hub.requests_for(SIDECAR, "GET")] == [(None, 200)]
    assert not (tmp_path / f".{PROFILE_ID}.download").exists()


def test_the_transfer_path_is_plain_http_even_where_xet_is_offered(
    hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    hub.advertise_xet = True
    # The stock client takes Xet where the server offers it: it asks for a Xet token first.
    with pytest.raises(Exception):  # noqa: B017 - the loopback hub has no Xet storage to give
        hf_hub_download(REPO_ID, SIDECAR, revision=REVISION_A, endpoint=hub.base_url, cache_dir=tmp_path / "c")
    assert any("/xet-read-token/" in r.path for r in hub.requests)

    hub.clear()
    result = run_prepare_cli(cli_args(hub, tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert_profile_matches(tmp_path / "out", repo_files_a)
    assert not any("xet" in r.path for r in hub.requests)
    fetched = sorted(
        r.path.split(f"/resolve/{REVISION_A}/")[1] for r in hub.requests if r.method == "GET" and "/resolve/" in r.path
    )
    assert fetched == sorted(ALL_FILES)
    assert result.stderr.count("(plain HTTP)") == len(ALL_FILES)


def test_concurrent_runs_are_serialised_and_both_succeed(
    hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    hub.add_fault("slow", "*/onnx/model.onnx_data", method="GET", delay=0.02)
    children = [start_prepare(cli_args(hub, tmp_path)) for _ in range(2)]
    outputs = [child.communicate(timeout=120) for child in children]
    assert [c.returncode for c in children] == [0, 0], outputs
    assert_profile_matches(tmp_path, repo_files_a)
    assert len(hub.requests_for("/onnx/model.onnx_data", "GET")) == 1, "the second run found the profile ready"
    assert any("already prepared" in out for out, _ in outputs)


def test_token_is_sent_but_never_printed_or_written(hub: LoopbackHub, tmp_path: Path) -> None:
    secret = "hf_SECRETtoken1234567890"
    hub.add_fault("status", "*/tree/*", status=500, times=1)
    result = run_prepare_cli(cli_args(hub, tmp_path), {"HF_TOKEN": secret})
    assert result.returncode == 0, result.stderr
    assert any(r.headers.get("authorization") == f"Bearer {secret}" for r in hub.requests)
    assert secret not in result.stdout + result.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_plain_lines_per_file_when_not_a_terminal(hub: LoopbackHub, tmp_path: Path) -> None:
    result = run_prepare_cli(cli_args(hub, tmp_path))
    fetched = [line for line in result.stderr.splitlines() if line.startswith("fetched ")]
    assert len(fetched) == len(ALL_FILES)
    assert "\r" not in result.stderr and "%|" not in result.stderr


def test_progress_bars_on_a_terminal(hub: LoopbackHub, tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    # A fresh pty is 0 columns wide, where tqdm draws nothing; a real terminal has a size.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    child = subprocess.Popen(
        [sys.executable, SCRIPT, *cli_args(hub, tmp_path)],
        cwd=REPO_ROOT,
        env=child_env({"TERM": "xterm"}),
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    screen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    os.close(controller)
    assert child.wait(timeout=300) == 0, screen.decode(errors="replace")
    assert b"100%" in screen, "a progress bar was drawn"


def test_air_gapped_source_folder_is_verified(hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    """A copy made by `hf download --local-dir` carries its hashes; the prepare needs no network."""
    source = tmp_path / "usb"
    for path in ALL_FILES:
        hf_hub_download(REPO_ID, path, revision=REVISION_A, endpoint=hub.base_url, local_dir=source)
    out = tmp_path / "out"
    args = ["--repo", REPO_ID, "--revision", REVISION_A, "--source", str(source), "--output-root", str(out)]
    hub.clear()
    result = run_prepare_cli(args)
    assert result.returncode == 0, result.stderr
    assert_profile_matches(out, repo_files_a)
    assert hub.requests == []

    (source / "onnx" / "model.onnx_data").write_bytes(b"x" * len(repo_files_a["onnx/model.onnx_data"]))
    result = run_prepare_cli([*args, "--force"])
    assert result.returncode == 1 and "wrong content: expected sha256" in result.stderr
    assert_profile_matches(out, repo_files_a)


def test_source_folder_without_hash_records_is_refused(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    source = tmp_path / "plain-copy"
    for path in ALL_FILES:
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_bytes(repo_files_a[path])
    out = tmp_path / "out"
    result = run_prepare_cli(
        ["--repo", REPO_ID, "--revision", REVISION_A, "--source", str(source), "--output-root", str(out)]
    )
    assert result.returncode == 1
    assert "hf download" in result.stderr and "--local-dir" in result.stderr
    assert "HF_ENDPOINT=<mirror URL> hf download" in result.stderr, "the offline way to make such a copy"
    assert not (out / PROFILE_ID).exists()


def test_source_folder_refuses_links_that_leave_it(
    tmp_path: Path, repo_files_a: dict[str, bytes], hub: LoopbackHub
) -> None:
    source = tmp_path / "usb"
    for path in ALL_FILES:
        hf_hub_download(REPO_ID, path, revision=REVISION_A, endpoint=hub.base_url, local_dir=source)
    outside = tmp_path / "outside.json"
    outside.write_bytes(repo_files_a["tokenizer.json"])
    (source / "tokenizer.json").unlink()
    (source / "tokenizer.json").symlink_to(outside)
    out = tmp_path / "out"
    result = run_prepare_cli(
        ["--repo", REPO_ID, "--revision", REVISION_A, "--source", str(source), "--output-root", str(out)]
    )
    assert result.returncode == 1 and "lacks tokenizer.json" in result.stderr


def test_offline_mode_uses_only_the_hub_cache(hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    cache = tmp_path / "hf-cache"
    for path in ALL_FILES:
        hf_hub_download(REPO_ID, path, revision=REVISION_A, endpoint=hub.base_url, cache_dir=cache)
    hub.clear()
    out = tmp_path / "out"
    args = ["--repo", REPO_ID, "--revision", REVISION_A, "--output-root", str(out)]
    result = run_prepare_cli(args, {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": hub.base_url})
    assert result.returncode == 0, result.stderr
    assert_profile_matches(out, repo_files_a)
    assert hub.requests == [], "offline mode made a request"

    result = run_prepare_cli(
        [*args, "--offline", "--revision", REVISION_B, "--profile-id", "other"], {"HF_HUB_CACHE": str(cache)}
    )
    assert result.returncode == 1 and "in the cache" in result.stderr


def test_rerun_is_a_fast_no_op(hub: LoopbackHub, tmp_path: Path) -> None:
    assert run_prepare_cli(cli_args(hub, tmp_path)).returncode == 0
    hub.clear()
    result = run_prepare_cli(cli_args(hub, tmp_path))
    assert result.returncode == 0 and "already prepared" in result.stdout
    assert hub.requests == []
    assert (tmp_path / PROFILE_ID / MARKER_NAME).is_file()
