"""local-notes: a small notes memory with semantic search, the backend the pipeline builds.

    launcher --self-check            one JSON document proving vectors and token counting work
    launcher add "some note"         store a note (its vector is cached with its model stamp)
    launcher search "query" [-k 3]   notes closest in meaning

Notes live in <app data>/<app>/notes.json. A stored vector whose stamp differs
from the running model's is re-embedded, never compared.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from embedding_runtime import (
    EmbeddingsDisabledError,
    EmbeddingService,
    InvalidTextError,
    app_data_dir,
    artifact_build_info,
    pack_vector,
    readable_output,
    self_check_main,
    unpack_vector,
    use_bundled_tiktoken_cache,
    watch_process,
)

# The project folder: a run from source finds the prepared model and tiktoken cache under its data/.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def build_info() -> dict[str, Any]:
    """What the build recorded (artifact), or the project's configuration (source run)."""
    if (recorded := artifact_build_info()) is not None:
        return recorded
    table = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["embedding-pipeline"]
    return {
        "builder": "source",
        "app_name": table["app-name"],
        "profile_id": table["profile-id"],
        "with_vectors": True,
        "tiktoken_encodings": table["tiktoken-encodings"],
    }


def _notes_file(info: dict[str, Any]) -> Path:
    return app_data_dir(info["app_name"]) / "notes.json"


def _load_notes(path: Path) -> list[dict[str, str]]:
    return list(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else []


def add_note(info: dict[str, Any], text: str) -> None:
    service = EmbeddingService(info["profile_id"], app_name=info["app_name"], source_root=PROJECT_ROOT)
    path = _notes_file(info)
    notes = _load_notes(path)
    vector = service.embed_documents([text])[0]
    notes.append({"text": text, "stamp": service.model_id(), "vector": pack_vector(vector)})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(notes, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def search(info: dict[str, Any], query: str, k: int) -> list[tuple[float, str]]:
    service = EmbeddingService(info["profile_id"], app_name=info["app_name"], source_root=PROJECT_ROOT)
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
    watch_process()
    readable_output()  # a note outside the console's code page (a Windows pipe: cp1252) prints escaped
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
        import tiktoken  # only the self-check counts tokens: `add` and `search` start without it

        return self_check_main(info, tiktoken=tiktoken, source_root=PROJECT_ROOT)
    use_bundled_tiktoken_cache(source_root=PROJECT_ROOT)
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
