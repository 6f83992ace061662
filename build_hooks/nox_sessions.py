"""The pipeline's nox sessions, one per step of the step table; ``register(root)`` adds them to a noxfile.

    nox -s prepare-model      mirror + verify the pinned model profile
    nox -s warm-tiktoken      warm the tiktoken cache
    nox -s build-nuitka       standalone Nuitka build
    nox -s build-pyinstaller  onedir PyInstaller build
    nox -s verify-artifact    prove every built artifact complete and offline
    nox -s nightly            the five steps above, in order, with a result table
    nox -s clean              remove builds and leftovers

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

from build_hooks.errors import UsageError
from build_hooks.pipeline_steps import CONSOLE_SCRIPT, STEPS, Command, StepOutcome, pin_args, result_table, run_pipeline

PYTHON = "3.11"


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
    """One step through the suite's console script, in the session's environment."""
    session.run(CONSOLE_SCRIPT, step.name, *args)


def register(root: Path, python: str = PYTHON) -> None:
    """Declare the pipeline's sessions for the project at ``root``: an app's noxfile calls this once.

    Each session installs the project's ``build`` group (which holds this suite) as locked,
    and runs the step through the suite's console script, ``embedding-pipeline <step>``.
    """
    for step in STEPS:
        nox.session(name=step.name, python=python, tags=["pipeline"])(_step_session(step))

    @nox.session(name="nightly", python=python)
    def nightly(session: nox.Session) -> None:
        """Every step in order, stopping at the first failure; always the result table."""
        pin = pin_arguments(session)
        install_groups(session, "build")
        log_versions(session, "nuitka", "pyinstaller", "onnxruntime")
        outcomes = run_pipeline(STEPS, lambda step: run_step(session, step, *pin))
        report_outcomes(session, "nightly", outcomes)

    @nox.session(name="clean", python=python)
    def clean(session: nox.Session) -> None:
        """Remove build outputs, staging folders and temp files; `-- --profile` also the prepared profile."""
        install_groups(session, "build")
        session.run(CONSOLE_SCRIPT, "clean", *session.posargs)


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
    sizes = json.loads(str(session.run(CONSOLE_SCRIPT, "sizes", silent=True) or "{}"))
    session.log("\n" + result_table(outcomes, [s.name for s in STEPS], sizes))
    if any(o.result != "ok" for o in outcomes):
        session.error(f"{what} failed at step {outcomes[-1].step}")
