"""Command line of ``scripts/prepare_embedding_model.py``.

Only :func:`main` prints errors and picks exit codes: 2 for usage errors, 1
for everything the environment or a source got wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from huggingface_hub.utils import disable_progress_bars

from build_hooks.config import PipelineConfig, load_config, pick
from build_hooks.errors import PipelineError, UsageError
from build_hooks.model_profile.prepare import PrepareRequest, PrepareResult, parse_variants, prepare_profile
from build_hooks.model_profile.sources import HubCacheSource, HubSource, LocalFolderSource, ModelSource

DEFAULT_ENDPOINT = "https://huggingface.co"
# A comma-separated list of endpoints, tried in order; HF_ENDPOINT names a single one.
ENDPOINTS_ENV = "EMBEDDING_MODEL_ENDPOINTS"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        _error(f"{message} (see --help)", 2)


def build_parser(config: PipelineConfig) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="prepare_embedding_model.py",
        description="Mirror a pinned hub model into a verified embedding profile folder.",
    )
    parser.add_argument("--repo", help=f"hub repo id (default: $EMBEDDING_MODEL_REPO or {config.repo})")
    parser.add_argument("--revision", help="40-hex commit SHA (default: $EMBEDDING_MODEL_REVISION or the config)")
    parser.add_argument("--profile-id", help=f"profile folder name (default: {config.profile_id})")
    parser.add_argument("--output-root", type=Path, default=config.output_root, help="folder of profile folders")
    parser.add_argument("--variant", choices=("fp32", "int8", "both"), default=config.variants)
    parser.add_argument("--force", action="store_true", help="fetch everything again")
    parser.add_argument("--verify", action="store_true", help="re-hash the installed files instead of trusting sizes")
    origin = parser.add_mutually_exclusive_group()
    origin.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="URL",
        help=f"hub endpoint, repeatable, tried in order (default: ${ENDPOINTS_ENV}, $HF_ENDPOINT, {DEFAULT_ENDPOINT})",
    )
    origin.add_argument("--source", type=Path, metavar="DIR", help="an air-gapped copy of the repo files")
    origin.add_argument("--offline", action="store_true", help="use only the huggingface_hub cache ($HF_HUB_OFFLINE=1)")
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    try:
        config = load_config()
        args = build_parser(config).parse_args(argv)
        if not sys.stderr.isatty():
            # CI logs get one plain line per file instead of redrawn progress bars.
            disable_progress_bars()
        request = request_from_args(args, config, env)
        started = time.monotonic()
        result = prepare_profile(request, log=_log)
    except PipelineError as err:
        _error(str(err), err.exit_code)
    except KeyboardInterrupt:
        _error("interrupted; the previous profile is untouched and the next run resumes", 130)
    print(_summary(result, request, time.monotonic() - started))
    return 0


def request_from_args(args: argparse.Namespace, config: PipelineConfig, env: Mapping[str, str]) -> PrepareRequest:
    """Fill in defaults (flag, then env, then config) and choose the sources."""
    repo = pick("repo", args.repo, config, env)
    revision = pick("revision", args.revision, config, env)
    return PrepareRequest(
        repo=repo,
        revision=revision,
        profile_id=pick("profile_id", args.profile_id, config, env),
        output_root=args.output_root,
        variants=parse_variants(args.variant),
        sources=tuple(_sources(args, env, repo, revision)),
        force=args.force,
        verify=args.verify,
        license=config.model_license if repo == config.repo else "",
    )


def endpoints_from(flags: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Endpoints in the order to try: flags, else the env list, else HF_ENDPOINT, else the hub."""
    if flags:
        chosen = list(flags)
    elif env.get(ENDPOINTS_ENV, "").strip():
        chosen = env[ENDPOINTS_ENV].split(",")
    else:
        chosen = [env.get("HF_ENDPOINT", "") or DEFAULT_ENDPOINT]
    endpoints = [e.strip().rstrip("/") for e in chosen if e.strip()]
    for endpoint in endpoints:
        if not endpoint.startswith(("https://", "http://")):
            raise UsageError(f"endpoint {endpoint!r} is not an http(s) URL")
    return endpoints


def _sources(args: argparse.Namespace, env: Mapping[str, str], repo: str, revision: str) -> list[ModelSource]:
    if args.source is not None:
        if not args.source.is_dir():
            raise UsageError(f"--source {args.source} is not a folder")
        return [LocalFolderSource(args.source, repo, revision)]
    if args.offline or env.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return [HubCacheSource(repo, revision)]
    progress = sys.stderr.isatty()
    return [HubSource(endpoint, repo, revision, progress) for endpoint in endpoints_from(args.endpoint, env)]


def _summary(result: PrepareResult, request: PrepareRequest, seconds: float) -> str:
    where = f"profile {request.profile_id} at {result.profile_dir}"
    pin = f"{request.repo}@{request.revision[:12]}, {'+'.join(request.variants)}"
    if not result.changed:
        return f"{where} is already prepared ({pin}); nothing to do ({seconds:.2f} s)"
    parts = [f"{len(result.fetched)} fetched", f"{len(result.reused)} reused"]
    if result.removed:
        parts.append(f"{len(result.removed)} removed")
    return f"{where} ready ({pin}): {', '.join(parts)} in {seconds:.1f} s"


_LOG_LOCK = threading.Lock()


def _log(message: str) -> None:
    # Files are fetched by several threads: one whole line at a time.
    with _LOG_LOCK:
        print(message, file=sys.stderr, flush=True)


def _error(message: str, code: int) -> NoReturn:
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)
