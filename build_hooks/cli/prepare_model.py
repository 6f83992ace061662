"""``prepare-model``: mirror the pinned model into a verified profile folder (``embedding-pipeline
prepare-model``; the seed's ``scripts/prepare_embedding_model.py``)."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub.utils import disable_progress_bars

from build_hooks.cli._common import Parser, add_pin_flags, exits_on_error, pin_from
from build_hooks.config import PipelineConfig, load_config
from build_hooks.errors import UsageError
from build_hooks.prepare_model.prepare import PrepareRequest, PrepareResult, prepare_profile
from build_hooks.prepare_model.sources import HubCacheSource, HubSource, LocalFolderSource, ModelSource

DEFAULT_ENDPOINT = "https://huggingface.co"
# A comma-separated list of endpoints, tried in order; HF_ENDPOINT names a single one.
ENDPOINTS_ENV = "EMBEDDING_MODEL_ENDPOINTS"


def build_parser(config: PipelineConfig, prog: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(
        prog=prog or "embedding-pipeline prepare-model",
        description="Mirror a pinned hub model into a verified embedding profile folder.",
    )
    add_pin_flags(parser, config)
    parser.add_argument("--output-root", type=Path, default=config.output_root, help="folder of profile folders")
    parser.add_argument("--variant", choices=("fp32", "int8", "both"), help="default: the table's variants")
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


@exits_on_error("interrupted; the previous profile is untouched and the next run resumes")
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    config = load_config()
    args = build_parser(config, prog).parse_args(argv)
    if not sys.stderr.isatty():
        # CI logs get one plain line per file instead of redrawn progress bars.
        disable_progress_bars()
    request = request_from_args(args, config, os.environ)
    started = time.monotonic()
    result = prepare_profile(request, log=_log)
    print(_summary(result, request, time.monotonic() - started))
    return 0


def request_from_args(args: argparse.Namespace, config: PipelineConfig, env: Mapping[str, str]) -> PrepareRequest:
    """Fill in defaults (flag, then env, then config) and choose the sources."""
    pin = pin_from(args, config, env)
    return PrepareRequest(
        repo=pin.repo,
        revision=pin.revision,
        profile_id=pin.profile_id,
        output_root=args.output_root,
        variants=pin.variants,
        sources=tuple(_sources(args, env, pin.repo, pin.revision)),
        force=args.force,
        verify=args.verify,
        license=config.model_license if pin.repo == config.pin.repo else "",
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
