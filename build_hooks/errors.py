"""Errors of the build pipeline.

One root, :class:`PipelineError`; every subclass also inherits the builtin it
behaves like. ``exit_code`` is what a command line exits with; only ``main()``
functions turn an error into an exit.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["PipelineError", "PreflightError", "UsageError"]


class PipelineError(Exception):
    """Root of every error the pipeline reports to its user."""

    exit_code = 1
    """What a command line exits with: 1 (2 for a :class:`UsageError`)."""

    def report(self) -> str:
        """What a command line (or a spec file) prints before it exits with ``exit_code``."""
        return f"ERROR: {self}"


class UsageError(PipelineError, ValueError):
    """An argument or configuration value is malformed; nothing was touched."""

    exit_code = 2
    """Usage errors exit with 2."""


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


class PreflightError(PipelineError):
    """The inputs of a build are not fit to ship; ``problems`` lists each with its fix."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        """Each problem, with what to do about it."""
        super().__init__(f"refusing to build: {len(self.problems)} problem(s): " + "; ".join(self.problems))

    def report(self) -> str:
        """One ``ERROR:`` line per problem, then the refusal: what a step or a spec file exits with."""
        lines = [f"ERROR: {problem}" for problem in self.problems]
        return "\n".join([*lines, f"ERROR: refusing to build: {len(self.problems)} problem(s) above"])


class BuildFailedError(PipelineError):
    """A freezer failed (its own output says why), or its dist does not hold what the plan lists."""


class AnchorUnavailableError(PipelineError):
    """verify cannot derive here what an artifact must be (its freezer is missing, or a re-run of it
    failed): the artifact is not passed, and the message says what verify needs."""


class SourceError(PipelineError, ConnectionError):
    """No source could deliver what was asked; ``attempts`` says what each one answered."""

    def __init__(self, what: str, attempts: Sequence[tuple[str, str]], hint: str = "") -> None:
        self.what, self.attempts = what, tuple(attempts)
        tried = "; ".join(f"{source}: {answer}" for source, answer in self.attempts)
        super().__init__(f"could not get {what} (tried {tried})" + (f"; {hint}" if hint else ""))


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
