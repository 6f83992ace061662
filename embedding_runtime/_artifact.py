"""What a frozen app knows about its own artifact: folder and file names, and the self-check.

The build side (``build_hooks.freezing.target``) lays artifacts out with these names,
and the app reads them back; neither spells them anywhere else. The self-check
schema is the one definition the launcher writes and verify-artifact reads.
"""

from __future__ import annotations

from typing import Any, TypedDict

# <data root>/data/ holds everything bundled; the data root is PyInstaller's _internal/
# (sys._MEIPASS) or the folder of a Nuitka executable.
DATA_FOLDER = "data"
MODELS_FOLDER = "embedding_models"
TIKTOKEN_FOLDER = "tiktoken_cache"
BUILD_INFO_FILE = "build-info.json"
BUILD_INFO_SCHEMA = 1
# The fp32 vectors of the probe texts, recorded at build time: a folder must reproduce them to serve.
PROBE_RECORD_FILE = "probe-vectors.json"
# Set to 1 (by verify-artifact, where `unshare -n` is not permitted): the self-check's audit hook
# then fails every connection attempt.
FORBID_NETWORK_ENV = "EMBEDDING_RUNTIME_FORBID_NETWORK"
# Varied on purpose (length, domain, script, digits, code, punctuation): weights that are only close
# to the real ones (noise, another quantization) agree on some texts and not on others, and the
# canary takes the worst text, so the more kinds of text, the less such weights can pass.
PROBE_TEXTS: tuple[str, ...] = (
    "a short note about the weather",
    "Offline search finds notes by meaning, even when the words differ from the query.",
    "ünïcödé, 数字 and digits 12345",
    "Meeting moved to Thursday 14:30, room B-204; bring the Q3 budget draft (v2).",
    "def retry(call, attempts=5):\n    for n in range(attempts):\n"
    "        try: return call()\n        except OSError: pass",
    "Les notes hors ligne restent sur cet ordinateur; rien n'est envoyé au réseau.",
    "!!! ??? ... --- ### ***",
    "The mitochondrial electron transport chain couples redox reactions to ATP synthesis "
    "through a proton gradient across the inner membrane, a process called chemiosmosis.",
    "ok",
    "Receipt: 3 x espresso @ 2.80 EUR, 1 x croissant @ 1.95 EUR, total 10.35 EUR, card ending 4417.",
    "Рецепт борща: свёкла, капуста, картофель, морковь и немного уксуса.",
    "why does my laptop fan spin up every time I open the browser",
)

SELF_CHECK_SCHEMA = 2
# The self-check probes these in the frozen app itself. No HTTP client may be importable: the app
# makes no request (tiktoken imports requests only on a cache miss, which a complete bundled
# cache never has); the standard library's urllib.request is left out of artifacts too.
HTTP_CLIENTS = (
    *("requests", "urllib3", "idna", "charset_normalizer", "certifi", "httpx", "httpx2", "httpcore"),
    "urllib.request",
)
# C accelerators the standard library imports with a pure-Python fallback: a freezer that does not
# see them ships the slow path silently (a 100 MB .prepared.json took 6.7 s to parse without _json).
STDLIB_ACCELERATORS = ("_json", "_heapq", "_bisect", "_datetime", "_pickle", "_struct")
# Every artifact embeds these in its self-check; verify compares them with the source runtime's.
SELF_CHECK_TEXTS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "Offline search over local notes in a desktop app.",
    "a",
    "Embedding vectors let the app find notes by meaning, not only by words: "
    "this longer text spans many tokens so that batching and padding are exercised too.",
    "你好，世界 — ünïcödé text and emoji 🙂 must survive tokenization.",
)


def data_path(*parts: str) -> str:
    """A path inside an artifact's data root, POSIX-spelled: ``data/<parts...>``."""
    return "/".join((DATA_FOLDER, *parts))


class ServedFolder(TypedDict):
    path: str | None
    kind: str | None
    profile_id: str
    revision: str | None  # from the folder's .prepared.json; None when it has none


class SelfCheckReport(TypedDict, total=False):
    """``launcher --self-check``: written by the app, read by verify-artifact."""

    schema: int
    ok: bool
    runtime_version: str
    builder: str | None
    texts: list[str]
    seconds_to_first_vector: float
    model_id: str
    profile: dict[str, Any]
    folder: ServedFolder
    skipped: list[dict[str, Any]]
    variant: dict[str, Any]
    cpu: dict[str, Any] | None
    threads: dict[str, Any]  # count, and why (the setting, lowered to the CPUs the process may use)
    canary: dict[str, Any]
    settings: list[str]  # each environment setting the runtime does not understand, and that it is ignored
    app_data: dict[str, Any]  # the app's data folder, or why there is none (then no override, no memory)
    vectors: dict[str, list[list[float]]]
    disabled_reason: str | None
    token_counts: dict[str, list[int]]
    tiktoken: dict[str, Any]
    accelerators: dict[str, bool]
    http_clients: list[str]
    # The import audit: "modules" loaded by the end; "excluded_probed": left out by the build, looked for, done without.
    imports: dict[str, list[str]]
    network_connections_attempted: list[str]
    processes_started: list[str]
    mode: str  # "artifact" (build-info.json beside the app) or "source"
    problems: list[str]  # one line per failed check, with what to do; empty when ok
