"""Per-process accounting for bench/bench_scale.py (put on PYTHONPATH; not shipped, not a test).

Every Python process of a pipeline step imports this at start-up when
``BENCH_PROBE_DIR`` is set: it counts the bytes passed through sha256 and, at
exit, writes one JSON line with its command, those bytes, its I/O counters
(``/proc/self/io``) and its peak RSS (``VmHWM``). The benchmark sums them per
step, so re-hashing anywhere in a step shows.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

_HASHED = [0]
_REAL_SHA256 = hashlib.sha256
_REAL_NEW = hashlib.new


class _Counted:
    """A sha256 object that counts what it is fed."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def update(self, data: Any) -> None:
        _HASHED[0] += memoryview(data).nbytes
        self._inner.update(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _sha256(*args: Any, **kwargs: Any) -> _Counted:
    counted = _Counted(_REAL_SHA256(**kwargs))
    if args:
        counted.update(args[0])
    return counted


def _new(name: str, *args: Any, **kwargs: Any) -> Any:
    return _sha256(*args, **kwargs) if name.lower() == "sha256" else _REAL_NEW(name, *args, **kwargs)


def _proc_fields(path: str) -> dict[str, str]:
    try:
        with Path(path).open(encoding="ascii") as fh:
            return dict(line.split(":", 1) for line in fh if ":" in line)
    except OSError:
        return {}


def _report() -> None:
    io, status = _proc_fields("/proc/self/io"), _proc_fields("/proc/self/status")
    record = {
        "pid": os.getpid(),
        "argv": sys.argv[:3],
        "hashed": _HASHED[0],
        "rchar": int(io.get("rchar", "0")),
        "read_bytes": int(io.get("read_bytes", "0")),
        "wchar": int(io.get("wchar", "0")),
        "vm_hwm_kib": int(status.get("VmHWM", "0 kB").split()[0]),
    }
    with (Path(os.environ["BENCH_PROBE_DIR"]) / f"{os.getpid()}.json").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


if os.environ.get("BENCH_PROBE_DIR"):
    hashlib.sha256 = _sha256  # type: ignore[assignment]
    hashlib.new = _new
    atexit.register(_report)
