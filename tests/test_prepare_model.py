"""prepare-model: pinned, hash-verified, atomic profile folders (in-process, real client, loopback hub)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from build_hooks.errors import InsufficientSpaceError, SourceError, UsageError
from build_hooks.prepare_model import (
    HubSource,
    PrepareRequest,
    PrepareResult,
    RetryPolicy,
    parse_variants,
    prepare_profile,
)
from build_hooks.prepare_model.partial import PartialFile
from build_hooks.prepare_model.prepare import ProfilePaths, _check_free_space
from build_hooks.prepare_model.sources import RemoteFile
from devtools.loopback_hub import LoopbackHub
from embedding_runtime._layout import MARKER_NAME, files_for_variants, read_marker
from tests.support import (
    PROFILE_ID,
    REPO_ID,
    REVISION_A,
    REVISION_B,
    SEED_LAYOUT,
    assert_profile_matches,
    profile_listing,
)

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=2.0)
SIDECAR = "onnx/model.onnx_data"


def leave_partial(paths: ProfilePaths, revision: str, published: bytes, received: bytes) -> None:
    """What a prepare of ``revision`` killed after receiving ``received`` of the sidecar leaves behind."""
    remote = RemoteFile(SIDECAR, len(published), sha256=hashlib.sha256(published).hexdigest())
    paths.download.mkdir(parents=True, exist_ok=True)
    into = PartialFile.open(paths.download, remote, f"{REPO_ID}@{revision}")
    into.write(received)
    into.finish()


def request_for(
    hub: LoopbackHub | list[str],
    root: Path,
    *,
    revision: str = REVISION_A,
    variants: str = "both",
    **options: object,
) -> PrepareRequest:
    endpoints = [hub.base_url] if isinstance(hub, LoopbackHub) else hub
    return PrepareRequest(
        repo=REPO_ID,
        revision=revision,
        profile_id=PROFILE_ID,
        output_root=root,
        variants=parse_variants(variants),
        sources=tuple(HubSource(e, REPO_ID, revision) for e in endpoints),
        retry=FAST_RETRY,
        **options,  # type: ignore[arg-type]
    )


def prepared(hub: LoopbackHub, root: Path, **kw: object) -> PrepareResult:
    return prepare_profile(request_for(hub, root, **kw))  # type: ignore[arg-type]


def test_prepare_produces_exactly_the_seed_layout(
    hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    """A cold prepare installs the five allow-listed files and the marker, nothing else."""
    result = prepared(hub, tmp_path)
    assert result.changed
    assert profile_listing(tmp_path) == SEED_LAYOUT
    assert_profile_matches(tmp_path, repo_files_a)
    leftovers = {p.name for p in tmp_path.iterdir()} - {PROFILE_ID, f".{PROFILE_ID}.lock"}
    assert leftovers == set(), f"working folders left behind: {leftovers}"


def test_only_allow_listed_files_are_requested(hub: LoopbackHub, tmp_path: Path) -> None:
    """Code, pickles and other repo files are never fetched."""
    prepared(hub, tmp_path)
    resolved = {r.path.split(f"/resolve/{REVISION_A}/", 1)[1] for r in hub.requests if "/resolve/" in r.path}
    assert resolved == set(files_for_variants(parse_variants("both")))


def test_marker_records_pin_variants_and_hashes(hub: LoopbackHub, tmp_path: Path) -> None:
    prepared(hub, tmp_path, variants="int8")
    raw = json.loads((tmp_path / PROFILE_ID / MARKER_NAME).read_text())
    assert raw["schema"] == 1
    assert (raw["profile_id"], raw["repo"], raw["revision"]) == (PROFILE_ID, REPO_ID, REVISION_A)
    assert raw["variants"] == ["int8"]
    assert sorted(raw["files"]) == ["onnx/model_quantized.onnx", "onnx/model_quantized.onnx_data", "tokenizer.json"]


def test_rerun_with_same_pin_makes_no_request(hub: LoopbackHub, tmp_path: Path) -> None:
    prepared(hub, tmp_path)
    hub.clear()
    result = prepared(hub, tmp_path)
    assert not result.changed
    assert hub.requests == []


def test_touched_but_intact_files_are_rehashed_not_refetched(hub: LoopbackHub, tmp_path: Path) -> None:
    """A changed mtime costs a re-hash, not a download, and the marker learns the new mtime."""
    prepared(hub, tmp_path)
    data = tmp_path / PROFILE_ID / "onnx" / "model.onnx_data"
    os.utime(data, ns=(1_000_000_000, 1_000_000_000))
    hub.clear()
    assert not prepared(hub, tmp_path).changed
    assert hub.requests == []
    marker = read_marker(tmp_path / PROFILE_ID)
    assert marker is not None and marker.files["onnx/model.onnx_data"].mtime_ns == 1_000_000_000


def test_verify_refetches_only_a_corrupted_file(
    hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    """--verify re-hashes: same-size corruption with the old mtime is caught and repaired."""
    prepared(hub, tmp_path)
    target = tmp_path / PROFILE_ID / "onnx" / "model_quantized.onnx_data"
    st = target.stat()
    target.write_bytes(b"\0" * st.st_size)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    hub.clear()
    assert not prepared(hub, tmp_path).changed, "without --verify, size and mtime are trusted"
    result = prepared(hub, tmp_path, verify=True)
    assert result.fetched == ("onnx/model_quantized.onnx_data",)
    assert_profile_matches(tmp_path, repo_files_a)


def test_variant_switch_removes_files_no_longer_asked_for(
    hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    prepared(hub, tmp_path)
    hub.clear()
    result = prepared(hub, tmp_path, variants="int8")
    assert result.removed == ("onnx/model.onnx", "onnx/model.onnx_data")
    assert hub.requests == [], "narrowing the variants needs no download"
    assert_profile_matches(tmp_path, repo_files_a, "int8")

    result = prepared(hub, tmp_path, variants="both")
    assert set(result.fetched) == {"onnx/model.onnx", "onnx/model.onnx_data"}
    assert_profile_matches(tmp_path, repo_files_a)


def test_new_pin_downloads_everything_again(hub: LoopbackHub, tmp_path: Path, repo_files_b: dict[str, bytes]) -> None:
    prepared(hub, tmp_path)
    result = prepared(hub, tmp_path, revision=REVISION_B)
    assert set(result.fetched) == set(files_for_variants(parse_variants("both")))
    assert_profile_matches(tmp_path, repo_files_b)
    marker = read_marker(tmp_path / PROFILE_ID)
    assert marker is not None and marker.revision == REVISION_B


def test_folder_without_marker_is_not_trusted(hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    prepared(hub, tmp_path)
    (tmp_path / PROFILE_ID / MARKER_NAME).unlink()
    hub.clear()
    result = prepared(hub, tmp_path)
    assert len(result.fetched) == 5
    assert_profile_matches(tmp_path, repo_files_a)


def test_corrupted_bytes_are_refused_and_nothing_is_installed(
    hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    """Wrong bytes of the right length: the error names file, both hashes and the source."""
    prepared(hub, tmp_path)
    hub.add_fault("corrupt", "*/onnx/model.onnx_data", method="GET", times=99)
    with pytest.raises(SourceError) as caught:
        prepared(hub, tmp_path, revision=REVISION_B)
    message = str(caught.value)
    good = hashlib.sha256(hub.repos[(REPO_ID, REVISION_B)].files["onnx/model.onnx_data"]).hexdigest()
    assert "onnx/model.onnx_data" in message and good in message and hub.base_url in message
    assert "got " in message
    assert_profile_matches(tmp_path, repo_files_a)  # the previous pin is untouched


def test_corrupt_first_endpoint_falls_back_to_the_next(
    hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    from devtools.loopback_hub import serve_hub

    with serve_hub() as bad:
        bad.add_repo(REPO_ID, REVISION_A, repo_files_a)
        bad.add_fault("corrupt", "*/onnx/model.onnx", method="GET", times=99)
        prepare_profile(request_for([bad.base_url, hub.base_url], tmp_path))
    assert_profile_matches(tmp_path, repo_files_a)
    assert hub.requests_for("/onnx/model.onnx", "GET"), "the good mirror served the file the bad one corrupted"


def test_404_falls_through_and_final_error_names_every_source(hub: LoopbackHub, tmp_path: Path) -> None:
    from devtools.loopback_hub import serve_hub

    with serve_hub() as empty:
        with pytest.raises(SourceError) as caught:
            prepare_profile(request_for([empty.base_url, hub.base_url], tmp_path, revision="c" * 40))
        message = str(caught.value)
        assert empty.base_url in message and hub.base_url in message
        assert message.count("HTTP 401") + message.count("HTTP 404") >= 2
        assert len(empty.requests) == 1, "a 404/401 is not retried"
    assert not (tmp_path / PROFILE_ID).exists()


def test_429_storm_is_ridden_out(hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    hub.add_fault("status", "*/onnx/model.onnx_data", status=429, retry_after="0", times=FAST_RETRY.attempts - 1)
    prepared(hub, tmp_path)
    assert_profile_matches(tmp_path, repo_files_a)
    statuses = [r.status for r in hub.requests_for("/onnx/model.onnx_data")]
    assert statuses.count(429) == FAST_RETRY.attempts - 1 and statuses[-1] == 200


def test_retry_after_is_honoured(hub: LoopbackHub, tmp_path: Path) -> None:
    hub.add_fault("status", "*/tree/*", status=429, retry_after="1", times=1)
    prepared(hub, tmp_path)
    tree = [r for r in hub.requests if "/tree/" in r.path]
    assert [r.status for r in tree] == [429, 200]
    assert tree[1].started - tree[0].started >= 1.0


def test_server_errors_and_dropped_bodies_are_retried(
    hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    hub.add_fault("status", "*/tree/*", status=500, times=2)
    hub.add_fault("status", "*/tokenizer.json", method="GET", status=503, times=1)
    hub.add_fault("drop", "*/onnx/model.onnx_data", method="GET", times=2)
    prepared(hub, tmp_path)
    assert_profile_matches(tmp_path, repo_files_a)
    assert all(f.times == 0 for f in hub.faults), "every injected fault was hit"
    # Each retry asks only for what the dropped body did not deliver.
    half, quarter = len(repo_files_a[SIDECAR]) // 2, len(repo_files_a[SIDECAR]) // 4
    ranges = [r.headers.get("range") for r in hub.requests_for(SIDECAR, "GET")]
    assert ranges == [None, f"bytes={half}-", f"bytes={half + quarter}-"]


def test_persistent_server_errors_give_up_with_the_answer(hub: LoopbackHub, tmp_path: Path) -> None:
    hub.add_fault("status", "*/tree/*", status=502, times=99)
    with pytest.raises(SourceError, match=r"HTTP 502 \(gave up after 4 attempts\)"):
        prepared(hub, tmp_path)
    assert len([r for r in hub.requests if "/tree/" in r.path]) == FAST_RETRY.attempts


def test_crash_between_the_two_renames_is_repaired(
    hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes]
) -> None:
    """Killed after moving the live profile aside: the next run restores it, no download."""
    prepared(hub, tmp_path)
    paths = ProfilePaths(tmp_path, PROFILE_ID)
    paths.profile.rename(paths.previous)
    hub.clear()
    assert not prepared(hub, tmp_path).changed
    assert hub.requests == []
    assert_profile_matches(tmp_path, repo_files_a)
    assert not paths.previous.exists()


def test_staging_and_partial_downloads_of_another_pin_are_discarded(
    hub: LoopbackHub, tmp_path: Path, repo_files_a: dict[str, bytes], repo_files_b: dict[str, bytes]
) -> None:
    paths = ProfilePaths(tmp_path, PROFILE_ID)
    (paths.staging / "onnx").mkdir(parents=True)
    (paths.staging / "onnx" / "model.onnx").write_bytes(b"half")
    leave_partial(paths, REVISION_A, repo_files_a[SIDECAR], repo_files_a[SIDECAR][:5000])
    (paths.download / ".pin").write_text(f"{REPO_ID}@{REVISION_A}\n")  # what earlier versions left
    (paths.download / "hub-cache" / "blobs").mkdir(parents=True)
    (paths.download / "hub-cache" / "blobs" / "0123.incomplete").write_bytes(b"x" * 100)
    prepared(hub, tmp_path, revision=REVISION_B)
    assert_profile_matches(tmp_path, repo_files_b)
    assert [r.headers.get("range") for r in hub.requests_for(SIDECAR, "GET")] == [None], "fetched from the start"
    assert not paths.download.exists()


def test_a_partial_of_the_same_pin_is_resumed_with_a_range_request(
    hub: LoopbackHub, tmp_path: Path, repo_files_b: dict[str, bytes]
) -> None:
    paths = ProfilePaths(tmp_path, PROFILE_ID)
    have = len(repo_files_b[SIDECAR]) // 3
    leave_partial(paths, REVISION_B, repo_files_b[SIDECAR], repo_files_b[SIDECAR][:have])
    logged: list[str] = []
    prepare_profile(request_for(hub, tmp_path, revision=REVISION_B), log=logged.append)
    assert_profile_matches(tmp_path, repo_files_b)
    [get] = hub.requests_for(SIDECAR, "GET")
    assert (get.headers.get("range"), get.status) == (f"bytes={have}-", 206)
    assert get.headers.get("accept-encoding") == "identity", "the range counts the file's bytes, not a gzip's"
    assert any(line.startswith(f"fetched {SIDECAR}") and "resumed at" in line for line in logged), logged


def test_a_complete_partial_needs_no_request(hub: LoopbackHub, tmp_path: Path, repo_files_b: dict[str, bytes]) -> None:
    leave_partial(ProfilePaths(tmp_path, PROFILE_ID), REVISION_B, repo_files_b[SIDECAR], repo_files_b[SIDECAR])
    prepared(hub, tmp_path, revision=REVISION_B)
    assert hub.requests_for(SIDECAR, "GET") == []
    assert_profile_matches(tmp_path, repo_files_b)


def test_a_complete_partial_with_the_wrong_bytes_is_fetched_again(
    hub: LoopbackHub, tmp_path: Path, repo_files_b: dict[str, bytes]
) -> None:
    wrong = bytes(b ^ 0xFF for b in repo_files_b[SIDECAR])  # the right size, not the published bytes
    leave_partial(ProfilePaths(tmp_path, PROFILE_ID), REVISION_B, repo_files_b[SIDECAR], wrong)
    prepared(hub, tmp_path, revision=REVISION_B)
    assert [r.headers.get("range") for r in hub.requests_for(SIDECAR, "GET")] == [None], "fetched whole"
    assert_profile_matches(tmp_path, repo_files_b)


def test_a_corrupt_partial_is_discarded_and_fetched_again_from_the_start(
    hub: LoopbackHub, tmp_path: Path, repo_files_b: dict[str, bytes]
) -> None:
    paths = ProfilePaths(tmp_path, PROFILE_ID)
    leave_partial(paths, REVISION_B, repo_files_b[SIDECAR], b"\0" * 4096)  # the pin's record, not its bytes
    prepared(hub, tmp_path, revision=REVISION_B)
    assert_profile_matches(tmp_path, repo_files_b)
    assert [r.headers.get("range") for r in hub.requests_for(SIDECAR, "GET")] == ["bytes=4096-", None]


def test_a_server_that_ignores_range_sends_the_whole_file_and_nothing_is_doubled(
    hub: LoopbackHub, tmp_path: Path, repo_files_b: dict[str, bytes]
) -> None:
    paths = ProfilePaths(tmp_path, PROFILE_ID)
    leave_partial(paths, REVISION_B, repo_files_b[SIDECAR], repo_files_b[SIDECAR][:4096])
    hub.add_fault("no-range", f"*/{SIDECAR}", method="GET")
    prepared(hub, tmp_path, revision=REVISION_B)
    assert_profile_matches(tmp_path, repo_files_b)
    [get] = hub.requests_for(SIDECAR, "GET")
    assert (get.headers.get("range"), get.status) == ("bytes=4096-", 200)


@pytest.mark.parametrize(
    ("revision", "why"),
    [
        ("main", "not 'main'"),
        ("v1.0", "not 'v1.0'"),
        ("ac5d898", "not 'ac5d898'"),
        ("AC5D898C8D382B17167C33E5C8AF644A3519B47D", "upper-case"),
    ],
)
def test_revision_must_be_a_full_lowercase_sha(tmp_path: Path, revision: str, why: str) -> None:
    root = tmp_path / "out"
    with pytest.raises(UsageError, match=why):
        prepare_profile(request_for(["http://127.0.0.1:9"], root, revision=revision))
    assert not root.exists(), "a usage error touches nothing"


@pytest.mark.parametrize("repo", ["no spaces/allowed", "a/b/c", "../etc", ""])
def test_malformed_repo_id_is_a_usage_error(tmp_path: Path, repo: str) -> None:
    request = request_for(["http://127.0.0.1:9"], tmp_path / "out")
    with pytest.raises(UsageError, match="not a hub repo id"):
        prepare_profile(PrepareRequest(**{**request.__dict__, "repo": repo}))


@pytest.mark.parametrize("profile_id", ["../escape", "a/b", "Upper", ""])
def test_profile_id_cannot_leave_the_output_root(tmp_path: Path, profile_id: str) -> None:
    request = request_for(["http://127.0.0.1:9"], tmp_path / "out")
    with pytest.raises(UsageError, match="profile-id"):
        prepare_profile(PrepareRequest(**{**request.__dict__, "profile_id": profile_id}))


def test_output_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "file"
    root.write_text("keep me")
    with pytest.raises(UsageError, match="is a file"):
        prepare_profile(request_for(["http://127.0.0.1:9"], root))
    assert root.read_text() == "keep me"


def test_free_space_guard_reports_the_figures(tmp_path: Path) -> None:
    with pytest.raises(InsufficientSpaceError, match=r"needs 10\.0 MiB but only 1\.0 MiB is free"):
        _check_free_space(tmp_path, 10 * 2**20, free=2**20)
    _check_free_space(tmp_path, 2**20, free=2**20)


def test_installed_files_are_readable_by_everyone(hub: LoopbackHub, tmp_path: Path) -> None:
    """Sidecars that onnx writes 0600 must stay readable for a non-root user of an artifact."""
    prepared(hub, tmp_path)
    for path in files_for_variants(parse_variants("both")):
        assert (tmp_path / PROFILE_ID / path).stat().st_mode & 0o444 == 0o444, path
