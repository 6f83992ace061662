"""local-notes: a small notes memory with semantic search, the backend the pipeline builds.

    launcher --self-check            one JSON document proving vectors and token counting work
    launcher add "some note"         store a note (its vector is cached with its model stamp)
    launcher search "query" [-k 3]   notes closest in meaning

Notes live in <app data>/<app>/notes.json (see notes_store.py). A stored vector
whose stamp differs from the running model's is re-embedded once and saved,
never compared: a few hundred notes at a time, saved every 10 to 30 s (a
Ctrl-C keeps what was done), with its progress on stderr when that is a terminal.
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted(signum: int, frame: object) -> None:
    """Ctrl-C: one line and exit 130, at once, wherever the program is.

    Not a KeyboardInterrupt: raised inside a Python callback that native code made (onnxruntime's
    pybind11 module init calling an audit hook), it aborted the program (std::terminate) or crashed
    it (SIGSEGV). Nothing is lost by leaving at once: notes are replaced in one step, and a temp
    file left behind is removed by the next write."""
    try:
        os.write(2, b"ERROR: interrupted\n")
    finally:  # stderr closed: leave all the same
        os._exit(130)


# First, before the imports that take the start-up time (the rest of this module's imports follow it).
signal.signal(signal.SIGINT, _interrupted)

import argparse
import tomllib
from contextlib import suppress
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt
from notes_store import Note, NotesError, NotesStore

from embedding_runtime import (
    AppDataUnavailableError,
    EmbeddingsDisabledError,
    EmbeddingService,
    InvalidTextError,
    VectorFormatError,
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


def notes_store(info: dict[str, Any]) -> NotesStore:
    return NotesStore(app_data_dir(info["app_name"]) / "notes.json", say=_say)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def add_note(info: dict[str, Any], text: str) -> None:
    store = notes_store(info)  # first: an environment with no place for notes fails before any work
    service = EmbeddingService(info["profile_id"], app_name=info["app_name"], source_root=PROJECT_ROOT)
    vector = service.embed_documents([text])[0]
    store.add(Note(text, service.model_id(), pack_vector(vector)))


def search(info: dict[str, Any], query: str, k: int) -> list[tuple[float, str]]:
    store = notes_store(info)
    service = EmbeddingService(info["profile_id"], app_name=info["app_name"], source_root=PROJECT_ROOT)
    notes = store.notes()
    if not notes:
        return []
    stamp = service.model_id()
    vectors: dict[Note, npt.NDArray[np.float32]] = {}
    for note in notes:
        with suppress(VectorFormatError):  # another model's stamp, or damaged bytes: re-embedded below
            vectors[note] = unpack_vector(note.vector, stamp=note.stamp, expected_stamp=stamp)
    stale = [note for note in notes if note not in vectors]
    # Once: the new vectors are saved as they are made, so the next search finds them (and folds into
    # the notes what an interrupted one saved beside them).
    if stale or os.path.lexists(store.journal):
        vectors.update(store.renew(stale, service.embed_documents, lambda vector: (stamp, pack_vector(vector))))
    query_vector = service.embed_queries([query])[0]
    scored = [(float(query_vector @ vectors[note]), note.text) for note in notes]
    return sorted(scored, reverse=True)[:k]


def main(argv: list[str] | None = None) -> int:
    """The command's exit status; every way out of it is a status (never an exception)."""
    try:
        return _main(argv)
    except SystemExit as stop:  # argparse: --help, or a usage error it has already explained
        return stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
    except BrokenPipeError:  # the reader went away (`... | head`): nothing more to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor at exit, when Python flushes
        return 141  # as a program killed by SIGPIPE
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command is over: a late Ctrl-C changes nothing


def _stdout_closed() -> bool:
    """Was the program started with stdout closed? Python then has no sys.stdout; Nuitka's program
    opens the null device in its place (by that name: a `> /dev/null` of the user's is "<stdout>")."""
    return sys.stdout is None or getattr(sys.stdout, "name", "<stdout>") in ("/dev/null", "NUL:")


def exit_with(code: int) -> NoReturn:
    """End the program with ``code`` once the command is done, skipping the interpreter's shutdown:
    everything is written and closed by now, and a Ctrl-C during Nuitka's shutdown crashed it
    (SIGSEGV), while PYTHONINSPECT made a Nuitka program print SystemExit as a traceback. Output
    that could not be written (a full disk, `> /dev/full`) is an error, not a quiet success."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (`| head`): as a program killed by SIGPIPE
        code = code or 141
    except (OSError, ValueError) as err:
        with suppress(Exception):
            print(f"ERROR: the output could not be written ({getattr(err, 'strerror', None) or err})", file=sys.stderr)
        code = code or 1
    with suppress(Exception):  # stderr closed: nothing more can reach anyone
        sys.stderr.flush()
    os._exit(code)


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
    if args.command == "search" and _stdout_closed():
        print("ERROR: there is no standard output to print the results to (was it closed?)", file=sys.stderr)
        return 1
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
    except (NotesError, AppDataUnavailableError) as err:  # a read-only folder, a full disk, no HOME
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    exit_with(main())
