"""Pipeline sessions. Each step runs on its own; `nightly` runs them in order.

    nox -s prepare-model      mirror + verify the pinned model profile
    nox -s warm-tiktoken      warm the tiktoken cache
    nox -s build-nuitka       standalone Nuitka build
    nox -s build-pyinstaller  onedir PyInstaller build
    nox -s verify-artifact    prove every built artifact complete and offline
    nox -s nightly            the five steps above, in order, with a result table
    nox -s tests / lint       the test suite / ruff + mypy

Arguments after `--` go to the step's script, e.g.
`nox -s prepare-model -- --endpoint http://mirror.example --variant int8`.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from build_hooks.pipeline_steps import StepOutcome, artifact_sizes, clean_targets, result_table  # noqa: E402

PYTHON = "3.11"
# uv where it is installed, plain virtualenv (with pip) where it is not.
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests", "lint"]


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


# ----------------------------------------------------------------------------
# Pipeline steps
# ----------------------------------------------------------------------------


def prepare_model(session: nox.Session) -> None:
    install_groups(session, "build")
    session.log("# Prepare the pinned embedding model profile")
    session.run("python", "scripts/prepare_embedding_model.py", *session.posargs)


def warm_tiktoken(session: nox.Session) -> None:
    install_groups(session, "build")
    session.log("# Warm the tiktoken cache")
    session.run("python", "scripts/warm_tiktoken.py", *session.posargs)


def build_nuitka(session: nox.Session) -> None:
    install_groups(session, "build")
    log_versions(session, "nuitka", "onnxruntime")
    session.log("# Build the Nuitka standalone artifact (checks every data file arrived)")
    session.run("python", "-m", "build_hooks.nuitka_build", "dist/nuitka", *session.posargs)


def build_pyinstaller(session: nox.Session) -> None:
    install_groups(session, "build")
    log_versions(session, "pyinstaller", "onnxruntime")
    session.log("# Build the PyInstaller onedir artifact (skipped when no input changed; -- --force)")
    session.run("python", "-m", "build_hooks.pyinstaller_build", "dist/pyinstaller", *session.posargs)


def verify_artifact(session: nox.Session) -> None:
    install_groups(session, "build")
    session.log("# Verify every built artifact: pinned bytes, offline self-check, golden vectors")
    session.run("python", "scripts/verify_artifact.py", *session.posargs)


STEPS: dict[str, Callable[[nox.Session], None]] = {
    "prepare-model": prepare_model,
    "warm-tiktoken": warm_tiktoken,
    "build-nuitka": build_nuitka,
    "build-pyinstaller": build_pyinstaller,
    "verify-artifact": verify_artifact,
}
for _name, _step in STEPS.items():
    nox.session(name=_name, python=PYTHON, tags=["pipeline"])(_step)


@nox.session(python=PYTHON)
def nightly(session: nox.Session) -> None:
    """Run every step in order, stop at the first failure, always print the result table."""
    if session.posargs:
        # Each step takes different arguments; the pin and endpoints come from the environment.
        session.error(
            "Usage: nox -s nightly (no arguments); override the pin with EMBEDDING_MODEL_REPO, "
            "EMBEDDING_MODEL_REVISION or EMBEDDING_MODEL_ENDPOINTS, or run the steps one by one"
        )
    install_groups(session, "build")
    run_steps(session, "nightly", {name: partial(step, session) for name, step in STEPS.items()}, ROOT / "dist")


def run_steps(session: nox.Session, what: str, steps: Mapping[str, Callable[[], object]], dist: Path) -> None:
    """Run ``steps`` in order, stop at the first failure, always log the result table."""
    outcomes: list[StepOutcome] = []
    for name, step in steps.items():
        session.log(f"# Step {name}")
        started = time.monotonic()
        try:
            step()
        except Exception as err:  # nox raises its own types for failed commands and session.error
            outcomes.append(StepOutcome(name, time.monotonic() - started, f"FAILED: {err}"))
            break
        outcomes.append(StepOutcome(name, time.monotonic() - started, "ok"))
    session.log("\n" + result_table(outcomes, list(steps), artifact_sizes(dist)))
    if any(o.result != "ok" for o in outcomes):
        session.error(f"{what} failed at step {outcomes[-1].step}")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The nightly end to end without hub access: a generated model and an offline tiktoken file."""
    install_groups(session, "test")
    project = ROOT / "build" / "demo"
    session.log(f"# Generate a demo project in {project} (its own pin, model source and tiktoken file)")
    session.run("python", "-m", "tests.demo_project", str(project))
    source, tiktoken_file = project / "model-source", project / "o200k_base.tiktoken.gz"
    scripts = ROOT / "scripts"
    step_args = {
        "prepare-model": [str(scripts / "prepare_embedding_model.py"), "--source", str(source)],
        "warm-tiktoken": [str(scripts / "warm_tiktoken.py"), "--from-file", f"o200k_base={tiktoken_file}"],
        "build-nuitka": ["-m", "build_hooks.nuitka_build", "dist/nuitka"],
        "build-pyinstaller": ["-m", "build_hooks.pyinstaller_build", "dist/pyinstaller"],
        "verify-artifact": [str(scripts / "verify_artifact.py")],
    }
    with session.chdir(project):
        steps = {
            name: partial(session.run, "python", *args, env={"PYTHONPATH": str(ROOT)})
            for name, args in step_args.items()
        }
        run_steps(session, "demo", steps, project / "dist")


@nox.session(python=False)
def clean(session: nox.Session) -> None:
    """Remove build outputs, staging folders and temp files; `-- --profile` also the prepared profile."""
    for target in clean_targets(ROOT, with_profile="--profile" in session.posargs):
        session.log(f"# remove {target.relative_to(ROOT)}")
        shutil.rmtree(target) if target.is_dir() else target.unlink()


# ----------------------------------------------------------------------------
# Development
# ----------------------------------------------------------------------------


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite; loopback-only networking is enforced by pytest's configuration."""
    install_groups(session, "test")
    log_versions(session, "huggingface-hub", "onnxruntime", "tokenizers")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    install_groups(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    if shutil.which("actionlint", path=str(Path(session.bin))):
        session.run("actionlint", ".github/workflows/build-desktop.yml")
    else:
        session.log("# actionlint has no wheel for this platform; the workflow tests still run in `tests`")
