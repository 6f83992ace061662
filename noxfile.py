"""Sessions of this repository: the pipeline's (from build_hooks.nox_sessions) plus its own development.

    nox -s nightly            prepare-model, warm-tiktoken, build-nuitka, build-pyinstaller, verify-artifact
    nox -s demo               the same, offline, on a generated model
    nox -s demo-foreign       the same for a second app that adopts the suite (devtools/foreign_app)
    nox -s wheels             the runtime and suite wheels (dist/wheels)
    nox -s tests / lint       the test suite / ruff + mypy + actionlint + zizmor + the adopter's surface check
    nox -s adoption / docs    docs/adopt.md, the 0.1.0 app's upgrade, the workflows and the release
                              executed / the documentation site (guide and API reference)

`nox -l` lists them all; see build_hooks/nox_sessions.py for the pipeline's.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from build_hooks.nox_sessions import app_python, install_groups, log_versions, register  # noqa: E402
from devtools.dev_sessions import register_dev  # noqa: E402

# uv where it is installed, plain virtualenv (with pip) where it is not.
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests", "lint"]

# The same public call an app's noxfile makes; then this repository's demos and wheels.
PYTHON = app_python(ROOT)  # .python-version
register(ROOT, python=PYTHON)
register_dev(ROOT, python=PYTHON)


# ----------------------------------------------------------------------------
# Development
# ----------------------------------------------------------------------------


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite; loopback-only networking is enforced by pytest's configuration."""
    install_groups(session, "test")
    log_versions(session, "huggingface-hub", "onnxruntime", "tokenizers")
    # The files uv.lock pins, which verify anchors artifacts to: fetched here, where the index may be
    # used (as installing does); the tests and their children stay off the network.
    session.run("python", "-m", "build_hooks.cli", "wheelhouse", "--wheelhouse", str(ROOT / "build" / "wheelhouse"))
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    install_groups(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    # The foreign app is its own project (src layout), type-checked with its source on the path.
    foreign = ROOT / "devtools" / "foreign_app" / "src"
    session.run("mypy", "--config-file=", "--strict", "-p", "pocket_search", env={"MYPYPATH": str(foreign)})
    session.run("lint-imports")
    # The adopter's surface against the last release's (api-snapshot.json) and CHANGELOG.md.
    session.run("python", "-m", "devtools.api_docs", "check-api")
    workflows = [str(p) for p in sorted((ROOT / ".github" / "workflows").glob("*.yml"))]
    if shutil.which("actionlint", path=str(Path(session.bin))):
        session.run("actionlint", *workflows)
    else:
        session.log("# actionlint has no wheel for this platform; the workflow tests still run in `tests`")
    # The workflows' security audit (pinned actions, injection, credentials), without asking GitHub.
    session.run("zizmor", "--offline", *workflows)
