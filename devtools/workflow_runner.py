"""A GitHub Actions job, run here: its `run:` steps in order, its `uses:` steps stood in for locally.

What the adoption check needs to prove that a workflow runs for an app, without GitHub: the
expressions the workflows use (``${{ }}`` with contexts, ``!``, ``&&``, ``||``, ``==``, ``!=``
and the functions ``always``, ``success``, ``failure``, ``hashFiles``, ``fromJSON``), the step
outputs (``$GITHUB_OUTPUT``), and stand-ins for the actions: checkout is the clone the job runs
in, setup-python a fresh virtual environment of this interpreter (with pip, as the runner's),
cache records its key and path, attest checks that its subjects exist, upload copies.

Linux only (``runs-on`` resolves to ``ubuntu-*``); a reusable workflow is called through the
caller's ``uses:`` job with the caller's ``with:``, as GitHub does.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv
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
    """One job's run: each step's outcome, what the cache steps keyed, what was uploaded."""

    outcomes: list[StepOutcome] = field(default_factory=list)
    caches: list[dict[str, str]] = field(default_factory=list)
    attested: list[str] = field(default_factory=list)
    uploads: Path | None = None

    @property
    def failed(self) -> bool:
        return any(o.result == "failed" for o in self.outcomes)


@dataclass
class LocalRunner:
    """Runs a job of a workflow in ``workspace``, with ``environ`` as the runner's environment."""

    workspace: Path
    environ: Mapping[str, str]
    scratch: Path
    log: Callable[[str], None] = print

    def call(self, caller: Path, job_id: str, dispatch: Mapping[str, Any]) -> JobRun:
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

    def run(self, path: Path, given: Mapping[str, Any]) -> JobRun:
        """The reusable workflow's one job for the Linux entry of its matrix, with inputs ``given``."""
        document = load_workflow(path)
        declared = triggers(document)["workflow_call"]["inputs"]
        unknown = set(given) - set(declared)
        if unknown:
            raise WorkflowError(f"{path.name} has no input {', '.join(sorted(unknown))}")
        inputs = {name: spec.get("default") for name, spec in declared.items()} | dict(given)
        inputs = {name: _typed(value, declared[name].get("type")) for name, value in inputs.items()}
        (job,) = document["jobs"].values()
        context = self._context(inputs, {}, {})
        matrix = self._linux_matrix(job, context)
        context["matrix"] = matrix
        env: dict[str, str] = {}
        for scope in (document.get("env", {}), job.get("env", {})):
            for name, value in scope.items():
                context["env"] = dict(env)
                env[name] = as_text(self.expand(value, context))
        context["env"] = env
        return self._steps(job["steps"], context)

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
                "event_name": "workflow_dispatch",
                "ref": "refs/heads/main",
                "run_id": "1",
                "run_attempt": "1",
                "repository": "local/adoption-check",
            },
        }

    def _linux_matrix(self, job: Mapping[str, Any], context: Context) -> dict[str, Any]:
        matrix = {k: self.evaluate(v, context) for k, v in job.get("strategy", {}).get("matrix", {}).items()}
        oses = matrix.get("os", [])
        linux = [name for name in oses if str(name).startswith("ubuntu")]
        if not linux:
            raise WorkflowError(f"the matrix has no Linux runner to stand in for: {oses}")
        return {**matrix, "os": linux[0]}

    def _steps(self, steps: Sequence[Mapping[str, Any]], context: Context) -> JobRun:
        job = JobRun(uploads=self.scratch / "uploads")
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
            except subprocess.CalledProcessError as err:
                job.outcomes.append(StepOutcome(name, "failed", f"exit {err.returncode}"))
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
        process_env = {
            **self.environ,
            **env,
            "GITHUB_OUTPUT": str(outputs_file),
            "GITHUB_WORKSPACE": str(self.workspace),
            "RUNNER_OS": "Linux",
            "CI": "true",
        }
        # GitHub's bash: `bash --noprofile --norc -eo pipefail {0}`.
        command = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)]
        subprocess.run(command, cwd=self.workspace, env=process_env, check=True)
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
        if "subject-checksums" in given:
            sums = self.workspace / given["subject-checksums"]
            if not sums.is_file():
                raise subprocess.CalledProcessError(1, f"attest: {sums} does not exist")
            job.attested.append(given["subject-checksums"])
        else:
            pattern = given["subject-path"]
            if not glob(str(self.workspace / pattern)):  # noqa: PTH207
                raise subprocess.CalledProcessError(1, f"attest: {pattern} matches nothing")
            job.attested.append(pattern)

    def _upload(self, given: Mapping[str, str], job: JobRun) -> None:
        assert job.uploads is not None
        into = job.uploads / given["name"]
        for line in given["path"].split():
            source = self.workspace / line
            if source.is_dir():
                shutil.copytree(source, into / line, symlinks=True, dirs_exist_ok=True)
            elif source.exists():
                (into / line).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, into / line)

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
            "hashFiles": lambda *patterns: hash_files(self.workspace, *patterns),
            "fromJSON": json.loads,
        }
        return Expression(match[1], context, functions).evaluate()


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
