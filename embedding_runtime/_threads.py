"""The thread policy: how many intra-op threads a service runs, and the batch budget that follows.

A desktop app embeds in bursts it waits for, so a service takes every CPU this process may use
(at most 8) unless the app or ``EMBEDDING_RUNTIME_THREADS`` says otherwise; the batch budget
(rows x longest row) follows the thread count (bench/bench_runtime.py's sweeps).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import suppress

from embedding_runtime._settings import THREADS_ENV

# Tokens per batch when the contract fixes no budget. The sweeps' best budget followed the thread
# count, not the model's token limit: one thread wants small batches (256 was best, or within 1 %,
# on every shape: less padding, and no other thread to share the work with), two want 1024 to keep
# both busy. Past 4096 no shape gained anything but memory.
_ONE_THREAD_BUDGET = 256
_TOKENS_PER_THREAD = 512
_MAX_DEFAULT_BUDGET = 4096


def default_token_budget(threads: int) -> int:
    """The batch budget (rows x longest row) of a service running ``threads`` intra-op threads:
    256 tokens on one thread, 512 per thread from two on (at most 4096)."""
    if threads <= 1:
        return _ONE_THREAD_BUDGET
    return min(_MAX_DEFAULT_BUDGET, _TOKENS_PER_THREAD * threads)


def default_threads(cpu_count: int | None) -> int:
    """Intra-op threads: every CPU, at most 8 (past that a small model gains nothing).

    A desktop app embeds in bursts (a re-index, a query) and waits for the result: half the
    CPUs halves its speed. An app that embeds in the background of interactive work passes
    ``threads=1`` (or sets EMBEDDING_RUNTIME_THREADS) for that service.
    """
    return max(1, min(8, cpu_count or 1))


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the OS has one (Linux; a container's
    or ``taskset``'s limit), else every CPU (``os.process_cpu_count`` from Python 3.13)."""
    counter = getattr(os, "process_cpu_count", None)
    if counter is not None:
        return max(1, counter() or 1)
    if hasattr(os, "sched_getaffinity"):
        with suppress(OSError):
            return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def thread_choice(requested: int | None, env: Mapping[str, str]) -> tuple[int, str]:
    """The threads a service runs, and why: the app's figure, else EMBEDDING_RUNTIME_THREADS, else
    the default; never more than the CPUs this process may use (100,000 threads do not finish)."""
    cpus = usable_cpus()
    raw = env.get(THREADS_ENV, "").strip()
    if requested is not None:
        wanted, why = requested, f"set by the app for this service ({requested})"
    elif raw.isascii() and raw.isdigit() and (digits := raw.lstrip("0")):
        wanted, why = int(digits) if len(digits) <= 6 else 10**6, f"{THREADS_ENV}={raw[:20]}"
    else:
        wanted = default_threads(cpus)
        why = f"every CPU this process may use ({cpus}), at most 8: embedding runs in bursts the app waits for"
        if raw:
            why = f"{THREADS_ENV}={raw[:20]!r} is not a whole number above 0, so ignored; {why}"
    if wanted > cpus:
        return cpus, f"{why}, lowered to the {cpus} CPUs this process may use"
    return wanted, why
