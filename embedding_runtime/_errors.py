"""Errors of the embedding runtime: one root, each also a builtin it behaves like."""

from __future__ import annotations


class EmbeddingRuntimeError(Exception):
    """Root of the runtime's errors."""


class UnknownProfileError(EmbeddingRuntimeError, KeyError):
    """No contract is declared for a profile id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class EmbeddingsDisabledError(EmbeddingRuntimeError, RuntimeError):
    """Vectors are disabled for this process; ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        """Machine-readable: the same as :attr:`EmbeddingService.disabled_reason`."""
        self.detail = detail
        """What was tried and found, for people."""
        super().__init__(f"embeddings are disabled ({reason})" + (f": {detail}" if detail else ""))


class AppDataUnavailableError(EmbeddingRuntimeError, OSError):
    """The environment names no per-user data folder to trust (an empty or relative HOME; on
    Windows neither LOCALAPPDATA nor USERPROFILE); the message names the variable to set."""


class ServiceClosedError(EmbeddingRuntimeError, RuntimeError):
    """The service was closed."""


class VectorFormatError(EmbeddingRuntimeError, ValueError):
    """A packed vector does not match its stamp, its length, or holds NaN/Inf."""


class InvalidTextError(EmbeddingRuntimeError, ValueError):
    """A text of the call cannot be embedded; ``index`` says which. The service stays ready."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        """The position of the text in the call's list."""
        super().__init__(message)
