"""A GitHub Actions job, run here: its `run:` steps in order, its `uses:` steps stood in for locally.

What the adoption check needs to prove that a workflow runs for an app, without GitHub: the
expressions the workflows use (``${{ }}`` with contexts, ``!``, ``&&``, ``||``, ``==``, ``!=``
and the functions ``always``, ``success``, ``failure``, ``hashFiles``, ``fromJSON``, ``format``,
``startsWith``, ``endsWith``, ``contains``), the step
outputs (``$GITHUB_OUTPUT``), several jobs in ``needs`` order (a job's ``if:`` without a status
function is ``success() && ...``, as GitHub implies; each job after the first runs on a fresh
runner: a new copy of the clone as it was before any job ran), and stand-ins for the actions:

- checkout is the clone the job runs in; setup-python a fresh virtual environment of this
  interpreter (with pip, as the runner's); cache records its key and path;
- attest records the sha256 of every subject (and fails when one is missing); ``gh attestation
  verify FILE`` on the job's PATH is a stand-in that checks FILE's sha256 was attested in this
  run (GitHub's signature and transparency log are not checked: that needs GitHub);
- upload-artifact as v7 documents it: a zip of the matched files (hidden files and folders left
  out unless ``include-hidden-files``; the zip keeps no modes: downloads get 0644 files), or with
  ``archive: false`` the single file as it is, named after it; ``if-no-files-found``;
- download-artifact as v8 documents it: a zipped artifact unpacked (0644 files, 0755 folders),
  a single file as it is (a ``.zip`` unpacked unless ``skip-decompress``);
- pypa/gh-action-pypi-publish up to the upload: the job must grant ``id-token: write`` (trusted
  publishing) and every file of ``packages-dir`` must be a distribution of the tag's version; then
  the run ends there (``stopped_at``), and the jobs after it are "not run": nothing leaves this machine.

A run starts as a caller's ``workflow_call`` (:meth:`LocalRunner.run`, :meth:`LocalRunner.call`) or as a
push of a tag (:meth:`LocalRunner.push_tag`: ``github.ref``, ``ref_name`` and ``event_name`` as GitHub
sets them). A job's ``environment`` is recorded by name (its protection rules and reviewers are
GitHub's: not checked here).

Linux only (``runs-on`` resolves to ``ubuntu-*``); a reusable workflow is called through the
caller's ``uses:`` job with the caller's ``with:``, as GitHub does.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import venv
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any

import yaml

Context = dict[str, Any]
_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<op>&&|\|\||==|!=|!|\(|\)|,)|(?P<number>\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[\w-]+)*))"
)
_INTERPOLATION = re.compile(r"\$\{\{((?:(?!\}\}).)*)\}\}", re.DOTALL)


class WorkflowError(Exception):
    """The workflow cannot run as written (an unknown expression, action or context value)."""


# -- expressions ------------------------------------------------------------------------


class Expression:
    """One ``${{ }}`` expression, parsed by recursive descent and evaluated against a context."""

    def __init__(self, text: str, context: Context, functions: Mapping[str, Callable[..., Any]]) -> None:
        self.text, self.context, self.functions = text, context, functions
        self.tokens = self._tokenize(text)
        self.pos = 0

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while pos < len(text.rstrip()):
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                raise WorkflowError(f"cannot read the expression {text!r} at {text[pos:]!r}")
            kind = match.lastgroup
            assert kind is not None
            tokens.append((kind, match[kind]))
            pos = match.end()
        return tokens

    def evaluate(self) -> Any:
        value = self._or()
        if self.pos != len(self.tokens):
            raise WorkflowError(f"unexpected {self.tokens[self.pos][1]!r} in {self.text!r}")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise WorkflowError(f"the expression {self.text!r} ends too early")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def _or(self) -> Any:
        value = self._and()
        while self._peek() == "||":
            self._take()
            other = self._and()
            value = value if truthy(value) else other
        return value

    def _and(self) -> Any:
        value = self._equality()
        while self._peek() == "&&":
            self._take()
            other = self._equality()
            value = other if truthy(value) else value
        return value

    def _equality(self) -> Any:
        value = self._unary()
        if self._peek() in ("==", "!="):
            op = self._take()[1]
            other = self._unary()
            same = _loose(value) == _loose(other)
            return same if op == "==" else not same
        return value

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self._take()
        if text == "(":
            value = self._or()
            self._expect(")")
            return value
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind != "name":
            raise WorkflowError(f"unexpected {text!r} in {self.text!r}")
        if self._peek() == "(":
            return self._call(text)
        literals = {"true": True, "false": False, "null": None}
        return literals[text] if text in literals else self._lookup(text)

    def _call(self, name: str) -> Any:
        self._take()
        args: list[Any] = []
        while self._peek() != ")":
            args.append(self._or())
            if self._peek() == ",":
                self._take()
        self._expect(")")
        if name not in self.functions:
            raise WorkflowError(f"the function {name}() is not one this runner knows ({self.text!r})")
        return self.functions[name](*args)

    def _expect(self, text: str) -> None:
        if self._take()[1] != text:
            raise WorkflowError(f"expected {text!r} in {self.text!r}")

    def _lookup(self, path: str) -> Any:
        value: Any = self.context
        for part in path.split("."):
            if not isinstance(value, Mapping) or part not in value:
                if path.startswith("secrets."):
                    return None  # an unset secret is empty on GitHub too
                raise WorkflowError(f"{path} is not set (in {self.text!r})")
            value = value[part]
        return value


def truthy(value: Any) -> bool:
    return value not in (None, False, 0, "")


def _loose(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def hash_files(root: Path, *patterns: str) -> str:
    """hashFiles: the sha256 of the files' sha256s, in path order; '' when nothing matches."""
    # glob.glob, not Path.glob: like hashFiles, its `**` matches files too.
    found = {f for pattern in patterns for f in glob(str(root / pattern), recursive=True)}  # noqa: PTH207
    files = sorted(Path(f) for f in found if Path(f).is_file())
    if not files:
        return ""
    return hashlib.sha256(b"".join(hashlib.sha256(f.read_bytes()).digest() for f in files)).hexdigest()


