"""The Nuitka standalone build: options from the shared bundle plan, and the checks after it.

Nuitka's --include-data-dir silently drops files by suffix (.bin, .so, .py and
more), so every data file is passed one by one with --include-data-files, and
after the build every file is looked for in the dist with its size and sha256:
a file that did not arrive fails the build by name.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from build_hooks.build_stamp import inputs_digest, is_up_to_date, write_stamp
from build_hooks.bundle import EXCLUDED_MODULES, BundlePlan, plan_for, preflight_problems, write_generated_files
from build_hooks.config import load_config
from build_hooks.hashing import sha256_file
from embedding_runtime.layout import MARKER_NAME, read_marker
from embedding_runtime.tiktoken_cache import MANIFEST_NAME, read_manifest

READABLE = 0o444


def dist_dir(plan: BundlePlan, output_dir: Path) -> Path:
    return output_dir / f"{plan.config.app_name}.dist"


# The onnxruntime wheel ships its C API library beside the Python binding, which carries its
# own copy of the runtime: 35 MB the app never loads (the self-check proves it). On Windows
# the binding links against onnxruntime.dll, so nothing is left out there.
UNUSED_LIBRARIES = {
    "linux": ("onnxruntime/capi/libonnxruntime.so*",),
    "darwin": ("onnxruntime/capi/libonnxruntime*.dylib",),
}


def nuitka_command(
    plan: BundlePlan, output_dir: Path, python: str = sys.executable, platform: str = sys.platform
) -> list[str]:
    """The full Nuitka command line for ``plan``."""
    command = [
        python, "-m", "nuitka", "--standalone", "--assume-yes-for-downloads", "--remove-output",
        f"--output-dir={output_dir}",
        f"--output-folder-name={plan.config.app_name}.dist",
        f"--output-filename={plan.config.app_name}",
        # tiktoken finds encodings by iterating this namespace package; nothing imports it by name.
        "--include-package=tiktoken_ext",
        "--include-module=tiktoken_ext.openai_public",
        *(f"--nofollow-import-to={module}" for module in EXCLUDED_MODULES),
        *(f"--noinclude-dlls={pattern}" for pattern in UNUSED_LIBRARIES.get(_os_family(platform), ())),
    ]  # fmt: skip
    for source, dest in data_files(plan):
        command.append(f"--include-data-files={source}={dest}")
    command.append(str(plan.config.app_entry))
    return command


def data_files(plan: BundlePlan) -> list[tuple[Path, str]]:
    """Every data file, one by one (folders would lose files to Nuitka's suffix rules)."""
    files: list[tuple[Path, str]] = []
    for tree in plan.data_trees():
        for path in sorted(tree.source.rglob("*")):
            if path.is_file() and not path.is_symlink():
                files.append((path, f"{tree.dest}/{path.relative_to(tree.source).as_posix()}"))
    files += [(path, f"{dest}/{path.name}") for path, dest in plan.data_files()]
    return files


def dist_problems(plan: BundlePlan, dist: Path) -> list[str]:
    """Files of the profile and the tiktoken cache missing or different in ``dist``."""
    problems: list[str] = []
    expected: dict[str, tuple[int, str]] = {}
    if plan.with_vectors and (marker := read_marker(plan.profile_dir)):
        base = f"data/embedding_models/{plan.profile_id}"
        expected |= {f"{base}/{name}": (f.size, f.sha256) for name, f in marker.files.items()}
        expected[f"{base}/{MARKER_NAME}"] = _size_and_hash(plan.profile_dir / MARKER_NAME)
    for blob in read_manifest(plan.config.tiktoken_cache) or []:
        expected[f"data/tiktoken_cache/{blob.file}"] = (blob.size, blob.sha256)
    expected["data/tiktoken_cache/" + MANIFEST_NAME] = _size_and_hash(plan.config.tiktoken_cache / MANIFEST_NAME)
    for relative, (size, sha256) in sorted(expected.items()):
        path = dist / relative
        if not path.is_file():
            problems.append(f"{relative} is missing from {dist}")
        elif _size_and_hash(path) != (size, sha256):
            problems.append(f"{relative} in {dist} differs from its source (size or sha256)")
    return problems


def make_data_readable(dist: Path) -> None:
    """Files copied with mode 0600 (as onnx writes sidecars) must stay readable for every user."""
    for path in (dist / "data").rglob("*"):
        if path.is_file() and path.stat().st_mode & READABLE != READABLE:
            path.chmod(path.stat().st_mode | READABLE)


def build(output_dir: Path, extra_args: Sequence[str] = ()) -> int:
    """Preflight, compile (unless nothing changed), check the dist. Returns an exit code."""
    plan = plan_for(load_config())
    if problems := preflight_problems(plan):
        return _fail(problems, "refusing to build")
    write_generated_files(plan, builder="nuitka")
    dist = dist_dir(plan, output_dir)
    force = "--force" in extra_args
    extra_args = [a for a in extra_args if a != "--force"]
    command = [*nuitka_command(plan, output_dir)[:-1], *extra_args, str(plan.config.app_entry)]
    digest = inputs_digest(plan, "nuitka", command[1:])  # not the interpreter path: venvs differ
    if not force and is_up_to_date(dist, digest):  # verify-artifact re-checks the dist's bytes
        print(f"{dist} is up to date (no input changed; pass --force to rebuild)", flush=True)
        return 0
    ccache = shutil.which("ccache")
    print(f"ccache: {'used, ' + ccache if ccache else 'not found (install it to speed up rebuilds)'}", flush=True)
    shutil.rmtree(dist, ignore_errors=True)
    started = time.monotonic()
    if subprocess.run(command, check=False).returncode != 0:
        return _fail(["Nuitka failed (see its output above)"], "build failed")
    make_data_readable(dist)
    if problems := dist_problems(plan, dist):
        return _fail(problems, "the dist is incomplete")
    write_stamp(dist, digest)
    size = sum(p.stat().st_size for p in dist.rglob("*") if p.is_file())
    print(f"built {dist} in {time.monotonic() - started:.0f} s, {size / 2**20:.0f} MiB", flush=True)
    return 0


def _fail(problems: Sequence[str], what: str) -> int:
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr, flush=True)
    print(f"ERROR: {what}: {len(problems)} problem(s) above", file=sys.stderr, flush=True)
    return 1


def _os_family(platform: str) -> str:
    return "linux" if platform.startswith("linux") else platform


def _size_and_hash(path: Path) -> tuple[int, str]:
    return path.stat().st_size, sha256_file(path)


if __name__ == "__main__":
    sys.exit(build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("dist/nuitka"), sys.argv[2:]))
