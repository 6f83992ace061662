"""Errors of the build pipeline.

One root, :class:`PipelineError`; every subclass also inherits the builtin it
behaves like. ``exit_code`` is what a command line exits with; only ``main()``
functions turn an error into an exit.
"""

from __future__ import annotations

from collections.abc import Sequence


class PipelineError(Exception):
    """Root of every error the pipeline reports to its user."""

    exit_code = 1


class UsageError(PipelineError, ValueError):
    """An argument or configuration value is malformed; nothing was touched."""

    exit_code = 2


class OutputLocationError(PipelineError, OSError):
    """The output folder cannot be used (it is a file, or not writable)."""


class InsufficientSpaceError(PipelineError, OSError):
    """Too little free disk space for the download and its staging copy."""

    def __init__(self, folder: str, needed: int, free: int) -> None:
        self.folder, self.needed, self.free = folder, needed, free
        super().__init__(
            f"not enough disk space in {folder}: the download needs {_mib(needed)} "
            f"but only {_mib(free)} is free; free some space or pass another --output-root"
        )


class SourceError(PipelineError, ConnectionError):
    """No source could deliver what was asked; ``attempts`` says what each one answered."""

    def __init__(self, what: str, attempts: Sequence[tuple[str, str]], hint: str = "") -> None:
        self.what, self.attempts = what, tuple(attempts)
        tried = "; ".join(f"{source}: {answer}" for source, answer in self.attempts)
        super().__init__(f"could not get {what} (tried {tried})" + (f"; {hint}" if hint else ""))


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
