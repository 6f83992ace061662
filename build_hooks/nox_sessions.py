"""The pipeline's nox sessions, one per step of the step table; ``register(root)`` adds them to a noxfile.

    nox -s prepare-model      mirror + verify the pinned model profile
    nox -s warm-tiktoken      warm the tiktoken cache
    nox -s build-nuitka       standalone Nuitka build
    nox -s build-pyinstaller  onedir PyInstaller build
    nox -s verify-artifact    prove every built artifact complete and offline (fetches the wheelhouse first)
    nox -s archive-artifact   pack each verified artifact with its records, as users download it
    nox -s nightly            the six steps above, in order, with a result table
    nox -s wheelhouse         fetch the files uv.lock pins, which verify anchors to (uses the index)
    nox -s ci-outputs         what the reusable workflow reads of the app, as $GITHUB_OUTPUT lines
    nox -s clean              remove builds and leftovers (never by default: name it)

An app's noxfile calls ``register(Path(__file__).parent)`` once. Arguments after
`--` go to the step (``embedding-pipeline <step> --help``); ``nightly`` takes only
the pin (``-- --revision SHA``), which every step then checks the same way.

Like the step table, this module is read by nox's own interpreter, which has
neither numpy nor the runtime: every session does its work through the suite's
console script, in the session's environment.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import nox

from build_hooks import versions
from build_hooks.errors import UsageError
from build_hooks.pipeline_steps import CONSOLE_SCRIPT, STEPS, Command, StepOutcome, pin_args, result_table, run_pipeline
from build_hooks.versions import project_problems

__all__ = ["DISTRIBUTION", "PYTHON", "app_python", "check_suite_version", "install_groups", "register"]


class _Fallback(str):
    """:data:`PYTHON`'s type: the value ``register`` takes when its caller names no Python, which it
    replaces with the app's own (:func:`app_python`)."""

    __slots__ = ()


PYTHON: str = _Fallback("3.11")
"""The Python the sessions build with when the app names none (:func:`app_python`)."""

DISTRIBUTION = versions.DISTRIBUTION
"""The suite's distribution name, as the app's ``uv.lock`` and the noxfile's PEP 723 block name it."""


def install_groups(session: nox.Session, *groups: str) -> None:
    """Install the project and the dependency ``groups`` exactly as locked in uv.lock."""
    if session.venv_backend == "uv":
        args = [f"--group={group}" for group in groups]
        session.run_install(
            "uv", "sync", "--frozen", "--no-default-groups", *args,
            env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        )  # fmt: skip
    else:
        # pip >= 25.1 reads PEP 735 dependency groups; the pins are the same, the lock is not.
        session.install("pip>=25.1")
        session.install("-e", ".", *(f"--group={group}" for group in groups))


def log_versions(session: nox.Session, *distributions: str) -> None:
    session.log("# Tool versions")
    if session.venv_backend == "uv":
        session.run("uv", "--version", external=True, silent=False)
    session.run("python", "--version")
    # Distribution metadata, not module attributes: nuitka has no __version__.
    code = "import importlib.metadata as m, sys; [print(d, m.version(d)) for d in sys.argv[1:]]"
    session.run("python", "-c", code, *distributions, silent=False)


def run_step(session: nox.Session, step: Command, *args: str) -> None:
    """One step through the suite's console script, in the session's environment (after the commands
    it needs first: verify fetches the wheelhouse, the step that uses the index)."""
    for first in step.before:
        session.run(CONSOLE_SCRIPT, first)
    session.run(CONSOLE_SCRIPT, step.name, *args)


def app_python(root: Path) -> str:
    """The Python the app builds with: ``python`` in its ``[tool.embedding-pipeline]`` table, else the
    first line of its ``.python-version``, else :data:`PYTHON`. ``SystemExit`` (one line) when the value
    is not a version such as ``3.12`` or ``3.12.1``."""
    named = versions.named_python(root)
    if named is None:
        return str(PYTHON)
    value, where = named
    if problem := versions.python_version_problem(value):
        raise SystemExit(f"ERROR: {where}: {problem}")
    return str(value)