# -- the job ----------------------------------------------------------------------------


@dataclass
class StepOutcome:
    name: str
    result: str  # "ok", "failed" or "skipped"
    detail: str = ""


@dataclass
class JobRun:
    """One job's run: each step's outcome, what the cache steps keyed, what was attested."""

    outcomes: list[StepOutcome] = field(default_factory=list)
    caches: list[dict[str, str]] = field(default_factory=list)
    attested: list[str] = field(default_factory=list)
    workspace: Path | None = None
    result: str = "success"  # "success", "failure" or "skipped", as ``needs.<job>.result``; or "not run"
    environment: str | None = None  # the job's deployment environment (``environment:``), by name
    published: list[str] = field(default_factory=list)  # what the publish step would upload

    @property
    def failed(self) -> bool:
        return any(o.result == "failed" for o in self.outcomes)


_NOT_RAN = ("skipped", "not run")


class PublishReached(Exception):  # noqa: N818 (not an error: where a local run ends)
    """The run reached a step that publishes to the world (PyPI): a local run ends there."""


@dataclass
class WorkflowRun:
    """Every job of one run, by id, in the order they ran; the run's artifacts (one folder each).
    ``stopped_at`` names the publish step the run ended at (the jobs after it are "not run")."""

    jobs: dict[str, JobRun]
    artifacts: Path
    stopped_at: str | None = None

    @property
    def failed(self) -> bool:
        return any(job.failed or job.result == "failure" for job in self.jobs.values())

    @property
    def outcomes(self) -> list[StepOutcome]:
        return [
            StepOutcome(f"{job_id}: {o.name}", o.result, o.detail)
            for job_id, job in self.jobs.items()
            for o in [
                *job.outcomes,
                *([StepOutcome("(job)", job.result)] if job.result in ("skipped", "not run") else []),
            ]
        ]

    @property
    def caches(self) -> list[dict[str, str]]:
        return [cache for job in self.jobs.values() for cache in job.caches]

    def artifact_names(self) -> list[str]:
        return sorted(p.name for p in self.artifacts.iterdir()) if self.artifacts.is_dir() else []


