"""This repository's own pipeline sessions, beside the public ones ``register`` declares.

nox -s demo            the nightly offline, on a generated model (the launcher)
nox -s demo-foreign    the same for the foreign app in devtools/foreign_app, both freezers
nox -s wheels          build both distributions; install the runtime wheel alone and run its doctor
nox -s adoption        docs/adopt.md executed; the 0.1.0 app upgraded; the workflows run for two apps
nox -s docs            the API reference (build/docs) and the runtime's API snapshot check
nox -s windows-smoke   Linux only, opt-in: the Windows PyInstaller build under Wine, self-checked and verified
nox -s demo-pythons    opt-in: `nox -s demo` on Python 3.12 and 3.13 (found on PATH or in pyenv), a table
nox -s arm64-smoke     Linux only, opt-in, root: Linux arm64 under qemu-user on three emulated CPUs
nox -s canary-cpus     Linux only, opt-in: int8 against fp32 here and on an emulated AVX2-only CPU; verify there
nox -s bench-models    opt-in: real-architecture bench models exported from transformers (torch, pip)
nox -s bench-peers     opt-in: the runtime beside fastembed on those models
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath

import nox

from build_hooks.nox_sessions import install_groups, pin_arguments, report_outcomes, run_step
from build_hooks.pipeline_steps import STEPS, command, run_pipeline
from devtools.foreign_project import step_arguments

# devtools.adoption's checks, in the order the session runs them.
ADOPTION_CHECKS = ("readme", "upgrade", "workflows", "release")


def demo_step_arguments(project: PurePath) -> dict[str, list[str]]:
    """What the offline demo adds to the steps: the generated model source and the tiktoken file,
    under ``project`` as the steps see it (a Windows path for the run under Wine)."""
    return {
        "prepare-model": ["--source", str(project / "model-source")],
        "warm-tiktoken": ["--from-file", f"o200k_base={project / 'o200k_base.tiktoken.gz'}"],
    }


def find_python(version: str) -> str | None:
    """An interpreter for ``version`` ("3.12"): ``python3.12`` on PATH (not a pyenv shim, which answers
    only for the versions pyenv has activated), else pyenv's newest 3.12.x."""
    if (found := shutil.which(f"python{version}")) and "shims" not in Path(found).parts:
        return found
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = sorted(
        (pyenv_root / "versions").glob(f"{version}.*/bin/python{version}"),
        key=lambda path: [int(part) for part in path.parents[1].name.split(".") if part.isdigit()],
    )
    return str(candidates[-1]) if candidates else None


