"""The runtime's command line: ``doctor`` explains, ``embed`` turns texts into vectors."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from embedding_runtime import __version__
from embedding_runtime._console import readable_output
from embedding_runtime._errors import EmbeddingRuntimeError, EmbeddingsDisabledError, InvalidTextError
from embedding_runtime._layout import DEFAULT_PROFILE_ID
from embedding_runtime._service import DEFAULT_APP_NAME, EmbeddingService
from embedding_runtime._tiktoken_cache import cache_report, use_bundled_tiktoken_cache

# Vectors formatted per piece of output: bounded memory, whatever the number of input lines.
_ROWS_PER_PIECE = 256


class UsageParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one ``ERROR:`` line and exit 2 (the build suite's too)."""

    def error(self, message: str) -> NoReturn:
        print(f"ERROR: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(prog="python -m embedding_runtime", description="Offline text embeddings.")
    parser.add_argument("--profile", default=DEFAULT_PROFILE_ID, help="profile id (default: %(default)s)")
    parser.add_argument("--app-name", default=DEFAULT_APP_NAME, help="names the app-data folder of the override")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the runtime does to stderr")
    parser.add_argument("--version", action="version", version=f"embedding-runtime {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser("doctor", help="explain which folder and variant serve, or why none does")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument("--verify", action="store_true", help="re-hash the model files")
    embed = commands.add_parser("embed", help="texts in (arguments or stdin lines), vectors out as JSON")
    embed.add_argument("texts", nargs="*")
    embed.add_argument("--query", action="store_true", help="embed as queries (default: documents)")
    embed.add_argument("--dim", type=int, default=None, help="Matryoshka dimension (default: full)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    readable_output()  # paths and texts print on any console, pipe or file (see _console)
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    if sys.stdout is None:  # started with stdout closed: nowhere to answer
        print("ERROR: there is no standard output to print to (was it closed?)", file=sys.stderr)
        return 1
    try:
        code = _run(args)
        sys.stdout.flush()  # here, not at exit: output that cannot be written is an error
        return code
    except KeyboardInterrupt:
        print("ERROR: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`embed ... | head`): nothing more to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor at exit, when Python flushes
        return 141  # as a program killed by SIGPIPE
    except OSError as err:  # a full disk, `> /dev/full`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"ERROR: the output could not be written ({err.strerror or err})", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    output: str | Iterator[str]
    try:
        output, code = _doctor(args) if args.command == "doctor" else _embed(args)
    except EmbeddingsDisabledError as err:
        print(f"ERROR: {err}; run `python -m embedding_runtime doctor` for details", file=sys.stderr)
        return 1
    except (EmbeddingRuntimeError, ValueError, TypeError) as err:  # the arguments or the input: a usage error
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    for piece in [output] if isinstance(output, str) else output:
        sys.stdout.write(piece)
    sys.stdout.write("\n")
    return code


def _doctor(args: argparse.Namespace) -> tuple[str, int]:
    # The whole canary, as a first launch runs it: a remembered proof would hide what a user asks about.
    service = EmbeddingService(args.profile, app_name=args.app_name, verify=args.verify, remember_proofs=False)
    report = {"runtime_version": __version__, **service.explain(), "tiktoken": _tiktoken_section()}
    # JSON in plain ASCII: it parses to the same text whatever the stream's encoding.
    return json.dumps(report, indent=2) if args.json else _readable(report), 0 if report["state"] == "ready" else 1


def _tiktoken_section() -> dict[str, Any] | None:
    folder = use_bundled_tiktoken_cache()
    return cache_report(folder) if folder is not None else None


def _embed(args: argparse.Namespace) -> tuple[Iterator[str], int]:
    texts = list(args.texts) or _stdin_lines()
    with EmbeddingService(args.profile, app_name=args.app_name) as service:
        embed = service.embed_queries if args.query else service.embed_documents
        vectors = embed(texts, dim=args.dim)
        return _vectors_json(service.model_id(args.dim), vectors), 0


def _vectors_json(model_id: str, vectors: npt.NDArray[np.float32]) -> Iterator[str]:
    """``{"model_id": ..., "vectors": [[...], ...]}`` a few hundred rows at a time (10,000 vectors
    never sit in memory as Python floats or one string), each value the shortest decimal that
    reads back as the same float32."""
    yield json.dumps({"model_id": model_id})[:-1] + ', "vectors": ['
    for start in range(0, len(vectors), _ROWS_PER_PIECE):
        rows = shortest_float32(vectors[start : start + _ROWS_PER_PIECE]).tolist()
        yield ("," if start else "") + ",".join(json.dumps(row, separators=(",", ":")) for row in rows)
    yield "]}"


def shortest_float32(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Each value as the float64 nearest the shortest decimal (at most 9 significant digits, which
    always suffice) that reads back as the same float32; Python prints that float64 as that decimal."""
    exact = values.astype(np.float64)
    out = exact.copy()
    done = (exact == 0) | ~np.isfinite(exact)
    magnitude = np.floor(np.log10(np.abs(np.where(done, 1.0, exact)))).astype(np.int64)
    for digits in range(1, 10):
        places = digits - 1 - magnitude  # decimal places that keep ``digits`` significant ones
        up, down = 10.0 ** np.maximum(places, 0), 10.0 ** np.maximum(-places, 0)  # exact up to 10**22
        candidate = np.where(places >= 0, np.round(exact * up) / up, np.round(exact / down) * down)
        with np.errstate(over="ignore"):  # a candidate past float32's range: it does not fit, that is all
            fits = ~done & (candidate.astype(np.float32) == values)
        out[fits] = candidate[fits]
        done |= fits
    return out


def _stdin_lines() -> list[str]:
    """One text per input line, blank lines included, so output rows line up with input lines."""
    texts = []
    for number, raw in enumerate(sys.stdin.buffer, 1):
        try:
            texts.append(raw.decode("utf-8").rstrip("\r\n"))
        except UnicodeDecodeError as err:
            raise InvalidTextError(
                number - 1, f"input line {number} is not UTF-8 (byte {raw[err.start]:#04x} at offset {err.start})"
            ) from None
    return texts


def _readable(report: dict[str, Any]) -> str:
    lines = [f"profile     {report['profile']['profile_id']} ({report['profile']['dimension']} dims)"]
    lines.append(
        f"state       {report['state']}" + (f" ({report['disabled_reason']})" if report["disabled_reason"] else "")
    )
    if report["disabled_detail"]:
        lines.append(f"            {report['disabled_detail']}")
    if variant := report["variant"]:
        lines.append(f"variant     prefers {variant['preferred']}: {variant['reason']}")
    if resolution := report["resolution"]:
        if resolution["folder"]:
            lines.append(f"using       {resolution['folder']} ({resolution['kind']}, {resolution['variant']})")
        for skipped in resolution["skipped"]:
            lines.append(f"skipped     {skipped['path']} [{skipped['variant']}]: {skipped['reason']}")
    if report["override_folder"]:
        lines.append(f"override    create {report['override_folder']} to use your own copy of the model")
    if problem := report["app_data"]["problem"]:
        lines.append(f"app data    {problem}")
    for setting in report["settings"]:
        lines.append(f"setting     {setting}")
    if tiktoken := report["tiktoken"]:
        status = ", ".join(f"{name}: {state}" for name, state in tiktoken["encodings"].items())
        lines.append(f"tiktoken    {tiktoken['folder']}: {status or tiktoken['problem']}")
    lines.append(f"threads     {report['threads']}: {report['threads_reason']}")
    if optimization := report.get("optimization"):
        lines.append(f"graph       {optimization['level']}: {optimization['why']}")
    if seconds := dict(report["load_seconds"]):
        phases = ", ".join(f"{phase} {value:.2f}" for phase, value in seconds.items() if phase != "total")
        lines.append(f"load        {seconds.pop('total'):.2f} s ({phases})")
    if cpu := report["cpu"]:
        lines.append(f"cpu         {cpu['arch']} {cpu['model_name']} ({', '.join(cpu['sources'])})")
        lines.extend(f"cpu         {reason}" for reason in cpu.get("ignored", ()))
    return "\n".join(lines)
