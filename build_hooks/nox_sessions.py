"""The pipeline's nox sessions, each declared by name; ``register(root)`` adds them to a noxfile.

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
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import nox

from build_hooks.bundle import plan_for
from build_hooks.config import load_config
from build_hooks.errors import UsageError
from build_hooks.pipeline_steps import (
    STEPS,
    Step,
    StepOutcome,
    artifact_sizes,
    clean_targets,
    pin_args,
    result_table,
    run_pipeline,
)

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


def run_step(session: nox.Session, step: Step, *args: str) -> None:
    """One step through the suite's console script, in the session's environment."""
    session.run("embedding-pipeline", step.name, *args)


def register(root: Path, python: str = PYTHON) -> None:
    """Declare the pipeline's sessions for the project at ``root``: an app's noxfile calls this once.

    Each session installs the project's ``build`` group (which holds this suite) as locked,
    and runs the step through the suite's console script, ``embedding-pipeline <step>``.
    """

    def step_session(session: nox.Session, name: str, *tools: str) -> None:
        install_groups(session, "build")
        if tools:
            log_versions(session, *tools, "onnxruntime")
        run_step(session, _step(name), *session.posargs)

    @nox.session(name="prepare-model", python=python, tags=["pipeline"])
    def prepare_model(session: nox.Session) -> None:
        """Mirror and verify the pinned model profile."""
        step_session(session, "prepare-model")

    @nox.session(name="warm-tiktoken", python=python, tags=["pipeline"])
    def warm_tiktoken(session: nox.Session) -> None:
        """Warm the verified, offline tiktoken cache."""
        step_session(session, "warm-tiktoken")

    @nox.session(name="build-nuitka", python=python, tags=["pipeline"])
    def build_nuitka(session: nox.Session) -> None:
        """The standalone Nuitka build (checks every data file arrived)."""
        step_session(session, "build-nuitka", "nuitka")

    @nox.session(name="build-pyinstaller", python=python, tags=["pipeline"])
    def build_pyinstaller(session: nox.Session) -> None:
        """The onedir PyInstaller build (skipped when no input changed; -- --force)."""
        step_session(session, "build-pyinstaller", "pyinstaller")

    @nox.session(name="verify-artifact", python=python, tags=["pipeline"])
    def verify_artifact(session: nox.Session) -> None:
        """Prove every built artifact: pinned bytes, provenance, offline self-check, golden vectors."""
        step_session(session, "verify-artifact")

    @nox.session(name="nightly", python=python)
    def nightly(session: nox.Session) -> None:
        """Every step in order, stopping at the first failure; always the result table."""
        pin = pin_arguments(session)
        install_groups(session, "build")
        log_versions(session, "nuitka", "pyinstaller", "onnxruntime")
        outcomes = run_pipeline(STEPS, lambda step: run_step(session, step, *pin))
        report_outcomes(session, "nightly", outcomes, root)

    @nox.session(name="clean", python=False)
    def clean(session: nox.Session) -> None:
        """Remove build outputs, staging folders and temp files; `-- --profile` also the prepared profile."""
        for target in clean_targets(root, with_profile="--profile" in session.posargs):
            session.log(f"# remove {target.relative_to(root)}")
            shutil.rmtree(target) if target.is_dir() else target.unlink()


def _step(name: str) -> Step:
    return next(step for step in STEPS if step.name == name)


def pin_arguments(session: nox.Session) -> list[str]:
    try:
        return pin_args(session.posargs)
    except UsageError as err:
        session.error(f"Usage: nox -s {session.name} [-- --revision SHA] ({err})")


def report_outcomes(session: nox.Session, what: str, outcomes: Sequence[StepOutcome], project: Path) -> None:
    """The result table of a pipeline run, and the session's failure when a step failed."""
    plan = plan_for(load_config(project / "pyproject.toml"), env={})
    session.log("\n" + result_table(outcomes, [s.name for s in STEPS], artifact_sizes(plan)))
    if any(o.result != "ok" for o in outcomes):
        session.error(f"{what} failed at step {outcomes[-1].step}")
