"""Pure pieces of prepare-model: configuration, guards, retry policy, markers, platform branches."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import hf_hub_download

from build_hooks import fsutil
from build_hooks.cli.prepare_model import endpoints_from
from build_hooks.config import load_config, resolve_pin, revision_problem
from build_hooks.errors import SourceError, UsageError
from build_hooks.prepare_model.hashing import digest_file
from build_hooks.prepare_model.prepare import safe_relative_path
from build_hooks.prepare_model.retry import RetryPolicy, SourceGaveUpError, call_with_retry, describe_failure
from build_hooks.prepare_model.sources import HubCacheSource, MissingFilesError, redact_url
from devtools.loopback_hub import LoopbackHub
from embedding_runtime._layout import MARKER_NAME, read_marker
from tests.support import REPO_ID, REPO_ROOT, REVISION_A

PINNED_REVISION = "ac5d898c8d382b17167c33e5c8af644a3519b47d"


def test_config_table_holds_the_default_pin() -> None:
    config = load_config(REPO_ROOT / "pyproject.toml")
    assert config.pin.repo == "jinaai/jina-embeddings-v5-text-nano-retrieval"
    assert config.pin.revision == PINNED_REVISION and revision_problem(config.pin.revision) is None
    assert config.pin.profile_id == "local-text-retrieval-v1"
    assert config.pin.variants == ("fp32", "int8")
    assert config.output_root == REPO_ROOT / "data" / "embedding_models"
    assert config.tiktoken_encodings == ("o200k_base",)


def test_pin_precedence_is_flag_then_env_then_table() -> None:
    config = load_config(REPO_ROOT / "pyproject.toml")
    env = {"EMBEDDING_MODEL_REVISION": "e" * 40}
    assert resolve_pin(config, env={}).revision == PINNED_REVISION
    assert resolve_pin(config, env=env).revision == "e" * 40
    assert resolve_pin(config, revision="f" * 40, env=env).revision == "f" * 40
    assert resolve_pin(config, env={"EMBEDDING_MODEL_REVISION": "  "}).revision == PINNED_REVISION


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("revision", "main", "full 40-character lowercase commit SHA"),
        ("revision", "A" * 40, "upper-case"),
        ("repo", "no-owner", "not a hub repo id"),
        ("profile-id", "Bad Id", "lower-case letters"),
        ("variants", "fp16", "unknown variant"),
    ],
)
def test_a_malformed_pin_in_the_table_is_refused_when_loaded(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    table = (REPO_ROOT / "pyproject.toml").read_text()
    line = next(line for line in table.splitlines() if line.startswith(f"{field} = "))
    (tmp_path / "pyproject.toml").write_text(table.replace(line, f'{field} = "{value}"'))
    with pytest.raises(UsageError, match=message):
        load_config(tmp_path / "pyproject.toml")


def test_a_key_the_table_does_not_have_is_refused_naming_the_keys(tmp_path: Path) -> None:
    """A misspelt key (or one a later version renamed) never silently keeps its default."""
    table = (REPO_ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(table.replace("int8-min-cosine = ", "int8-min-cosin = ", 1))
    with pytest.raises(UsageError, match=r"has no key 'int8-min-cosin': the keys are profile-id, repo, revision"):
        load_config(tmp_path / "pyproject.toml")


def test_missing_config_table_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    with pytest.raises(UsageError, match=r"no \[tool.embedding-pipeline\] table"):
        load_config(tmp_path / "pyproject.toml")


def test_endpoints_precedence() -> None:
    assert endpoints_from(["http://a/"], {"HF_ENDPOINT": "http://b"}) == ["http://a"]
    assert endpoints_from([], {"EMBEDDING_MODEL_ENDPOINTS": "http://a, http://c/", "HF_ENDPOINT": "http://b"}) == [
        "http://a",
        "http://c",
    ]
    assert endpoints_from([], {"HF_ENDPOINT": "http://b"}) == ["http://b"]
    assert endpoints_from([], {}) == ["https://huggingface.co"]


def test_urls_are_printed_without_credentials() -> None:
    assert redact_url("https://user:pw@mirror.example:8443/hub") == "https://mirror.example:8443/hub"
    assert redact_url("http://127.0.0.1:1") == "http://127.0.0.1:1"


@pytest.mark.parametrize(
    "name",
    ["../x", "onnx/../../x", "/etc/passwd", "C:/Windows/x", "c:evil", "onnx\\model.onnx", "onnx//x", "./x", ""],
)
def test_file_names_that_leave_the_profile_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match="would leave the profile folder"):
        safe_relative_path(name)


def test_allow_listed_names_are_safe() -> None:
    assert str(safe_relative_path("onnx/model_quantized.onnx_data")) == "onnx/model_quantized.onnx_data"


def test_retry_delay_is_capped_exponential_and_honours_retry_after() -> None:
    policy = RetryPolicy(attempts=5, base_delay=1.0, max_delay=60.0)
    assert [policy.delay(n, None) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.delay(1, 30.0) == 30.0
    assert policy.delay(1, 3600.0) == 60.0


def test_retry_gives_up_after_the_attempts_with_the_last_answer() -> None:
    calls: list[float] = []

    def always_reset() -> None:
        raise httpx2.ReadError("connection reset by peer")

    with pytest.raises(SourceGaveUpError, match=r"network error .*gave up after 3 attempts"):
        call_with_retry(always_reset, RetryPolicy(attempts=3, base_delay=0.5), sleep=calls.append)
    assert calls == [0.5, 1.0]


def test_final_answers_are_not_retried() -> None:
    sleeps: list[float] = []

    def lookup_error() -> None:
        raise MissingFilesError("repo lacks tokenizer.json")

    with pytest.raises(SourceGaveUpError, match=r"lacks tokenizer\.json"):
        call_with_retry(lookup_error, RetryPolicy(), sleep=sleeps.append)
    assert sleeps == []


def test_http_answers_are_classified_through_wrapping_errors() -> None:
    request = httpx2.Request("GET", "http://127.0.0.1/x")

    def wrapped(status: int, headers: dict[str, str]) -> Exception:
        response = httpx2.Response(status, headers=headers, request=request)
        try:
            raise httpx2.HTTPStatusError("boom", request=request, response=response)
        except httpx2.HTTPStatusError as inner:
            try:
                raise FileNotFoundError("cannot find the requested files in the local cache") from inner
            except FileNotFoundError as outer:
                return outer

    assert describe_failure(wrapped(429, {"Retry-After": "7"})) == ("HTTP 429", True, 7.0)
    assert describe_failure(wrapped(503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == ("HTTP 503", True, None)
    assert describe_failure(wrapped(404, {})) == ("HTTP 404", False, None)
    assert describe_failure(wrapped(401, {}))[1] is False


def test_windows_rename_waits_out_a_transient_lock(tmp_path: Path) -> None:
    failures = [PermissionError("in use"), PermissionError("in use")]
    renamed: list[tuple[Path, Path]] = []

    def flaky_rename(src: Path, dst: Path) -> None:
        if failures:
            raise failures.pop()
        renamed.append((src, dst))

    fsutil.rename(tmp_path / "a", tmp_path / "b", platform="win32", _rename=flaky_rename, _sleep=lambda s: None)
    assert renamed == [(tmp_path / "a", tmp_path / "b")]


def test_windows_replace_waits_for_a_reader_to_close_the_target(tmp_path: Path) -> None:
    """Windows refuses to replace a file another process holds open; the reader closes it soon."""
    (tmp_path / "new").write_bytes(b"new")
    (tmp_path / "marker").write_bytes(b"old")
    readers = ["verify-artifact"]  # one process has the marker open (no FILE_SHARE_DELETE)

    def windows_replace(src: Path, dst: Path) -> None:
        if readers:
            raise PermissionError(13, "Access is denied", str(dst))
        src.replace(dst)

    fsutil.replace(
        tmp_path / "new",
        tmp_path / "marker",
        platform="win32",
        _replace=windows_replace,
        _sleep=lambda s: readers.clear(),
    )
    assert (tmp_path / "marker").read_bytes() == b"new" and not (tmp_path / "new").exists()


def test_posix_rename_does_not_retry(tmp_path: Path) -> None:
    def locked(src: Path, dst: Path) -> None:
        raise PermissionError("denied")

    with pytest.raises(PermissionError):
        fsutil.rename(tmp_path / "a", tmp_path / "b", platform="linux", _rename=locked, _sleep=lambda s: None)


def test_atomic_write_leaves_no_temp_file_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "marker.json"
    fsutil.atomic_write_bytes(target, b"one")
    fsutil.atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["marker.json"]


def test_digest_matches_git_and_sha256(tmp_path: Path) -> None:
    sample = tmp_path / "f"
    sample.write_bytes(b"hello\n")
    digest = digest_file(sample, git_blob_id=True)
    assert digest.git_blob_id == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object`
    assert digest.sha256 == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    assert not digest.agrees_with(sha256=None, git_blob_id=None), "no published hash never counts as a match"


@pytest.mark.parametrize(
    "mutation",
    [
        lambda m: m.update(schema=99),
        lambda m: m["files"].pop("onnx/model.onnx"),
        lambda m: m["files"].update({"../evil": {"size": 1, "sha256": "0" * 64, "mtime_ns": 0}}),
        lambda m: m.update(variants=["fp16"]),
        lambda m: m["files"]["tokenizer.json"].update(size=0),
    ],
)
def test_markers_that_do_not_describe_the_variants_are_invalid(tmp_path: Path, mutation: object) -> None:
    good = {
        "schema": 1,
        "profile_id": "p",
        "repo": REPO_ID,
        "revision": REVISION_A,
        "variants": ["fp32"],
        "files": {
            name: {"size": 1, "sha256": "a" * 64, "mtime_ns": 1}
            for name in ("tokenizer.json", "onnx/model.onnx", "onnx/model.onnx_data")
        },
    }
    (tmp_path / MARKER_NAME).write_text(json.dumps(good))
    assert read_marker(tmp_path) is not None
    assert callable(mutation)
    mutation(good)
    (tmp_path / MARKER_NAME).write_text(json.dumps(good))
    assert read_marker(tmp_path) is None


def test_hub_cache_without_symlinks_cannot_be_verified(hub: LoopbackHub, tmp_path: Path) -> None:
    """Windows without developer mode stores plain copies: no blob hash, so the cache is refused."""
    cache = tmp_path / "cache"
    path = hf_hub_download(REPO_ID, "tokenizer.json", revision=REVISION_A, endpoint=hub.base_url, cache_dir=cache)
    source = HubCacheSource(REPO_ID, REVISION_A, cache)
    assert source.list_files(["tokenizer.json"])["tokenizer.json"].git_blob_id is not None
    blob = Path(path).resolve()
    Path(path).unlink()
    Path(path).write_bytes(blob.read_bytes())  # what the no-symlink cache layout looks like
    with pytest.raises(MissingFilesError, match=r"lacks tokenizer\.json"):
        source.list_files(["tokenizer.json"])


def test_source_error_lists_every_source() -> None:
    error = SourceError("x", [("http://a", "HTTP 404"), ("http://b", "HTTP 503 (gave up after 5 attempts)")])
    assert str(error) == "could not get x (tried http://a: HTTP 404; http://b: HTTP 503 (gave up after 5 attempts))"