def register_dev(root: Path, python: str) -> None:
    def offline_pipeline(session: nox.Session, project: Path, extra: Mapping[str, Sequence[str]]) -> None:
        pin = pin_arguments(session)
        # Built in this checkout's locked environment: one wheelhouse (verify's anchors) for every demo.
        session.env["EMBEDDING_PIPELINE_WHEELHOUSE"] = str(root / "build" / "wheelhouse")
        with session.chdir(project):
            outcomes = run_pipeline(STEPS, lambda step: run_step(session, step, *pin, *extra.get(step.name, [])))
            report_outcomes(session, session.name, outcomes)

    @nox.session(name="demo", python=python)
    def demo(session: nox.Session) -> None:
        """The nightly end to end without hub access: a generated model and an offline tiktoken file."""
        install_groups(session, "test")
        project = root / "build" / "demo"
        session.log(f"# Generate a demo project in {project} (its own pin, model source and tiktoken file)")
        session.run("python", "-m", "devtools.demo_project", str(project))
        offline_pipeline(session, project, demo_step_arguments(project))

    @nox.session(name="demo-foreign", python=python)
    def demo_foreign(session: nox.Session) -> None:
        """The foreign app's nightly, offline, with both freezers: it uses only the public entry points."""
        install_groups(session, "test")
        project = root / "build" / "demo-foreign"
        session.run("python", "-m", "devtools.foreign_project", str(project))
        offline_pipeline(session, project, step_arguments(project))

    @nox.session(name="adoption", python=python)
    def adoption(session: nox.Session) -> None:
        """The adoption guide (docs/adopt.md), executed in an empty folder (the app built, verified and
        run offline); the 0.1.0 app upgraded by CHANGELOG.md's steps (built and verified); the
        reusable workflow's steps for the foreign app and this repository; release.yml up to its
        publish step. `-- readme`, `-- upgrade`, `-- workflows` or `-- release` runs one; `-- --keep`
        keeps the folders (other arguments, as `nox -s tests adoption -- -k name` hands pytest's to
        every session, are not for it)."""
        install_groups(session, "adoption")
        checks = [a for a in session.posargs if a in ADOPTION_CHECKS] or list(ADOPTION_CHECKS)
        options = [a for a in session.posargs if a == "--keep"]
        for check in checks:
            session.run("python", "-m", "devtools.adoption", check, *options)

    @nox.session(name="docs", python=python)
    def docs(session: nox.Session) -> None:
        """The documentation site into build/docs: the guide (README, docs/, CHANGELOG) and the API
        reference (fails on a warning, an undocumented public name, a broken link or a stale table of
        keys); then the adopter's surface against api-snapshot.json and CHANGELOG.md."""
        install_groups(session, "docs", "test")
        session.run("python", "-m", "devtools.api_docs", "build", str(root / "build" / "docs"))
        session.run("python", "-m", "devtools.api_docs", "check-api")

    @nox.session(name="windows-smoke", python=python, default=False)
    def windows_smoke(session: nox.Session) -> None:
        """Linux only: the launcher's Windows PyInstaller build under Wine, its self-check and verify
        (installs Wine and mingw from Debian when missing; `-- --fresh` starts over)."""
        install_groups(session, "test")  # the demo project's generated model
        session.run("python", "-m", "devtools.windows_smoke", *session.posargs)

    @nox.session(name="demo-pythons", python=False, default=False)
    def demo_pythons(session: nox.Session) -> None:
        """`nox -s demo` on other Pythons than the app's (`-- 3.12 3.13`, the default), each in its own
        envdir (.nox/python-<version>), with a table. Each interpreter is found on PATH (`python3.12`) or
        in pyenv's versions (`$(pyenv root)/versions/3.12.*`): uv here downloads none."""
        results: list[tuple[str, str, str]] = []
        for version in session.posargs or ["3.12", "3.13"]:
            interpreter = find_python(version)
            if interpreter is None:
                results.append((version, "-", "no interpreter on PATH or in pyenv"))
                continue
            envdir = str(root / ".nox" / f"python-{version}")
            try:
                session.run(
                    sys.executable, "-m", "nox", "-f", str(root / "noxfile.py"), "-s", "demo",
                    "--force-python", interpreter, "--envdir", envdir, external=True,
                )  # fmt: skip
                results.append((version, interpreter, "passed"))
            except nox.command.CommandFailed:
                results.append((version, interpreter, "FAILED"))
        session.log("\n" + "\n".join(f"| {v} | {path} | {result} |" for v, path, result in results))
        if any(result != "passed" for _, _, result in results):
            session.error("demo failed on " + ", ".join(v for v, _, result in results if result != "passed"))

    @nox.session(name="arm64-smoke", python=python, default=False)
    def arm64_smoke(session: nox.Session) -> None:
        """Linux x86-64 only, as root: the launcher on Linux arm64 in a Debian 12 chroot under qemu-user,
        on cortex-a53 (fp32), neoverse-n1 and max (int8): doctor, the source self-check, the PyInstaller
        build, the artifact's self-check and verify, with a table (devtools/arm64/smoke.sh says how).
        `-- --steps "3 4"` runs some steps on the kept chroot; `-- --fresh` starts over."""
        if sys.platform != "linux" or os.uname().machine != "x86_64" or os.geteuid() != 0:
            session.error("arm64-smoke runs on Linux x86-64 as root (chroot, mounts, binfmt_misc)")
        env = {"PROJECT": str(root), "DEMO": str(root / "build" / "demo"), "W": str(root / "build" / "arm64-smoke")}
        args = list(session.posargs)
        if "--fresh" in args:
            args.remove("--fresh")
            env["FRESH"] = "1"
        if "--steps" in args:
            at = args.index("--steps")
            env["STEPS"] = args[at + 1] if at + 1 < len(args) else session.error('--steps needs a list: "3 4"')
            del args[at : at + 2]
        if args:
            session.error(f"arm64-smoke takes --steps and --fresh, not {' '.join(args)}")
        if not (root / "build" / "demo" / "data" / "embedding_models").is_dir():
            session.error("arm64-smoke runs on the demo's data: run `nox -s demo` first")
        session.run("bash", str(root / "devtools" / "arm64" / "smoke.sh"), external=True, env=env)

    @nox.session(name="canary-cpus", python=python, default=False)
    def canary_cpus(session: nox.Session) -> None:
        """Linux only: int8 against fp32 on the probe texts, here and on an emulated AVX2-only CPU
        (qemu-user, installed from Debian when missing): the figures behind the canary's margin; then
        verify itself on that CPU, which must pass the good artifacts and fail a forged one."""
        install_groups(session, "test")  # the fixture models
        session.run("python", "-m", "devtools.canary_cpus", *session.posargs)
        session.run("python", "-m", "pytest", "tests/test_verify_emulated.py", "--run-emulated")

    @nox.session(name="bench-models", python=python, default=False, venv_backend="venv")
    def bench_models(session: nox.Session) -> None:
        """Export the real-architecture bench models (bench/real_shapes.py) into build/bench-models:
        transformers encoders with random weights, exported by torch and quantized as the hub's repos
        are; then `bench_runtime --shape <name>` runs on them. pip, not uv: see bench/requirements-models.txt."""
        session.install("-r", str(root / "bench" / "requirements-models.txt"))
        session.run("python", "-m", "bench.export_models", *session.posargs)

    @nox.session(name="bench-peers", python=python, default=False, venv_backend="venv")
    def bench_peers(session: nox.Session) -> None:
        """The runtime beside fastembed on the exported bench models (`nox -s bench-models` first)."""
        session.install("-r", str(root / "bench" / "requirements-peers.txt"))
        session.run("python", "-m", "bench.bench_peers", *session.posargs)

    @nox.session(python=python)
    def wheels(session: nox.Session) -> None:
        """Build the runtime and suite wheels into dist/wheels; then the runtime wheel alone, in a
        fresh environment outside the repository, must answer `doctor` ready with the demo's
        profile (prepared first from its generated model when `nox -s demo` has not run)."""
        demo = root / "build" / "demo"
        demo_models = demo / "data" / "embedding_models"
        if not demo_models.is_dir():
            install_groups(session, "test")
            session.run("python", "-m", "devtools.demo_project", str(demo))
            with session.chdir(demo):
                run_step(session, command("prepare-model"), *demo_step_arguments(demo)["prepare-model"])
        out = root / "dist" / "wheels"
        for project in (root / "runtime", root):
            session.run("uv", "build", "--wheel", "--out-dir", str(out), str(project), external=True)
        # The same version built again is another wheel: uv must not install its cached copy of the old one.
        session.run("uv", "cache", "clean", "desktop-embedding-pipeline", "embedding-runtime", external=True)
        runtime_wheel = max(out.glob("embedding_runtime-*.whl"), key=lambda p: p.stat().st_mtime)
        with tempfile.TemporaryDirectory() as scratch:
            venv = Path(scratch) / "venv"
            session.run("uv", "venv", "--python", python, str(venv), external=True)
            bin_dir = venv / ("Scripts" if sys.platform == "win32" else "bin")
            python_exe = str(bin_dir / "python")
            session.run("uv", "pip", "install", "--python", python_exe, str(runtime_wheel), external=True)
            env = {"EMBEDDING_RUNTIME_MODELS_DIR": str(demo_models)}
            with session.chdir(scratch):  # not the repository: the installed wheel must stand alone
                output = session.run(
                    python_exe,
                    "-m",
                    "embedding_runtime",
                    "doctor",
                    "--json",
                    external=True,
                    silent=True,
                    success_codes=[0, 1],
                    env=env,
                    stderr=None,
                )  # fmt: skip  (stdout only: the JSON; doctor's stderr line goes to the terminal)
        report = json.loads(str(output))
        session.log(f"runtime wheel alone: doctor says {report['state']} (runtime {report['runtime_version']})")
        if report["state"] != "ready":
            session.error(f"the demo's profile did not serve from the installed runtime: {report}")
        for wheel in sorted(out.glob("*.whl")):
            session.log(f"{wheel.name}: {wheel.stat().st_size / 1024:.0f} KiB")
