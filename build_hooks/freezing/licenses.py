"""The licence texts of everything an artifact ships: ``licenses/`` at its top, indexed by ``licenses/INDEX.txt``.

What ships is what the freezer collected: every file's source is mapped to the
distribution that owns it (its RECORD), to the interpreter (its prefix), or else
to the system (a shared library the freezer copied in). For each, in order:

- a distribution's ``License-File`` entries and the licence files in its
  ``.dist-info`` (``LICENSE*``, ``COPYING*``, ``NOTICE*``), and the SBOMs it ships
  there (``sboms/``: the Rust crates a wheel links in statically, listed in the index);
- licence files a distribution keeps in its package instead (onnxruntime's
  ``LICENSE`` and ``ThirdPartyNotices.txt``);
- a distribution that ships no licence file (tokenizers 0.23.3): the licence its
  metadata or shipped SBOM names, the copyright line from that SBOM, and the
  licence's standard text (``build_hooks/freezing/license_texts/``);
- the suite's own runtime: its MIT licence;
- CPython's ``LICENSE.txt`` (on Windows it covers the DLLs of the python.org build);
- a system library: on Debian and Ubuntu its package (``dpkg -S``) and that
  package's ``/usr/share/doc/<package>/copyright``; on RPM systems ``rpm -qf`` and
  ``/usr/share/licenses/<package>/``; on Windows the Visual C++ runtime's notice.

Anything that ships without a licence text is a :class:`LicenseMissingError`
naming it: the build refuses it, and verify (which derives these files again, from
the lock's distributions) names it.

The freezers' own runtime parts (PyInstaller's bootloader, under its GPL's
bootloader exception; Nuitka's compiled helpers) are not listed: their licences
put no notice on the apps they build.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.utils import canonicalize_name

from build_hooks.errors import PipelineError
from build_hooks.freezing.selection import is_native

LICENSES_FOLDER = "licenses"
INDEX_FILE = "INDEX.txt"
STANDARD_TEXTS = Path(__file__).resolve().parent / "license_texts"
# Licence texts a distribution keeps in its package, not in its metadata.
PACKAGE_NOTICES: Mapping[str, tuple[str, ...]] = {
    "onnxruntime": ("onnxruntime/LICENSE", "onnxruntime/ThirdPartyNotices.txt"),
}
# The suite's own distributions: the runtime every artifact vendors, under the suite's licence.
SUITE_DISTRIBUTIONS = ("embedding-runtime", "desktop-embedding-pipeline")
RUNTIME_PACKAGE = "embedding_runtime"
FREEZERS = ("pyinstaller", "nuitka")
VC_RUNTIME = ("vcruntime140.dll", "vcruntime140_1.dll", "msvcp140.dll", "msvcp140_1.dll", "msvcp140_2.dll")
_METADATA_TEXT_PREFIXES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")


class LicenseMissingError(PipelineError):
    """Something ships without a licence text."""


@dataclass(frozen=True)
class Shipped:
    """What an artifact ships, by owner: distributions, the interpreter, system libraries."""

    distributions: tuple[metadata.Distribution, ...]
    system_libraries: tuple[tuple[str, Path], ...]  # (file name in the artifact, the file it was copied from)
    runtime: bool = False  # the suite's runtime (from its wheel, or a checkout of the suite)


def shipped(sources: Iterable[tuple[str, Path]], site: Iterable[Path] | None = None) -> Shipped:
    """``sources`` (each artifact file with the file it came from) by owner: the distributions found on
    ``site`` (default: this environment's), the interpreter's prefix, else the system."""
    found = list(metadata.distributions(path=[str(p) for p in site]) if site is not None else metadata.distributions())
    owners: dict[Path, metadata.Distribution] = {}
    for dist in found:
        base = Path(str(dist.locate_file(""))).resolve()
        for file in dist.files or ():
            owners.setdefault((base / str(file)).resolve(), dist)
    python_roots = {Path(p).resolve() for p in (sys.base_prefix, sys.prefix, sysconfig.get_config_var("LIBDIR")) if p}
    distributions: dict[str, metadata.Distribution] = {}
    system: dict[str, Path] = {}
    runtime = False
    for dest, source in sources:
        resolved = source.resolve()
        owner = owners.get(resolved)
        name = canonicalize_name(owner.metadata["Name"] or "") if owner is not None else ""
        file_name = PurePosixPath(dest.replace("\\", "/")).name
        if file_name.lower() in VC_RUNTIME:  # Microsoft's terms, whoever shipped the DLL (python.org, a wheel)
            system.setdefault(file_name, source)
        if name in SUITE_DISTRIBUTIONS or (owner is None and RUNTIME_PACKAGE in resolved.parts):
            runtime = True  # the same whether it came from the runtime's wheel or the suite's checkout
        elif owner is not None:
            if name not in FREEZERS:
                distributions.setdefault(name, owner)
        elif not any(resolved.is_relative_to(root) for root in python_roots) and is_native(dest):
            system.setdefault(PurePosixPath(dest.replace("\\", "/")).name, source)
    ordered = tuple(distributions[k] for k in sorted(distributions))
    return Shipped(ordered, tuple(sorted(system.items())), runtime)


def notices(what: Shipped, platform: str = sys.platform) -> dict[str, bytes]:
    """Every file of ``licenses/`` (by path under it) for ``what``: the texts and ``INDEX.txt``.
    :class:`LicenseMissingError` names the first thing with no text."""
    files: dict[str, bytes] = {}
    index = [
        "Third-party notices: everything this application ships, its licence, and the files here that carry",
        "its licence texts (paths relative to this folder).",
        "",
    ]
    for dist in what.distributions:
        texts, licence, extra = _distribution_texts(dist)
        folder = f"{canonicalize_name(dist.metadata['Name'] or '')}-{dist.version}"
        index.append(f"{dist.metadata['Name']} {dist.version}: {licence}")
        for name, data in texts.items():
            files[f"{folder}/{name}"] = data
            index.append(f"    {folder}/{name}")
        index += [f"    {folder}/{line}" if line.startswith("sboms/") else f"    {line}" for line in extra]
    if what.runtime:
        files["embedding-runtime/LICENSE"] = (STANDARD_TEXTS / "suite-MIT.txt").read_bytes()
        index += ["embedding-runtime (the suite's runtime, in every artifact): MIT", "    embedding-runtime/LICENSE"]
    python = _python_license(platform)
    files["python/LICENSE.txt"] = python.read_bytes()
    version = ".".join(map(str, sys.version_info[:3]))
    index += [f"Python {version} (the interpreter and its standard library): PSF-2.0", "    python/LICENSE.txt"]
    for library, source in what.system_libraries:
        package, _licence, texts = _system_texts(library, source, platform)
        index.append(f"{library}: {package}")
        for name, data in texts.items():
            files[name] = data
            index.append(f"    {name}")
    files[INDEX_FILE] = ("\n".join(index) + "\n").encode()
    return files


def declared_licences(dist: metadata.Distribution) -> tuple[tuple[str, ...], bool]:
    """The licence a distribution declares, and whether as an expression or short name (``True``: its
    SPDX ``License-Expression``, else its short ``License`` field) or only as classifier names."""
    meta = dist.metadata
    if expression := _field(meta, "License-Expression"):
        return (expression,), True
    # Short names as they are; a whole licence text by its first line ("MIT License").
    declared = (_field(meta, "License") or "").strip().split("\n")[0].strip()
    if declared and len(declared) <= 80:
        return (declared,), True
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return tuple(classifiers), False


def licence_of(dist: metadata.Distribution) -> str | None:
    """The licence a distribution declares, as one line (``None``: it declares none)."""
    return " AND ".join(declared_licences(dist)[0]) or None


def _field(meta: metadata.PackageMetadata, name: str) -> str | None:
    values = meta.get_all(name) or []
    return str(values[0]) if values else None


def _distribution_texts(dist: metadata.Distribution) -> tuple[dict[str, bytes], str, list[str]]:
    """(file name -> text, the licence, extra index lines) of one distribution."""
    name = canonicalize_name(dist.metadata["Name"] or "")
    base = Path(str(dist.locate_file("")))
    texts: dict[str, bytes] = {}
    extra: list[str] = []
    declared = {str(v) for v in dist.metadata.get_all("License-File") or []}
    for file in dist.files or ():
        parts = PurePosixPath(str(file)).parts
        if len(parts) < 2 or not parts[0].endswith(".dist-info"):
            continue
        inside = PurePosixPath(*parts[1:]).as_posix()
        licensed = (
            inside.startswith("licenses/") or inside in declared or parts[1].upper().startswith(_METADATA_TEXT_PREFIXES)
        )
        if licensed:
            texts[inside.removeprefix("licenses/")] = (base / str(file)).read_bytes()
        elif inside.startswith("sboms/"):
            data = (base / str(file)).read_bytes()
            texts[inside] = data
            extra += _crates(data, inside)
    for relative in PACKAGE_NOTICES.get(name, ()):
        path = base / relative
        if path.is_file():
            texts[PurePosixPath(relative).name] = path.read_bytes()
    licence = licence_of(dist) or _sbom_licence(texts) or "not declared"
    if not any(not key.startswith("sboms/") for key in texts):
        standard = _standard_text(licence)
        if standard is None:
            raise LicenseMissingError(
                f"{dist.metadata['Name']} {dist.version} ships no licence text and declares {licence!r}, which has "
                f"no standard text in {STANDARD_TEXTS}: add its text there, or stop shipping it"
            )
        copyright_line = _sbom_copyright(texts) or "(no copyright line in its metadata or SBOM)"
        note = (
            f"{dist.metadata['Name']} {dist.version} ships no licence file. Its metadata and shipped SBOM name the "
            f"licence {licence}.\nCopyright: {copyright_line}\nThe licence's standard text follows.\n\n"
        )
        texts[f"{standard.stem}.txt"] = note.encode() + standard.read_bytes()
    return dict(sorted(texts.items())), licence, extra


def _standard_text(licence: str) -> Path | None:
    for candidate in sorted(STANDARD_TEXTS.glob("*.txt")):
        if candidate.stem != "suite-MIT" and candidate.stem.lower() in licence.lower().replace(" software license", ""):
            return candidate
    if "apache" in licence.lower():
        return STANDARD_TEXTS / "Apache-2.0.txt"
    return None


def _sboms(texts: Mapping[str, bytes]) -> list[dict[str, Any]]:
    found = []
    for name, data in texts.items():
        if name.startswith("sboms/"):
            try:
                document = json.loads(data)
            except ValueError:
                continue
            if isinstance(document, dict):
                found.append(document)
    return found


def _sbom_licence(texts: Mapping[str, bytes]) -> str | None:
    for document in _sboms(texts):
        for entry in document.get("metadata", {}).get("component", {}).get("licenses", []) or []:
            if value := entry.get("expression") or entry.get("license", {}).get("id"):
                return str(value)
    return None


def _sbom_copyright(texts: Mapping[str, bytes]) -> str | None:
    for document in _sboms(texts):
        authors = document.get("metadata", {}).get("authors") or []
        names = [f"{a.get('name')} <{a['email']}>" if a.get("email") else str(a.get("name")) for a in authors]
        if names:
            return ", ".join(names)
    return None


def _crates(data: bytes, name: str) -> list[str]:
    """The components a shipped CycloneDX SBOM lists (the statically linked Rust crates), one line each."""
    try:
        document = json.loads(data)
    except ValueError:
        return [f"{name}: not readable as JSON"]
    lines = []
    for component in document.get("components", []) if isinstance(document, dict) else []:
        licences = [e.get("expression") or e.get("license", {}).get("id") or "?" for e in component.get("licenses", [])]
        lines.append(f"  links in {component.get('name')} {component.get('version')}: {' AND '.join(licences) or '?'}")
    return [f"{name} lists {len(lines)} statically linked components:", *lines] if lines else []


def _python_license(platform: str) -> Path:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for candidate in (stdlib / "LICENSE.txt", Path(sys.base_prefix) / "LICENSE.txt", Path(sys.base_prefix) / "LICENSE"):
        if candidate.is_file():
            return candidate
    raise LicenseMissingError(f"this interpreter has no LICENSE.txt (looked in {stdlib} and {sys.base_prefix})")


def system_licences(what: Shipped, platform: str = sys.platform) -> dict[str, str]:
    """The licence of each system library (by file name), for the SBOM: a Debian copyright file's first
    ``License:`` field, else where its text is under ``licenses/``."""
    return {library: _system_texts(library, source, platform)[1] for library, source in what.system_libraries}


def _system_texts(library: str, source: Path, platform: str) -> tuple[str, str, dict[str, bytes]]:
    """(what provides ``library``, its licence, its licence files by path under licenses/)."""
    if platform == "win32" and library.lower() in VC_RUNTIME:
        note = (
            f"{library} is part of the Microsoft Visual C++ Redistributable, which Microsoft permits applications to "
            "redistribute under the Microsoft Software License Terms for Visual Studio "
            "(https://visualstudio.microsoft.com/license-terms/), as the Python installation it came from does.\n"
        )
        licence = "Microsoft Software License Terms (Visual C++ Redistributable)"
        return "the Microsoft Visual C++ Redistributable", licence, {f"system/{library}.txt": note.encode()}
    package = _dpkg_package(source)
    if package is not None:
        copyright_file = Path("/usr/share/doc") / package / "copyright"
        if copyright_file.is_file():
            text = copyright_file.read_bytes()
            fields = [
                line[8:].strip() for line in text.decode(errors="replace").splitlines() if line.startswith("License:")
            ]
            licence = fields[0] if fields and fields[0] else f"see licenses/system/{package}/copyright"
            return f"Debian package {package}", licence, {f"system/{package}/copyright": text}
    package = _rpm_package(source)
    if package is not None:
        folder = Path("/usr/share/licenses") / package
        texts = {f"system/{package}/{p.name}": p.read_bytes() for p in sorted(folder.glob("*")) if p.is_file()}
        if texts:
            return f"RPM package {package}", f"see licenses/system/{package}/", texts
    raise LicenseMissingError(
        f"{library} (copied from {source}) belongs to no distribution and no system package found here "
        "(dpkg -S, rpm -qf): its licence cannot be shipped; exclude it or install it from a package"
    )


def _candidates(source: Path) -> list[str]:
    """The paths a package database may know a library by (usrmerge: /lib and /usr/lib; the link and its file)."""
    paths = {str(source), str(source.resolve())}
    for path in list(paths):
        if path.startswith("/usr/lib/"):
            paths.add(path.removeprefix("/usr"))
        elif path.startswith("/lib"):
            paths.add("/usr" + path)
    return sorted(paths)


def _dpkg_package(source: Path) -> str | None:
    if shutil.which("dpkg") is None:
        return None
    for path in _candidates(source):
        result = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True, check=False, timeout=60)
        if result.returncode == 0 and ":" in result.stdout:
            return result.stdout.split(":", 1)[0].split(",")[0].strip()
    return None


def _rpm_package(source: Path) -> str | None:
    if shutil.which("rpm") is None:
        return None
    for path in _candidates(source):
        result = subprocess.run(
            ["rpm", "-qf", "--qf", "%{NAME}", path], capture_output=True, text=True, check=False, timeout=60
        )
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    return None


def write_notices(dist: Path, files: Mapping[str, bytes]) -> None:
    """``licenses/`` at the artifact's top, as :func:`notices` made it (an earlier one replaced)."""
    folder = dist / LICENSES_FOLDER
    shutil.rmtree(folder, ignore_errors=True)
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
