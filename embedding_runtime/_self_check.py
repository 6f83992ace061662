"""The self-check every artifact answers: one JSON document that verify-artifact reads.

An app hands its ``--self-check`` flag to :func:`self_check_main`. The document
says which folder and variant serve, the vectors of the self-check texts in every
variant the folder holds, token counts from the bundled tiktoken cache, and what
the process tried to do that an offline app never does (connect, start a process,
import an HTTP client).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from embedding_runtime._artifact import (
    BUILD_INFO_FILE,
    FORBID_NETWORK_ENV,
    HTTP_CLIENTS,
    SELF_CHECK_SCHEMA,
    SELF_CHECK_TEXTS,
    STDLIB_ACCELERATORS,
    SelfCheckReport,
    data_path,
)
from embedding_runtime._errors import EmbeddingsDisabledError
from embedding_runtime._layout import VARIANTS, read_marker
from embedding_runtime._locations import ModelRoot, bundled_data_roots
from embedding_runtime._records import read_json_record
from embedding_runtime._service import EmbeddingService
from embedding_runtime._tiktoken_cache import cache_report, use_bundled_tiktoken_cache

# A frozen app that starts a process (py-cpuinfo re-executes sys.executable) starts itself.
_PROCESS_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.spawn")


class ProcessWatch:
    """What this process attempted that an offline app never does, from an audit hook."""

    def __init__(self) -> None:
        self.connections: list[str] = []
        self.processes: list[str] = []
        self.imports: set[str] = set()  # every module the process set out to load, found or not

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "import":
            self.imports.add(str(args[0]))
            return
        if event in _PROCESS_EVENTS:
            # subprocess.Popen's executable is None on Windows (and often elsewhere): the command line names it.
            what = args[0] if args and args[0] is not None else (args[1] if len(args) > 1 else None)
            self.processes.append(f"{event} {what!r}"[:200])
        if event == "socket.connect":
            self.connections.append(repr(args[1]))
            if os.environ.get(FORBID_NETWORK_ENV) == "1":
                raise PermissionError(f"network access forbidden ({FORBID_NETWORK_ENV}=1)")


_WATCH: ProcessWatch | None = None


def watch_process() -> ProcessWatch:
    """Start recording what an offline app never does (connections, child processes): call it first
    thing in ``main`` so the self-check sees the whole process. Once per process (an audit hook)."""
    global _WATCH
    if _WATCH is None:
        _WATCH = ProcessWatch()
        sys.addaudithook(_WATCH)
    return _WATCH


def artifact_build_info() -> dict[str, Any] | None:
    """``data/build-info.json`` of the running artifact; ``None`` when running from source."""
    for root in bundled_data_roots():
        info = read_json_record(root / data_path(BUILD_INFO_FILE), 64 * 1024)
        if isinstance(info, dict):
            return info
    return None


def self_check(
    info: Mapping[str, Any], *, tiktoken: Any = None, source_root: Path | None = None
) -> tuple[SelfCheckReport, bool]:
    """The self-check document for the app ``info`` describes (the build-info record's fields).

    ``tiktoken`` is the app's tiktoken module, passed in: the runtime itself never imports it.
    """
    watch = watch_process()
    started = time.perf_counter()
    # Proves every folder anew (no remembered canary) and writes nothing.
    service = EmbeddingService(
        info["profile_id"], app_name=info["app_name"], source_root=source_root, remember_proofs=False
    )
    report: SelfCheckReport = {
        "schema": SELF_CHECK_SCHEMA,
        "runtime_version": _runtime_version(),
        "builder": info.get("builder"),
        "texts": list(SELF_CHECK_TEXTS),
    }
    vectors: dict[str, list[list[float]]] = {}
    try:
        first = service.embed_documents(list(SELF_CHECK_TEXTS))
        report["seconds_to_first_vector"] = round(time.perf_counter() - started, 3)
        vectors[str(service.variant)] = first.round(6).tolist()
        report["model_id"] = service.model_id()
    except EmbeddingsDisabledError:
        pass
    explained = service.explain()
    report["profile"] = explained["profile"]
    resolution = explained["resolution"] or {}
    folder = resolution.get("folder")
    marker = read_marker(Path(folder)) if folder else None
    report["folder"] = {
        "path": folder,
        "kind": resolution.get("kind"),
        "profile_id": service.contract.profile_id,
        "revision": marker.revision if marker else None,
    }
    report["skipped"] = resolution.get("skipped", [])
    report["variant"] = {
        "chosen": resolution.get("variant"),
        "reason": resolution.get("variant_reason"),
        "canary_fallback": bool(resolution.get("canary_fallback")),
    }
    report["cpu"] = explained["cpu"]
    report["threads"] = {"count": explained["threads"], "reason": explained["threads_reason"]}
    report["canary"] = explained["canary"]
    report["settings"] = explained["settings"]
    report["app_data"] = explained["app_data"]
    served = service.variant
    service.close()  # its model is not needed now: the next variant loads beside nothing
    if served and folder:
        # Every other variant in the same folder, so verify can compare int8 with fp32.
        folder_root = ModelRoot(Path(folder).parent, resolution["kind"])
        for variant in VARIANTS:
            if variant not in vectors:
                other = EmbeddingService(info["profile_id"], roots=[folder_root], variant=variant)
                try:
                    vectors[variant] = other.embed_documents(list(SELF_CHECK_TEXTS)).round(6).tolist()
                except EmbeddingsDisabledError:
                    continue
    report["vectors"] = vectors
    report["disabled_reason"] = service.disabled_reason
    if not info.get("with_vectors", True):
        report["disabled_reason"] = "built_without_vectors"
    report["token_counts"], report["tiktoken"] = _token_counts(info, tiktoken, source_root)
    report["accelerators"] = {name: importlib.util.find_spec(name) is not None for name in STDLIB_ACCELERATORS}
    report["http_clients"] = [name for name in HTTP_CLIENTS if importlib.util.find_spec(name) is not None]
    report["imports"] = import_audit(watch, info.get("excluded_modules", []))
    report["network_connections_attempted"] = list(watch.connections)
    report["processes_started"] = list(watch.processes)
    report["mode"] = "artifact" if bundled_data_roots() else "source"  # frozen: the bundle's data/
    report["problems"] = problems = _problems(report, explained, source_root)
    report["ok"] = ok = not problems
    return report, ok


def import_audit(watch: ProcessWatch, excluded: list[str]) -> dict[str, list[str]]:
    """The import audit: every module loaded by now (what the app needs, as far as the self-check goes),
    and each module the build left out (``exclude-modules``) that the process looked for and went on
    without (an optional import, as asyncio's of ssl). A module it needed would have ended it instead."""
    loaded = sorted(name for name in sys.modules if name != "__main__")
    probed = sorted(
        name
        for name in watch.imports
        if name not in sys.modules and any(name == gone or name.startswith(f"{gone}.") for gone in excluded)
    )
    return {"modules": loaded, "excluded_probed": probed}


def _problems(report: SelfCheckReport, explained: Mapping[str, Any], source_root: Path | None) -> list[str]:
    """One line per failed check: what failed, why, and what the app's author can do about it."""
    source = report["mode"] == "source"
    problems: list[str] = []
    if not report["vectors"]:
        reason = report["disabled_reason"]
        detail = f" {explained['disabled_detail']}" if explained.get("disabled_detail") else ""
        # Who reads this decides the hint: a frozen app's user has the app, not its build suite.
        override = explained.get("override_folder")
        hint = "reinstall the app (its bundled model is missing or damaged)" + (
            f", or put a complete copy of the model in {override}" if override else ""
        )
        if source and source_root is None:
            hint = "pass source_root=<the project folder holding data/> (from source nothing is bundled)"
        elif source:
            hint = (
                f"no prepared profile under {source_root}/data: run `embedding-pipeline prepare-model` in the "
                "project, or set EMBEDDING_RUNTIME_MODELS_DIR"
            )
        problems.append(f"vectors: embeddings disabled ({reason}){detail}; {hint}")
    tiktoken_report = report["tiktoken"]
    if not tiktoken_report.get("ok"):
        problems.append(f"tiktoken: {tiktoken_report.get('problem') or _cache_problem(tiktoken_report, source)}")
    if report["network_connections_attempted"]:
        problems.append(
            f"network: the process tried to connect to {', '.join(report['network_connections_attempted'][:3])};"
            " an offline app connects to nothing (see the traceback of the code that did)"
        )
    if report["processes_started"]:
        problems.append(
            f"processes: the process started {', '.join(report['processes_started'][:3])};"
            " an offline app starts none (a library probing the system from a child process?)"
        )
    # A source environment always has urllib.request (and usually requests): what a freezer bundled
    # is a property of the artifact, so the HTTP-client check applies to artifacts only.
    if report["http_clients"] and not source:
        problems.append(
            f"http_clients: the artifact bundles {', '.join(report['http_clients'])};"
            " exclude them in the build (the suite's spec helper and Nuitka options do)"
        )
    return problems


def _cache_problem(tiktoken_report: Mapping[str, Any], source: bool) -> str:
    bad = {name: state for name, state in tiktoken_report.get("encodings", {}).items() if state != "ok"}
    folder = tiktoken_report.get("folder")
    fix = "run `embedding-pipeline warm-tiktoken` in the project" if source else "reinstall the app"
    return f"the cache at {folder} fails its manifest: {bad}; {fix}"


def self_check_main(
    source_info: Mapping[str, Any] | None = None, *, tiktoken: Any = None, source_root: Path | None = None
) -> int:
    """Print the self-check document (and each problem on stderr, one line each); 0 when it passes.

    Args:
        source_info: stands in for the artifact's ``build-info.json`` when the app runs from
            source (a frozen app reads its own): ``app_name`` and ``profile_id`` are required,
            ``tiktoken_encodings`` (the encodings whose token counts are checked) is optional.
        tiktoken: the app's ``tiktoken`` module; the runtime never imports it.
        source_root: the app's project folder, the one holding ``data/`` (from source: where
            the prepared profile and the tiktoken cache are; frozen: ignored, the bundle's own
            ``data/`` serves).

    Returns:
        0 when every check passed, 1 when one failed (the document's ``problems`` say which
        and what to pass), 2 when there is nothing to check.
    """
    watch_process()
    info = artifact_build_info() or dict(source_info or {})
    if "profile_id" not in info or "app_name" not in info:
        print("ERROR: no build-info.json beside the app and no source_info: nothing to check", file=sys.stderr)
        return 2
    report, ok = self_check(info, tiktoken=tiktoken, source_root=source_root)
    # Plain ASCII JSON: the texts hold CJK and an emoji, which a Windows pipe's code page cannot
    # encode; the escapes parse back to the same strings (see _console).
    print(json.dumps(report))
    for problem in report["problems"]:
        print(f"self-check: {problem}", file=sys.stderr)
    return 0 if ok else 1


def _token_counts(
    info: Mapping[str, Any], tiktoken: Any, source_root: Path | None
) -> tuple[dict[str, list[int]], dict[str, Any]]:
    folder = use_bundled_tiktoken_cache(source_root=source_root)
    encodings = list(info.get("tiktoken_encodings", []))
    report = cache_report(folder, encodings) if folder else {"folder": None, "ok": True, "encodings": {}}
    counts: dict[str, list[int]] = {}
    if encodings and tiktoken is None:
        return counts, {**report, "ok": False, "problem": "the app passed no tiktoken module: pass tiktoken=tiktoken"}
    if encodings and folder is None and "TIKTOKEN_CACHE_DIR" not in os.environ:
        # tiktoken would download: an offline app never does, so the count is not attempted.
        where = (
            "pass source_root=<the project folder holding data/>"
            if source_root is None
            else f"no cache at {source_root}/data/tiktoken_cache: run `embedding-pipeline warm-tiktoken`"
        )
        return counts, {**report, "ok": False, "problem": f"no tiktoken cache for {', '.join(encodings)}; {where}"}
    try:
        for name in encodings:
            encoding = tiktoken.get_encoding(name)
            counts[name] = [len(encoding.encode(text)) for text in SELF_CHECK_TEXTS]
    except Exception as err:  # the report says what failed; the exit code says it failed
        report = {**report, "ok": False, "problem": f"{type(err).__name__}: {err}"}
    return counts, report


def _runtime_version() -> str:
    from embedding_runtime import __version__

    return __version__