@dataclass
class LocalRunner:
    """Runs a job of a workflow in ``workspace``, with ``environ`` as the runner's environment."""

    workspace: Path
    environ: Mapping[str, str]
    scratch: Path
    log: Callable[[str], None] = print
    _job: _JobPlaces | None = field(default=None, init=False, repr=False)  # the running job's places
    _event: dict[str, str] = field(default_factory=dict, init=False, repr=False)  # github.* of a push

    def call(self, caller: Path, job_id: str, dispatch: Mapping[str, Any]) -> WorkflowRun:
        """The caller's job that calls a reusable workflow (``uses: ./...yml``), as a dispatch runs it."""
        document = load_workflow(caller)
        job = document["jobs"][job_id]
        declared = triggers(document).get("workflow_dispatch", {}).get("inputs", {})
        inputs = {name: spec.get("default") for name, spec in declared.items()} | dict(dispatch)
        context = self._context(inputs, {}, {})
        called = job["uses"]
        if not called.startswith("./"):
            raise WorkflowError(f"{caller.name}: only a local reusable workflow can run here, not {called}")
        given = {name: self.expand(value, context) for name, value in job.get("with", {}).items()}
        return self.run(self.workspace / called, given)

    def run(self, path: Path, given: Mapping[str, Any]) -> WorkflowRun:
        """The reusable workflow's jobs, in ``needs`` order, each for the Linux entry of its matrix,
        with inputs ``given``."""
        document = load_workflow(path)
        declared = (triggers(document)["workflow_call"] or {}).get("inputs", {})
        unknown = set(given) - set(declared)
        if unknown:
            raise WorkflowError(f"{path.name} has no input {', '.join(sorted(unknown))}")
        inputs = {name: spec.get("default") for name, spec in declared.items()} | dict(given)
        inputs = {name: _typed(value, declared[name].get("type")) for name, value in inputs.items()}
        return self._jobs(document, inputs)

    def push_tag(self, path: Path, tag: str) -> WorkflowRun:
        """The workflow as a push of ``tag`` starts it (``on: push: tags``), up to a publish step."""
        document = load_workflow(path)
        patterns = (triggers(document).get("push") or {}).get("tags", [])
        if not any(fnmatch.fnmatchcase(tag, pattern) for pattern in patterns):
            raise WorkflowError(f"{path.name} does not run on a push of the tag {tag} (its tags: {patterns})")
        self._event = {"event_name": "push", "ref": f"refs/tags/{tag}", "ref_name": tag, "ref_type": "tag"}
        return self._jobs(document, {})

    def _jobs(self, document: Mapping[str, Any], inputs: Mapping[str, Any]) -> WorkflowRun:
        pristine = self.scratch / "pristine-clone"  # what every fresh runner checks out
        shutil.copytree(self.workspace, pristine, symlinks=True)
        artifacts = self.scratch / "artifacts"
        artifacts.mkdir(exist_ok=True)
        run = WorkflowRun({}, artifacts)
        for index, (job_id, job) in enumerate(_in_needs_order(document["jobs"])):
            if run.stopped_at is not None:
                run.jobs[job_id] = JobRun(result="not run")  # after the publish step: not run here
                continue
            workspace = self.workspace if index == 0 else self._fresh_runner(pristine, job_id)
            needs = _needs(job)
            context = self._context(inputs, {}, {})
            context["needs"] = {n: {"result": run.jobs[n].result, "outputs": {}} for n in needs}
            status = "success" if all(run.jobs[n].result == "success" for n in needs) else "failure"
            condition = str(job.get("if", "success()")).strip()
            condition = condition[3:-2].strip() if condition.startswith("${{") else condition
            if not re.search(r"\b(success|failure|always|cancelled)\(", condition):
                condition = f"success() && ({condition})"  # GitHub's implied status check
            if not truthy(self.evaluate(f"${{{{ {condition} }}}}", context, status)):
                run.jobs[job_id] = JobRun(result="skipped", workspace=workspace)
                continue
            self.log(f"workflow > job {job_id}")
            context["matrix"] = self._linux_matrix(job, context)
            env: dict[str, str] = {}
            for scope in (document.get("env", {}), job.get("env", {})):
                for name, value in scope.items():
                    context["env"] = dict(env)
                    env[name] = as_text(self.expand(value, context))
            context["env"] = env
            context["github"]["workspace"] = str(workspace)
            context["_permissions"] = dict(job.get("permissions") or document.get("permissions") or {})
            environment = job.get("environment")
            result = self._steps(job["steps"], context, workspace, artifacts)
            result.environment = str(environment.get("name") if isinstance(environment, dict) else environment or "")
            result.result = "failure" if result.failed else "success"
            run.jobs[job_id] = result
            if result.published:
                run.stopped_at = f"{job_id}: {result.outcomes[-1].name}"
        return run

    def _places(self) -> _JobPlaces:
        """The running job's workspace and the run's artifacts (the workspace itself outside a job)."""
        return self._job or _JobPlaces(self.workspace, self.scratch / "artifacts")

    def _fresh_runner(self, pristine: Path, job_id: str) -> Path:
        """A new runner's checkout: the clone as it was before the first job, nothing it made."""
        # Beside the first clone, as a runner's checkout is at the same path: relative paths out of the
        # clone (an app's find-links to the suite's wheels beside it) resolve the same way.
        workspace = self.workspace.parent / f"{self.workspace.name}-fresh-{job_id}"
        shutil.copytree(pristine, workspace, symlinks=True)
        return workspace

    def _context(self, inputs: Mapping[str, Any], env: Mapping[str, str], matrix: Mapping[str, Any]) -> Context:
        return {
            "inputs": dict(inputs),
            "env": dict(env),
            "matrix": dict(matrix),
            "steps": {},
            "secrets": {},
            "runner": {"os": "Linux", "arch": "X64", "temp": str(self.scratch / "runner-temp")},
            "github": {
                "workspace": str(self.workspace),
                "run_id": "1",
                "run_attempt": "1",
                "token": "",  # no GitHub here: the gh stand-in needs none
                **self._github(),
            },
        }

    def _github(self) -> dict[str, str]:
        """What both ``github.*`` and the ``GITHUB_*`` variables say of the event (a dispatch on main,
        or the push of a tag)."""
        return {
            "event_name": "workflow_dispatch", "ref": "refs/heads/main", "ref_name": "main", "ref_type": "branch",
            "repository": "local/adoption-check", **self._event,
        }  # fmt: skip

    def _linux_matrix(self, job: Mapping[str, Any], context: Context) -> dict[str, Any]:
        matrix = {k: self.evaluate(v, context) for k, v in job.get("strategy", {}).get("matrix", {}).items()}
        if "os" not in matrix:
            runs_on = str(job.get("runs-on", ""))
            if not runs_on.startswith("ubuntu"):
                raise WorkflowError(f"runs-on {runs_on!r} is not a Linux runner this machine can stand in for")
            return matrix
        oses = matrix.get("os", [])
        linux = [name for name in oses if str(name).startswith("ubuntu")]
        if not linux:
            raise WorkflowError(f"the matrix has no Linux runner to stand in for: {oses}")
        chosen = {**matrix, "os": linux[0]}
        if "python" in matrix:
            # setup-python stands in with this interpreter: the axis's entry for its X.Y, which the job
            # then sees as this interpreter's own version (nox is forced to it: "3.11.9" would be another).
            here = f"{sys.version_info.major}.{sys.version_info.minor}"
            mine = [v for v in matrix["python"] if str(v) == here or str(v).startswith(here + ".")]
            if not mine:
                raise WorkflowError(f"the matrix's Pythons {matrix['python']} do not include this one ({here})")
            chosen["python"] = platform.python_version()
            if str(mine[0]) != chosen["python"]:
                self.log(f"workflow > matrix python {mine[0]}: this interpreter, {chosen['python']}, stands in")
        return chosen

    def _steps(self, steps: Sequence[Mapping[str, Any]], context: Context, workspace: Path, artifacts: Path) -> JobRun:
        job = JobRun(workspace=workspace)
        self._job = _JobPlaces(workspace, artifacts)
        status = "success"
        for index, step in enumerate(steps):
            name = str(step.get("name") or step.get("uses") or f"step {index + 1}")
            condition = str(step.get("if", "success()"))
            condition = condition[3:-2] if condition.startswith("${{") else condition
            if not truthy(self.evaluate(f"${{{{ {condition} }}}}", context, status)):
                job.outcomes.append(StepOutcome(name, "skipped"))
                continue
            self.log(f"workflow > {name}")
            try:
                outputs = self._step(step, context, job)
            except PublishReached as reached:
                job.outcomes.append(StepOutcome(name, "stopped", str(reached)))
                return job  # nothing after a publish runs here
            except subprocess.CalledProcessError as err:
                job.outcomes.append(StepOutcome(name, "failed", f"exit {err.returncode}: {err.cmd}"[:300]))
                status = "failure"
                continue
            if "id" in step:
                context["steps"][step["id"]] = {"outputs": outputs, "outcome": "success"}
            job.outcomes.append(StepOutcome(name, "ok"))
        return job

    def _step(self, step: Mapping[str, Any], context: Context, job: JobRun) -> dict[str, str]:
        env = dict(context["env"]) | {k: as_text(self.expand(v, context)) for k, v in step.get("env", {}).items()}
        if "run" in step:
            return self._run(self.expand(step["run"], context), env, step.get("shell", "bash"))
        uses = str(step["uses"])
        given = {k: self.expand(v, context) for k, v in step.get("with", {}).items()}
        action = uses.split("@", 1)[0]
        stand_ins: dict[str, Callable[[Mapping[str, str], JobRun], None]] = {
            "actions/checkout": lambda _given, _job: None,  # the workspace is the clone
            "actions/setup-python": self._setup_python,
            "actions/cache": self._cache,
            "actions/attest-build-provenance": self._attest,
            "actions/upload-artifact": self._upload,
            "actions/download-artifact": self._download,
            "pypa/gh-action-pypi-publish": lambda given, job: self._publish(given, job, context),
        }
        if action not in stand_ins:
            raise WorkflowError(f"no local stand-in for the action {uses}")
        stand_ins[action](given, job)
        return {}

    def _run(self, script: str, env: Mapping[str, str], shell: str) -> dict[str, str]:
        if shell != "bash":
            raise WorkflowError(f"only bash steps run here, not {shell}")
        outputs_file = self.scratch / "github-output"
        outputs_file.write_text("")
        script_file = self.scratch / "step.sh"
        script_file.write_text(script)
        workspace = self._places().workspace
        runner_temp = self.scratch / "runner-temp"
        runner_temp.mkdir(exist_ok=True)
        process_env = {
            **self.environ,
            **env,
            "GITHUB_OUTPUT": str(outputs_file),
            "GITHUB_WORKSPACE": str(workspace),
            "RUNNER_OS": "Linux",
            "RUNNER_TEMP": str(runner_temp),
            **{f"GITHUB_{key.upper()}": value for key, value in self._github().items()},
            "CI": "true",
            "PATH": f"{self._gh_stand_in()}{os.pathsep}{self.environ.get('PATH', '')}",
        }
        # GitHub's bash: `bash --noprofile --norc -eo pipefail {0}`.
        command = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)]
        subprocess.run(command, cwd=workspace, env=process_env, check=True)
        return read_outputs(outputs_file.read_text())

    def _setup_python(self, given: Mapping[str, str], job: JobRun) -> None:
        wanted = given.get("python-version", "")
        have = ".".join(map(str, sys.version_info[:2]))
        if not (wanted == have or wanted.startswith(have + ".")):
            raise WorkflowError(f"setup-python asks for {wanted}; this stand-in has Python {have}")
        location = self.scratch / "hostedtoolcache" / "python"
        if not location.exists():
            venv.EnvBuilder(with_pip=True).create(location)
        path = f"{location / 'bin'}{os.pathsep}{self.environ.get('PATH', '')}"
        self.environ = {**self.environ, "PATH": path}

    def _cache(self, given: Mapping[str, str], job: JobRun) -> None:
        key = given["key"]
        if not key or "--" in key or key.endswith("-"):
            raise WorkflowError(f"the cache key {key!r} has an empty part")
        job.caches.append({"key": key, "path": given["path"]})

    def _attest(self, given: Mapping[str, str], job: JobRun) -> None:
        workspace = self._places().workspace
        digests: list[str] = []
        if "subject-checksums" in given:
            sums = workspace / given["subject-checksums"]
            if not sums.is_file():
                raise subprocess.CalledProcessError(1, f"attest: {sums} does not exist")
            digests += [line.split()[0] for line in sums.read_text(encoding="utf-8").splitlines() if line.strip()]
            job.attested.append(given["subject-checksums"])
        else:
            for pattern in given["subject-path"].split():
                found = [Path(f) for f in glob(str(workspace / pattern)) if Path(f).is_file()]  # noqa: PTH207
                if not found:
                    raise subprocess.CalledProcessError(1, f"attest: {pattern} matches nothing")
                digests += [hashlib.sha256(f.read_bytes()).hexdigest() for f in found]
                job.attested.append(pattern)
        with (self.scratch / "attested-digests").open("a", encoding="utf-8") as fh:
            fh.writelines(f"{digest}\n" for digest in digests)

    def _publish(self, given: Mapping[str, str], job: JobRun, context: Context) -> None:
        """pypa/gh-action-pypi-publish, up to the upload: trusted publishing needs ``id-token: write``,
        and every file of ``packages-dir`` must be a distribution of the tag's version. Then the run
        ends (:class:`PublishReached`): nothing is uploaded from here."""
        from packaging.utils import (
            InvalidSdistFilename,
            InvalidWheelFilename,
            parse_sdist_filename,
            parse_wheel_filename,
        )

        if context["_permissions"].get("id-token") != "write" and not given.get("password"):
            raise subprocess.CalledProcessError(1, "publish: trusted publishing needs `id-token: write` in the job")
        folder = self._places().workspace / str(given.get("packages-dir") or "dist/")
        files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        if not files:
            raise subprocess.CalledProcessError(1, f"publish: no distributions in {folder}")
        version = str(context["github"].get("ref_name", "")).removeprefix("v")
        for file in files:
            try:
                found = (
                    parse_wheel_filename(file.name)[1] if file.suffix == ".whl" else parse_sdist_filename(file.name)[1]
                )
            except (InvalidWheelFilename, InvalidSdistFilename) as err:
                raise subprocess.CalledProcessError(1, f"publish: {file.name} is not a distribution ({err})") from err
            if str(found) != version:
                raise subprocess.CalledProcessError(1, f"publish: {file.name} is {found}, not the tag's {version}")
        job.published = [f.name for f in files]
        raise PublishReached(f"not run locally; would upload {', '.join(job.published)}")

    def _gh_stand_in(self) -> Path:
        """``gh attestation verify FILE ...``: FILE's sha256 must be one this run attested."""
        folder = self.scratch / "gh-stand-in"
        folder.mkdir(exist_ok=True)
        script = folder / "gh"
        script.write_text(
            "#!/bin/sh\n"
            "# Stand-in for `gh attestation verify`: the file's sha256 was attested in this run (no signature,\n"
            "# no transparency log: those need GitHub).\n"
            '[ "$1 $2" = "attestation verify" ] || { echo "gh stand-in: only attestation verify" >&2; exit 2; }\n'
            'digest=$(sha256sum "$3" | cut -d" " -f1)\n'
            f'grep -qx "$digest" "{self.scratch / "attested-digests"}" 2>/dev/null'
            ' || { echo "gh stand-in: $3 was not attested in this run" >&2; exit 1; }\n'
            'echo "gh stand-in: $3 ($digest) was attested in this run"\n'
        )
        script.chmod(0o755)
        return folder

    def _upload(self, given: Mapping[str, str], job: JobRun) -> None:
        """upload-artifact v7: a zip without hidden files or modes, or (``archive: false``) one file."""
        places = self._places()
        workspace, artifacts = places.workspace, places.artifacts
        lines = [line for line in str(given["path"]).split() if line]
        found = sorted({Path(f) for line in lines for f in glob(str(workspace / line), recursive=True)})  # noqa: PTH207
        files = sorted({f for p in found for f in ([p] if p.is_file() else [q for q in p.rglob("*") if q.is_file()])})
        if as_text(given.get("include-hidden-files", False)) != "true":
            files = [f for f in files if not any(part.startswith(".") for part in f.relative_to(workspace).parts)]
        if not files:
            if str(given.get("if-no-files-found", "warn")) == "error":
                raise subprocess.CalledProcessError(1, f"upload-artifact: no files found at {lines}")
            self.log(f"upload-artifact: warning: no files found at {lines}")
            return
        if as_text(given.get("archive", True)) == "false":
            if len(files) != 1:
                raise subprocess.CalledProcessError(
                    1, f"upload-artifact: archive: false takes one file, not {len(files)}"
                )
            name = files[0].name
            self._new_artifact(artifacts, name)
            shutil.copyfile(files[0], artifacts / name / name)  # the bytes; a download has no mode but 0644
            return
        name = str(given.get("name") or "artifact")
        self._new_artifact(artifacts, name)
        roots = [workspace / _static_prefix(line) for line in lines]
        root = Path(os.path.commonpath([r if r.is_dir() else r.parent for r in roots]))
        with zipfile.ZipFile(artifacts / name / ".zipped", "w", zipfile.ZIP_DEFLATED) as zipped:
            for f in files:
                zipped.write(f, f.relative_to(root).as_posix())  # modes are not kept by the service

    def _new_artifact(self, artifacts: Path, name: str) -> None:
        if (artifacts / name).exists():
            raise subprocess.CalledProcessError(
                1, f"upload-artifact: an artifact named {name} exists (overwrite: false)"
            )
        (artifacts / name).mkdir(parents=True)

    def _download(self, given: Mapping[str, str], job: JobRun) -> None:
        """download-artifact v8: by name; a zipped artifact unpacked, a single file as it is."""
        places = self._places()
        workspace, artifacts = places.workspace, places.artifacts
        name = str(given.get("name") or "")
        stored = artifacts / name
        if not name or not stored.is_dir():
            raise subprocess.CalledProcessError(1, f"download-artifact: no artifact named {name!r} in this run")
        into = workspace / str(given.get("path") or ".")
        into.mkdir(parents=True, exist_ok=True)
        zipped = stored / ".zipped"
        if not zipped.exists():
            (single,) = stored.iterdir()
            if zipfile.is_zipfile(single) and as_text(given.get("skip-decompress", False)) != "true":
                zipped = single  # the action unpacks what it detects as a zip
            else:
                shutil.copyfile(single, into / single.name)
                (into / single.name).chmod(0o644)
                return
        with zipfile.ZipFile(zipped) as archive:
            for info in archive.infolist():
                target = into / info.filename
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(info))
                target.chmod(0o644)

    def expand(self, value: Any, context: Context) -> Any:
        """A ``with:``/``env:``/``run:`` value with every ``${{ }}`` replaced (a whole-value
        expression keeps its type, as GitHub passes booleans to typed inputs)."""
        if not isinstance(value, str):
            return value
        whole = _INTERPOLATION.fullmatch(value.strip())
        if whole:
            return self.evaluate(value.strip(), context)
        return _INTERPOLATION.sub(lambda m: as_text(self.evaluate(m[0], context)), value)

    def evaluate(self, value: Any, context: Context, status: str = "success") -> Any:
        if not isinstance(value, str):
            return value
        match = _INTERPOLATION.fullmatch(value.strip())
        if match is None:
            return value
        functions: dict[str, Callable[..., Any]] = {
            "always": lambda: True,
            "success": lambda: status == "success",
            "failure": lambda: status == "failure",
            "cancelled": lambda: False,
            "hashFiles": lambda *patterns: hash_files(self._places().workspace, *patterns),
            "fromJSON": json.loads,
            "format": github_format,
            # GitHub compares strings ignoring case.
            "startsWith": lambda text, prefix: as_text(text).lower().startswith(as_text(prefix).lower()),
            "endsWith": lambda text, suffix: as_text(text).lower().endswith(as_text(suffix).lower()),
            "contains": lambda where, what: (
                any(as_text(item).lower() == as_text(what).lower() for item in where)
                if isinstance(where, list)
                else as_text(what).lower() in as_text(where).lower()
            ),
        }
        return Expression(match[1], context, functions).evaluate()


