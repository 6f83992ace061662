"""Printing that survives any console, pipe or file.

A Windows process whose stdout is a pipe or a file writes in the ANSI code page
(cp1252 on a Western install), strictly: a note, a path (``C:\\Users\\Łukasz``) or
a self-check text outside that code page raises ``UnicodeEncodeError``, and a
frozen app ignores ``PYTHONUTF8``. ``PYTHONIOENCODING=ascii`` or a C locale does
the same elsewhere. So machine-readable output is ASCII JSON (json's escapes
parse back to the same text, whatever the stream's encoding), and readable
output keeps the stream's encoding but writes what it cannot encode as a
backslash escape, as Python's own stderr does.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import TextIO

from embedding_runtime._settings import LOG_ENV, LOG_LEVELS


def readable_output(stream: TextIO | None = None) -> None:
    """Make ``stream`` (default stdout) escape what its encoding cannot hold instead of raising."""
    stream = sys.stdout if stream is None else stream
    reconfigure = getattr(stream, "reconfigure", None)  # None: no console at all, or not a text stream
    if reconfigure is not None and stream.errors != "backslashreplace":
        reconfigure(errors="backslashreplace")


def quiet_library_logger() -> None:
    """The runtime's logger writes nowhere until the app (or ``EMBEDDING_RUNTIME_LOG``) gives it a
    handler: a library never prints by itself (Python's last-resort handler would print its
    warnings on stderr, beside the app's own line for the same event)."""
    runtime_log = logging.getLogger("embedding_runtime")
    if not runtime_log.handlers:
        runtime_log.addHandler(logging.NullHandler())


def log_from_env(env: Mapping[str, str]) -> None:
    """``EMBEDDING_RUNTIME_LOG=debug|info|warning|error``: the runtime's own log on stderr, for a
    user asked "what does it do, and how long does it take?" (the load's phases are a debug line).
    Nothing changes when the variable is unset or names no level (doctor says so), or the app set
    up a handler of its own."""
    level = LOG_LEVELS.get(env.get(LOG_ENV, "").strip().lower())
    runtime_log = logging.getLogger("embedding_runtime")
    if level is None or any(not isinstance(h, logging.NullHandler) for h in runtime_log.handlers):
        return
    handler = logging.StreamHandler()  # sys.stderr as it is when a line is written
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    runtime_log.addHandler(handler)
    runtime_log.setLevel(level)
