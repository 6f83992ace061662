"""Retries for one source: capped exponential backoff that honours Retry-After.

Transient answers (429, 408, 5xx, resets, timeouts, truncated bodies) are
retried on the same source; anything else (404, 401/403, a bad request) is
final for that source and the caller moves on to the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx2

from build_hooks.errors import PipelineError
from build_hooks.prepare_model.sources import IncompleteBodyError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed ``attempt`` (1-based): at least Retry-After, at most ``max_delay``."""
        backoff = self.base_delay * float(2 ** (attempt - 1))
        if retry_after is not None:
            backoff = max(backoff, retry_after)
        return min(self.max_delay, backoff)


class SourceGaveUpError(Exception):
    """A source gave up on a request; ``answer`` is what it answered, for the final error."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        super().__init__(answer)


def call_with_retry(
    action: Callable[[], T],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[str, float], None] = lambda answer, delay: None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``action``, retrying transient failures; raise :class:`SourceGaveUpError` when it gives up."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return action()
        except PipelineError:
            raise  # our own verdict (a disk that cannot be written), not an answer of the source
        except Exception as err:  # classified below; anything unknown is final
            answer, transient, retry_after = describe_failure(err)
            if not transient:
                raise SourceGaveUpError(answer) from err
            if attempt == policy.attempts:
                raise SourceGaveUpError(f"{answer} (gave up after {attempt} attempts)") from err
            delay = policy.delay(attempt, retry_after)
            on_retry(answer, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises


def describe_failure(err: BaseException) -> tuple[str, bool, float | None]:
    """Return (what the source answered, whether it is worth retrying, Retry-After seconds).

    huggingface_hub wraps a failed metadata request in a cache-lookup error;
    the HTTP answer behind it is what counts.
    """
    for cause in _cause_chain(err):
        if getattr(getattr(cause, "response", None), "status_code", None) is not None or isinstance(
            cause, httpx2.TransportError
        ):
            return _describe_one(cause)
    return _describe_one(err)


def _cause_chain(err: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _describe_one(err: BaseException) -> tuple[str, bool, float | None]:
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        headers = getattr(response, "headers", {}) or {}
        transient = status in (408, 429) or status >= 500
        return f"HTTP {status}", transient, _retry_after(headers.get("Retry-After"))
    if isinstance(err, (httpx2.TransportError, TimeoutError, ConnectionError)):
        return f"network error ({type(err).__name__}: {_first_line(err)})", True, None
    if isinstance(err, IncompleteBodyError):
        return f"truncated body ({err})", True, None
    return f"{type(err).__name__}: {_first_line(err)}", False, None


def _retry_after(value: str | None) -> float | None:
    # Only the numeric form; an HTTP-date falls back to our own backoff.
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else "no detail"
