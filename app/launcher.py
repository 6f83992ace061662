"""local-notes: a small notes memory with semantic search, the backend the pipeline builds.

    launcher --self-check            one JSON document proving vectors and token counting work
    launcher add "some note"         store a note (its vector is cached with its model stamp)
    launcher search "query" [-k 3]   notes closest in meaning

Notes live in <app data>/<app>/notes.json. A stored vector whose stamp differs
from the running model's is re-embedded, never compared.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from embedding_runtime import (
    BUILD_INFO_FILE,
    HTTP_CLIENTS,
    SELF_CHECK_SCHEMA,
    SELF_CHECK_TEXTS,
    STDLIB_ACCELERATORS,
    VARIANT_ENV,
    VARIANTS,
    EmbeddingsDisabledError,
    EmbeddingService,
    InvalidTextError,
    ModelRoot,
    ProcessFacts,
    SelfCheckReport,
    __version__,
    app_data_dir,
    bundled_data_roots,
    cache_report,
    data_path,
    pack_vector,
    read_marker,
    unpack_vector,
    use_bundled_tiktoken_cache,
)

# Set to 1 (by tests where `unshare -n` is not permitted) to make every connection attempt fail.
FORBID_NETWORK_ENV = "LOCAL_NOTES_FORBID_NETWORK"
_CONNECTIONS: list[str] = []
_PROCESSES: list[str] = []
# A frozen app that starts a process (py-cpuinfo re-executes sys.executable) starts itself.
_PROCESS_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.spawn")


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # The self-check reports every connection attempted (an offline app makes none) and
    # every process started (it starts none).
    if event in _PROCESS_EVENTS:
        _PROCESSES.append(f"{event} {args[0]!r}"[:200])
    if event == "socket.connect":
        _CONNECTIONS.append(repr(args[1]))
        if os.environ.get(FORBID_NETWORK_ENV) == "1":
            raise PermissionError(f"network access forbidden ({FORBID_NETWORK_ENV}=1)")


def build_info() -> dict[str, Any]:
    """What the build recorded (artifact), or the project's configuration (source run)."""
    for root in bundled_data_roots():
        info = root / data_path(BUILD_INFO_FILE)
        if info.is_file():
            return dict(json.loads(info.read_text(encoding="utf-8")))
    table = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["tool"][
        "embedding-pipeline"
    ]
    return {
        "builder": "source",
        "app_name": table["app-name"],
        "profile_id": table["profile-id"],
        "with_vectors": True,
        "tiktoken_encodings": table["tiktoken-encodings"],
    }


def self_check(info: dict[str, Any]) -> tuple[SelfCheckReport, bool]:
    started = time.perf_counter()
    service = EmbeddingService(info["profile_id"], app_name=info["app_name"])
    report: SelfCheckReport = {
        "schema": SELF_CHECK_SCHEMA,
        "runtime_version": __version__,
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
    report["canary"] = explained["canary"]
    if service.variant and folder:
        # Every other variant in the same folder, so verify can compare int8 with fp32.
        folder_root = ModelRoot(Path(folder).parent, resolution["kind"])
        for variant in VARIANTS:
            if variant not in vectors:
                other = EmbeddingService(
                    info["profile_id"], roots=[folder_root], env={**os.environ, VARIANT_ENV: variant}
                )
                try:
                    vectors[variant] = other.embed_documents(list(SELF_CHECK_TEXTS)).round(6).tolist()
                except EmbeddingsDisabledError:
                    continue
    report["vectors"] = vectors
    report["disabled_reason"] = service.disabled_reason
    if not info.get("with_vectors", True):
        report["disabled_reason"] = "built_without_vectors"
    report["token_counts"], report["tiktoken"] = _token_counts(info)
    report["accelerators"] = {name: importlib.util.find_spec(name) is not None for name in STDLIB_ACCELERATORS}
    report["http_clients"] = [name for name in HTTP_CLIENTS if importlib.util.find_spec(name) is not None]
    report["network_connections_attempted"] = list(_CONNECTIONS)
    report["processes_started"] = list(_PROCESSES)
    ok = (
        bool(vectors)
        and report["tiktoken"]["ok"]
        and not _CONNECTIONS
        and not _PROCESSES
        and not report["http_clients"]
    )
    report["ok"] = ok
    return report, ok


def _token_counts(info: dict[str, Any]) -> tuple[dict[str, list[int]], dict[str, Any]]:
    folder = use_bundled_tiktoken_cache()
    encodings = list(info.get("tiktoken_encodings", ["o200k_base"]))
    report = cache_report(folder, encodings) if folder else {"folder": None, "ok": True, "encodings": {}}
    counts: dict[str, list[int]] = {}
    try:
        import tiktoken

        for name in encodings:
            encoding = tiktoken.get_encoding(name)
            counts[name] = [len(encoding.encode(text)) for text in SELF_CHECK_TEXTS]
    except Exception as err:  # the report says what failed; the exit code says it failed
        report = {**report, "ok": False, "problem": f"{type(err).__name__}: {err}"}
    return counts, report


def _notes_file(info: dict[str, Any]) -> Path:
    return app_data_dir(info["app_name"], ProcessFacts.current()) / "notes.json"


def _load_notes(path: Path) -> list[dict[str, str]]:
    return list(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else []


def add_note(info: dict[str, Any], text: str) -> None:
    service = EmbeddingService(info["profile_id"], app_name=info["app_name"])
    path = _notes_file(info)
    notes = _load_notes(path)
    vector = service.embed_documents([text])[0]
    notes.append({"text": text, "stamp": service.model_id(), "vector": pack_vector(vector)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(notes, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def search(info: dict[str, Any], query: str, k: int) -> list[tuple[float, str]]:
    service = EmbeddingService(info["profile_id"], app_name=info["app_name"])
    notes = _load_notes(_notes_file(info))
    if not notes:
        return []
    stamp = service.model_id()
    stale = [n["text"] for n in notes if n["stamp"] != stamp]
    fresh = dict(zip(stale, service.embed_documents(stale), strict=True)) if stale else {}
    query_vector = service.embed_queries([query])[0]
    scored = []
    for note in notes:
        vector = fresh.get(note["text"])
        if vector is None:
            vector = unpack_vector(note["vector"], stamp=note["stamp"], expected_stamp=stamp)
        scored.append((float(query_vector @ vector), note["text"]))
    return sorted(scored, reverse=True)[:k]


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("ERROR: interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    sys.addaudithook(_audit)
    parser = argparse.ArgumentParser(prog="launcher", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--self-check", action="store_true", help="print the self-check JSON and exit")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("add").add_argument("text")
    finder = commands.add_parser("search")
    finder.add_argument("query")
    finder.add_argument("-k", type=int, default=3)
    args = parser.parse_args(argv)
    info = build_info()
    if args.self_check:
        report, ok = self_check(info)
        print(json.dumps(report, ensure_ascii=False))
        return 0 if ok else 1
    use_bundled_tiktoken_cache()
    try:
        if args.command == "add":
            add_note(info, args.text)
        elif args.command == "search":
            for score, text in search(info, args.query, args.k):
                print(f"{score:.3f}  {text}")
        else:
            parser.print_help()
    except EmbeddingsDisabledError as err:
        print(f"ERROR: {err}; run with --self-check for details", file=sys.stderr)
        return 1
    except InvalidTextError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the notes file: a read-only or foreign app-data folder
        print(f"ERROR: cannot use {err.filename}: {err.strerror}; check the folder's permissions", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
