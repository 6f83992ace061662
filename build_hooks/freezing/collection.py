"""What a freezer collected into an artifact: its modules and where each file came from.

Read from the freezer's own account: PyInstaller's analysis (its tables of
contents) or Nuitka's compilation report. The SBOM maps the modules to the
distributions that own them; the licences follow the sources to their texts.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from build_hooks.freezing.target import Builder


class Analysis(Protocol):
    """The part of PyInstaller's ``Analysis`` the SBOM reads: its tables of contents."""

    pure: Iterable[tuple[str, str, str]]
    binaries: Iterable[tuple[str, str, str]]
    datas: Iterable[tuple[str, str, str]]


@dataclass(frozen=True)
class Collection:
    """What a freezer put into an artifact: the Python modules (dotted names), and where each
    collected file came from (destination or ``module:<name>``, source file) for the licences."""

    builder: Builder
    modules: frozenset[str]
    sources: tuple[tuple[str, Path], ...] = ()


def pyinstaller_collection(analysis: Analysis) -> Collection:
    """Modules from the analysis: pure modules by name (with ``noarchive=True`` PyInstaller moves
    them into ``datas`` as ``.pyc`` files), extension modules by their path."""
    modules = {name for name, _source, _kind in analysis.pure}
    modules |= {_compiled_module(dest) for dest, _source, _kind in analysis.datas if dest.endswith(".pyc")}
    modules |= {_extension_module(dest) for dest, _source, kind in analysis.binaries if kind == "EXTENSION"}
    return Collection("pyinstaller", frozenset(modules), tuple(pyinstaller_sources(analysis)))


def pyinstaller_sources(analysis: Analysis) -> list[tuple[str, Path]]:
    """(destination or module name, source file) of everything the analysis collected."""
    entries = [*analysis.pure, *analysis.binaries, *analysis.datas, *modules_outside_pyz(analysis)]
    return [(dest, Path(source)) for dest, source, kind in entries if source and source != "-" and kind != "SYMLINK"]


def modules_outside_pyz(analysis: Analysis) -> list[tuple[str, str, str]]:
    """With noarchive=True every pure module is compiled into datas from the workpath: its source is
    what PyInstaller records as a module outside the PYZ. An analysis PyInstaller found unchanged
    restores its lists from its guts file but not that one: it is read from the same file."""
    outside = list(getattr(analysis, "_modules_outside_pyz", None) or [])
    toc_file = getattr(analysis, "tocfilename", None)
    if outside or toc_file is None or not Path(toc_file).is_file():
        return outside
    from PyInstaller.utils.misc import load_py_data_struct

    guts = dict(zip((g[0] for g in getattr(analysis, "_GUTS", [])), load_py_data_struct(toc_file), strict=False))
    return list(guts.get("_modules_outside_pyz") or [])


def _compiled_module(dest: str) -> str:
    """``embedding_runtime/__init__.pyc`` -> ``embedding_runtime``."""
    parts = PurePosixPath(dest.replace("\\", "/")).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _extension_module(dest: str) -> str:
    """``numpy/_core/_multiarray_umath.cpython-311-….so`` -> ``numpy._core._multiarray_umath``;
    the interpreter's own (``python3.11/lib-dynload/_json.cpython-311-….so``) -> ``_json``."""
    path = PurePosixPath(dest.replace("\\", "/"))
    package = () if "lib-dynload" in path.parts else path.parts[:-1]
    return ".".join([*package, path.name.split(".")[0]])


def nuitka_collection(report: Path, cwd: Path) -> Collection:
    """Modules from Nuitka's compilation report (``--report=``): every module it compiled or included,
    and every file's source (:func:`report_sources`; ``cwd`` is the folder Nuitka ran in)."""
    root = ET.parse(report).getroot()
    modules = frozenset(node.attrib["name"] for node in root.iter("module"))
    return Collection("nuitka", modules, tuple(report_sources(report, cwd).items()))


def report_sources(report: Path, cwd: Path) -> dict[str, Path]:
    """What a Nuitka compilation report says each file came from: ``dest -> source`` for every
    extension module, library and data file it copied, ``module:<name> -> source`` for what it
    compiled in; paths made absolute for this interpreter and ``cwd``, the folder Nuitka ran in."""
    variables = {"${sys.prefix}": sys.prefix, "${sys.real_prefix}": sys.base_prefix, "${cwd}": str(cwd)}
    sources: dict[str, Path] = {}
    for node in ET.parse(report).getroot().iter():
        source = node.attrib.get("source_path")
        if source is None:
            continue
        for name, value in variables.items():
            source = source.replace(name, value)
        if "${" in source:
            continue  # a place Nuitka names by a variable this interpreter has no value for
        if node.tag in ("included_extension", "included_dll") and "dest_path" in node.attrib:
            sources[node.attrib["dest_path"].replace("\\", "/")] = Path(source)
        elif node.tag == "module" and "name" in node.attrib:
            sources[f"module:{node.attrib['name']}"] = Path(source)
    return sources