def github_format(template: str, *args: Any) -> str:
    """GitHub's ``format('{0} {1}', a, b)``: ``{N}`` replaced by the N-th argument, ``{{``/``}}`` escaped."""
    text = as_text(template)
    out, i = [], 0
    while i < len(text):
        if text.startswith("{{", i) or text.startswith("}}", i):
            out.append(text[i])
            i += 2
        elif text[i] == "{" and (end := text.find("}", i)) > i and text[i + 1 : end].isdigit():
            out.append(as_text(args[int(text[i + 1 : end])]))
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class _JobPlaces:
    workspace: Path
    artifacts: Path


def _static_prefix(line: str) -> str:
    """The part of an upload path before its first wildcard (the root files are stored under)."""
    parts = []
    for part in Path(line).parts:
        if any(c in part for c in "*?["):
            break
        parts.append(part)
    return str(Path(*parts)) if parts else "."


def _needs(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [str(needs)] if isinstance(needs, str) else [str(n) for n in needs]


def _in_needs_order(jobs: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    """The jobs, each after every job it ``needs``."""
    ordered: list[tuple[str, Mapping[str, Any]]] = []
    placed: set[str] = set()
    while len(ordered) < len(jobs):
        ready = [
            (job_id, job) for job_id, job in jobs.items() if job_id not in placed
            and set(_needs(job)) <= placed
        ]  # fmt: skip
        if not ready:
            raise WorkflowError(f"the jobs' needs form a cycle or name a missing job: {sorted(set(jobs) - placed)}")
        ordered.append(ready[0])
        placed.add(ready[0][0])
    return ordered


def load_workflow(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")))


def triggers(workflow: Mapping[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as True.
    return dict(workflow["on"] if "on" in workflow else workflow[True])  # type: ignore[index]


def read_outputs(text: str) -> dict[str, str]:
    """``$GITHUB_OUTPUT``: ``name=value`` lines and ``name<<DELIMITER`` blocks."""
    outputs: dict[str, str] = {}
    lines: Iterator[str] = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            outputs[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


def _typed(value: Any, kind: str | None) -> Any:
    if kind == "boolean" and isinstance(value, str):
        return value.lower() == "true"
    return value


def runner_environ(extra: Mapping[str, str]) -> dict[str, str]:
    """This machine's shell as a runner would have it: its settings (proxies, certificates, caches)
    kept, but no virtual environment active and nothing of the nox session this runs in; plus ``extra``."""
    leaky = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT")
    environ = {k: v for k, v in os.environ.items() if k not in leaky and not k.startswith(("NOX_", "PYTEST_"))}
    active = os.environ.get("VIRTUAL_ENV")
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if not active or not p.startswith(active)]
    environ["PATH"] = os.pathsep.join(path)
    return {**environ, **extra}


def scratch_folder(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
