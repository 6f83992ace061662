"""The runtime's settings from the environment, and one rule for a value it does not understand.

A value the runtime cannot use is never taken silently for something else: it is
ignored, and said, in ``doctor``, in the self-check (``settings``) and as a
warning on the runtime's logger (which prints only where the app, or
``EMBEDDING_RUNTIME_LOG``, set up a handler: a library never prints by itself).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath

logger = logging.getLogger("embedding_runtime")

DISABLE_ENV = "EMBEDDING_RUNTIME_DISABLE"  # on: never load, report disabled_by_env
FORCE_INT8_ENV = "EMBEDDING_RUNTIME_FORCE_INT8"  # on: ignore the int8 block list
VARIANT_ENV = "EMBEDDING_RUNTIME_VARIANT"  # auto, fp32 or int8
THREADS_ENV = "EMBEDDING_RUNTIME_THREADS"  # a whole number above 0
LOG_ENV = "EMBEDDING_RUNTIME_LOG"  # debug, info, warning or error: the runtime's log on stderr

_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"", "0", "false", "no", "off"})
LOG_LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_VARIANTS = frozenset({"auto", "fp32", "int8"})
_said: set[str] = set()  # each warning once per process


def switch(env: Mapping[str, str], name: str) -> bool:
    """Is the on/off setting ``name`` on (``1``, ``true``, ``yes``, ``on``; any case)? A value that is
    neither on nor off is off (and :func:`not_understood` says so)."""
    return env.get(name, "").strip().lower() in _ON


def not_understood(env: Mapping[str, str], platform: str) -> list[str]:
    """One line for each setting in ``env`` whose value the runtime ignores, saying what it accepts."""
    found = []
    for name in (DISABLE_ENV, FORCE_INT8_ENV):
        value = env.get(name, "")
        if value.strip().lower() not in _ON | _OFF:
            found.append(f"{name}={value[:20]!r} is not on (1, true, yes, on) or off (0, false, no, off): ignored")
    variant = env.get(VARIANT_ENV, "")
    if variant.strip() and variant.strip().lower() not in _VARIANTS:
        found.append(f"{VARIANT_ENV}={variant[:20]!r} is not fp32, int8 or auto: ignored")
    threads = env.get(THREADS_ENV, "").strip()
    if threads and not (threads.isascii() and threads.isdigit() and threads.lstrip("0")):
        found.append(f"{THREADS_ENV}={threads[:20]!r} is not a whole number above 0: ignored")
    log = env.get(LOG_ENV, "")
    if log.strip() and log.strip().lower() not in LOG_LEVELS:
        found.append(f"{LOG_ENV}={log[:20]!r} is not one of {', '.join(LOG_LEVELS)}: ignored")
    relative = ("LOCALAPPDATA", PureWindowsPath) if platform == "win32" else ("XDG_DATA_HOME", PurePosixPath)
    name, flavour = relative
    value = env.get(name, "").strip()
    if value and not flavour(value).is_absolute():
        found.append(f"{name}={value[:40]!r} is a relative path (it would move with the working folder): ignored")
    return found


def say_once(lines: list[str]) -> None:
    """Each line as a warning on the runtime's logger, once per process."""
    for line in lines:
        if line not in _said:
            _said.add(line)
            logger.warning("%s", line)