def register(root: Path, python: str = PYTHON, venv_backend: str = "uv") -> None:
    """Declare the pipeline's sessions for the project at ``root``: an app's noxfile calls this once.

    The sessions build with ``python`` when the caller names one, else the app's own
    (:func:`app_python`: its table's ``python``, its ``.python-version``, else :data:`PYTHON`, 3.11).
    ``nox --force-python 3.13`` builds one run with another (the reusable workflow's Python axis does).

    Each session installs the project's ``build`` group (which holds this suite) as locked in
    ``uv.lock``, with uv (so ``[tool.uv]`` settings and sources apply), and runs the step through
    the suite's console script, ``embedding-pipeline <step>``. A bare ``nox`` runs ``nightly``
    only; ``clean`` and the single steps run when named.

    Raises:
        SystemExit: the suite nox imported is not the version the app's ``uv.lock`` holds, or the
            noxfile's PEP 723 block names one that is not (one line saying which to change).
    """
    check_suite_version(root)
    python = app_python(root) if isinstance(python, _Fallback) else python
    for step in STEPS:
        nox.session(name=step.name, python=python, venv_backend=venv_backend, tags=["pipeline"], default=False)(
            _step_session(step)
        )

    @nox.session(name="nightly", python=python, venv_backend=venv_backend)
    def nightly(session: nox.Session) -> None:
        """Every step in order, stopping at the first failure; always the result table."""
        pin = pin_arguments(session)
        install_groups(session, "build")
        log_versions(session, "nuitka", "pyinstaller", "onnxruntime")
        outcomes = run_pipeline(STEPS, lambda step: run_step(session, step, *pin))
        report_outcomes(session, "nightly", outcomes)

    @nox.session(name="wheelhouse", python=python, venv_backend=venv_backend, default=False)
    def wheelhouse(session: nox.Session) -> None:
        """Fetch the files uv.lock pins into the wheelhouse verify anchors third-party files to."""
        install_groups(session, "build")
        session.run(CONSOLE_SCRIPT, "wheelhouse", *session.posargs)

    @nox.session(name="ci-outputs", python=python, venv_backend=venv_backend, default=False)
    def ci_outputs(session: nox.Session) -> None:
        """What the reusable workflow reads of the app (pin, cache paths, locked versions)."""
        install_groups(session, "build")
        session.run(CONSOLE_SCRIPT, "ci-outputs", *session.posargs)

    @nox.session(name="clean", python=python, venv_backend=venv_backend, default=False)
    def clean(session: nox.Session) -> None:
        """Remove build outputs, staging folders and temp files; `-- --profile` also the prepared profile."""
        install_groups(session, "build")
        session.run(CONSOLE_SCRIPT, "clean", *session.posargs)


def check_suite_version(root: Path) -> None:
    """The app agrees with the suite nox imported (:func:`build_hooks.versions.project_problems`):
    the noxfile's PEP 723 block, ``uv.lock`` and the workflows' refs name this version, and no usage
    an earlier version took is left. ``SystemExit`` with the first problem's line otherwise."""
    try:
        problems = project_problems(root)
    except UsageError as err:
        raise SystemExit(f"ERROR: {err}") from None
    if problems:
        more = f" (and {len(problems) - 1} more: `embedding-pipeline check-project` lists them)" if problems[1:] else ""
        raise SystemExit(f"ERROR: {problems[0]}{more}")


def _step_session(step: Command) -> Callable[[nox.Session], None]:
    def session_for_step(session: nox.Session) -> None:
        install_groups(session, "build")
        if step.tools:
            log_versions(session, *step.tools)
        run_step(session, step, *session.posargs)

    session_for_step.__doc__ = step.summary[0].upper() + step.summary[1:] + "."
    return session_for_step


def pin_arguments(session: nox.Session) -> list[str]:
    try:
        return pin_args(session.posargs)
    except UsageError as err:
        session.error(f"Usage: nox -s {session.name} [-- --revision SHA] ({err})")


def report_outcomes(session: nox.Session, what: str, outcomes: Sequence[StepOutcome]) -> None:
    """The result table of a pipeline run (run in the project's folder), and the session's failure
    when a step failed. The artifacts' sizes come from the suite's ``sizes`` command."""
    sizes = json.loads(str(session.run(CONSOLE_SCRIPT, "sizes", silent=True, stderr=None) or "{}"))  # stdout only
    session.log("\n" + result_table(outcomes, [s.name for s in STEPS], sizes))
    if any(o.result != "ok" for o in outcomes):
        session.error(f"{what} failed at step {outcomes[-1].step}")
