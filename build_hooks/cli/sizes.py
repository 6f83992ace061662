"""``sizes``: the size of every built artifact, as JSON (the nightly's result table asks for it); with
``--parts``, per artifact the size beside ``data/``, its largest parts, and what ships that its
self-check never imported (the candidates for ``exclude-modules``)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from build_hooks import fsutil
from build_hooks.cli._common import Parser, exits_on_error
from build_hooks.config import load_config
from build_hooks.freezing.selection import is_native, module_of
from build_hooks.freezing.target import BUILDERS, PYINSTALLER_CONTENTS, Builder, Target, target_for
from build_hooks.verification.verify import report_paths
from embedding_runtime.build_api import DATA_FOLDER

STDLIB_PART = "the standard library (.pyc)"
MiB = 2**20


@exits_on_error()
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = Parser(
        prog=prog or "embedding-pipeline sizes",
        description="Print the size of every built artifact, as JSON; with --parts, what each is made of.",
    )
    parser.add_argument("--dist-root", type=Path, help="folder of <builder>/ artifact folders (default: dist/)")
    parser.add_argument(
        "--parts",
        type=int,
        nargs="?",
        const=12,
        metavar="N",
        help="per artifact: its size beside data/, its N largest parts (default 12), and the modules it ships "
        "that its self-check never imported (from verify-artifact's record beside it)",
    )
    args = parser.parse_args(argv)
    target = target_for(load_config(), env={})
    dists = {builder: dist for builder in BUILDERS if (dist := target.dist_dir(builder, args.dist_root)).is_dir()}
    if args.parts is None:
        print(json.dumps({f"{builder}/{dist.name}": fsutil.folder_bytes(dist) for builder, dist in dists.items()}))
        return 0
    if not dists:
        print("no built artifact: run build-pyinstaller or build-nuitka first")
    for builder, dist in dists.items():
        print("\n".join(describe(target, builder, dist, args.parts)))
    return 0


def describe(target: Target, builder: Builder, dist: Path, count: int) -> list[str]:
    """The lines ``--parts`` prints for ``builder``'s artifact ``dist``."""
    contents = dist / PYINSTALLER_CONTENTS if builder == "pyinstaller" else dist  # where the parts sit
    sizes, data_bytes = parts(dist, contents)
    total = sum(sizes.values()) + data_bytes
    lines = [
        f"{builder}/{dist.name}: {_mib(total - data_bytes)} beside data/ "
        f"({_mib(total)} in all, data/ {_mib(data_bytes)})",
        f"  largest parts beside data/ ({count} of {len(sizes)}):",
    ]
    lines += [f"    {name:42} {_mib(size):>10}" for name, size in sorted(sizes.items(), key=lambda i: -i[1])[:count]]
    lines += unimported(dist, contents, count)
    return lines


def parts(dist: Path, contents: Path) -> tuple[dict[str, int], int]:
    """Bytes by part beside ``data/`` (a top-level folder, such as a package, ``numpy.libs`` or the licence
    texts, or file, such as a library or the executable, of the artifact or its contents folder; the
    standard library's top-level ``.pyc`` files as one part), and the bytes of ``data/``: one walk. A
    symlink counts as a link, as the archive holds it."""
    sizes: dict[str, int] = defaultdict(int)
    data_bytes = 0
    for path in sorted(dist.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        rel = PurePosixPath(path.relative_to(contents).as_posix()) if path.is_relative_to(contents) else None
        if rel is None:  # beside PyInstaller's contents folder: its executable, the licence texts
            sizes[path.relative_to(dist).parts[0]] += path.stat().st_size
        elif rel.parts[0] == DATA_FOLDER:
            data_bytes += path.stat().st_size
        else:
            name = STDLIB_PART if len(rel.parts) == 1 and rel.suffix == ".pyc" else rel.parts[0]
            sizes[name] += path.stat().st_size
    return dict(sizes), data_bytes


def unimported(dist: Path, contents: Path, count: int) -> list[str]:
    """The modules ``dist`` ships as files that its self-check's import audit (verify's record) never
    loaded, largest first by package; or why there is no audit to compare with."""
    record, _ = report_paths(dist.parent, dist)
    try:
        audit = json.loads(record.read_text(encoding="utf-8"))["self_check"]["imports"]["modules"]
        loaded = {str(name) for name in audit}
    except (OSError, ValueError, KeyError, TypeError):
        return [f"  never imported: no import audit in {record.name} (run verify-artifact, which runs the self-check)"]
    sizes: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for path in sorted(contents.rglob("*")):
        rel = path.relative_to(contents).as_posix()
        if path.is_symlink() or not path.is_file() or rel.startswith(f"{DATA_FOLDER}/"):
            continue
        if not (path.suffix == ".pyc" or (is_native(path.name) and _is_extension(path.name))):
            continue
        module = module_of(rel.split("lib-dynload/")[-1]).removesuffix(".__init__")
        if module not in loaded:
            group = ".".join(module.split(".")[:2])
            sizes[group] += path.stat().st_size
            counts[group] += 1
    if not sizes:
        return ["  never imported: nothing (every module shipped as a file was imported by the self-check)"]
    ranked = sorted(sizes.items(), key=lambda i: -i[1])
    lines = [
        f"  shipped, never imported by its self-check ({_mib(sum(sizes.values()))}; candidates for exclude-modules,"
        " once the app's own uses are checked):"
    ]
    return lines + [f"    {_label(name, counts[name], loaded):42} {_mib(size):>10}" for name, size in ranked[:count]]


def _label(group: str, modules: int, loaded: set[str]) -> str:
    """A group of unimported modules: a package or module by its name, or the unimported part of a package
    the self-check did import (``numpy._core.* (3 modules)``)."""
    return f"{group}.* ({modules} modules)" if group in loaded else group


def _is_extension(name: str) -> bool:
    """An extension module (``_ssl.cpython-311-x86_64-linux-gnu.so``, ``tokenizers.abi3.so``, Nuitka's
    ``_ssl.so``), not a shared library (``libssl.so.3``)."""
    return not name.startswith("lib") and (".so" in name or name.endswith(".pyd"))


def _mib(size: int) -> str:
    return f"{size / MiB:.1f} MiB"
