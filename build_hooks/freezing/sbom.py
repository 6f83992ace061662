"""A CycloneDX SBOM per artifact, from what its freezer actually collected.

The build environment's package list says what *could* ship; this says what did:
the Python modules the freezer put in (PyInstaller's analysis, Nuitka's
compilation report) mapped to the distributions that own them, every native
library in the dist, the model profile and the tiktoken encodings. Every file
component carries its place in the dist and the sha256 the build's manifest
recorded, so nothing is hashed twice and verify can hold the SBOM to the dist.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.component_evidence import ComponentEvidence, Occurrence
from cyclonedx.model.license import LicenseExpression
from cyclonedx.output import make_outputter
from cyclonedx.schema import OutputFormat, SchemaVersion
from packageurl import PackageURL

from build_hooks.freezing.collection import Collection
from build_hooks.freezing.licenses import declared_licences
from build_hooks.freezing.manifest import RECORD_MAX_BYTES
from build_hooks.freezing.provenance import source_date_epoch
from build_hooks.freezing.selection import is_native
from build_hooks.freezing.target import PYINSTALLER_CONTENTS, sbom_path
from embedding_runtime.build_api import (
    DATA_FOLDER,
    MODELS_FOLDER,
    TIKTOKEN_FOLDER,
    FileDigest,
    read_json_record,
    read_tiktoken_manifest,
)

if TYPE_CHECKING:
    from build_hooks.freezing.plan import BuildPlan

SCHEMA_VERSION = SchemaVersion.V1_6
PROPERTY_PREFIX = "embedding-pipeline"


@dataclass
class _Owners:
    """Which installed distribution owns a top-level name (package, module or folder like numpy.libs)."""

    by_top_level: dict[str, metadata.Distribution] = field(default_factory=dict)
    # Native libraries by file name: Nuitka moves vendored ones (numpy.libs/…) to the dist's root.
    by_library_name: dict[str, metadata.Distribution] = field(default_factory=dict)

    @classmethod
    def of_environment(cls) -> _Owners:
        owners = cls()
        for dist in metadata.distributions():
            for file in dist.files or ():
                parts = PurePosixPath(str(file)).parts
                if not parts or parts[0] == ".." or parts[0].endswith((".dist-info", ".egg-info", ".data")):
                    continue
                top = parts[0] if len(parts) > 1 else parts[0].split(".")[0]
                if top not in ("__pycache__", "") and not top.endswith(".pth"):
                    owners.by_top_level.setdefault(top, dist)
                if is_native(parts[-1]):
                    owners.by_library_name.setdefault(parts[-1], dist)
        return owners

    def owner(self, top_level: str, file_name: str = "") -> metadata.Distribution | None:
        return self.by_top_level.get(top_level) or self.by_library_name.get(file_name)


def build_sbom(
    plan: BuildPlan,
    dist: Path,
    collection: Collection,
    files: Mapping[str, FileDigest],
    licences: Mapping[str, str] | None = None,
) -> Bom:
    """The SBOM of ``dist``: distributions, native libraries, model and encodings, from the manifest."""
    owners = _Owners.of_environment()
    contents = f"{PYINSTALLER_CONTENTS}/" if collection.builder == "pyinstaller" else ""
    executable = plan.target.executable(dist).name
    root = Component(
        name=plan.target.config.app_name,
        type=ComponentType.APPLICATION,
        bom_ref=plan.target.config.app_name,
        hashes=[_sha256(files[executable])] if executable in files else None,
        properties=[Property(name=f"{PROPERTY_PREFIX}:builder", value=collection.builder)],
    )
    distributions: dict[str, Component] = {}
    first_party: dict[str, Component] = {}
    stdlib = set(sys.stdlib_module_names) | {"__main__", "__future__"}

    def distribution(dist_meta: metadata.Distribution) -> Component:
        name = dist_meta.metadata["Name"]
        key = name.lower().replace("_", "-")
        if key not in distributions:
            distributions[key] = _distribution_component(dist_meta)
        return distributions[key]

    # The freezer's own runtime (bootloader, compiled helpers) is in every artifact it makes.
    freezer = _installed(collection.builder)
    if freezer is not None:
        distribution(freezer)
    top_levels = {name.split(".")[0] for name in collection.modules}
    for top in sorted(top_levels - stdlib):
        owner = owners.owner(top)
        if owner is not None:
            distribution(owner)
        elif top.isidentifier() and not top.startswith(("__", "_sysconfigdata", "pyimod", "_pyi", "pyi_")):
            # Neither a distribution's nor the interpreter's or a freezer's own helpers: the app's source.
            first_party[top] = Component(
                name=top,
                bom_ref=f"source:{top}",
                properties=[Property(name=f"{PROPERTY_PREFIX}:origin", value="project source")],
            )

    python = _python_component()
    native: list[Component] = []
    for relative, entry in sorted(files.items()):
        if not is_native(relative) or relative == executable:
            continue
        inside = relative.removeprefix(contents)
        component = _file_component(relative, entry, ComponentType.LIBRARY, PurePosixPath(relative).name)
        path = PurePosixPath(inside)
        in_package = len(path.parts) > 1 and "lib-dynload" not in path.parts
        top = path.parts[0] if in_package else path.name.split(".")[0]  # numpy.libs/…, or _json.cpython-311-…
        owner = owners.owner(top, path.name)
        if owner is not None:
            distribution(owner).components.add(component)
        elif top in stdlib or top.startswith("libpython"):
            python.components.add(component)  # the interpreter's extension modules and library
        else:
            if (licence := (licences or {}).get(path.name)) is not None:
                component.licenses.add(LicenseFactory().make_from_string(licence))
            native.append(component)  # system libraries the freezer copied in (libz, libssl, ...)

    data = f"{contents}{DATA_FOLDER}/"
    bom = Bom()
    bom.metadata.component = root
    # The same build gives the same serial number: derived from every file's hash.
    hashes = json.dumps({rel: entry.sha256 for rel, entry in sorted(files.items())})
    bom.serial_number = uuid.uuid5(uuid.NAMESPACE_URL, f"{plan.target.config.app_name}/{collection.builder}/{hashes}")
    top_components = [
        python,
        *distributions.values(),
        *first_party.values(),
        *native,
        *_data_components(plan, {k.removeprefix(data): v for k, v in files.items() if k.startswith(data)}, data),
    ]
    for component in top_components:
        bom.components.add(component)
    bom.register_dependency(root, top_components)
    bom.metadata.timestamp = _timestamp(plan.target.config.app_entry.parent)
    return bom


def sbom_document(
    plan: BuildPlan,
    dist: Path,
    collection: Collection,
    files: Mapping[str, FileDigest],
    licences: Mapping[str, str] | None = None,
) -> bytes:
    """The SBOM of ``dist`` from its manifest entries (``files``); ``licences`` names the licence of
    each system library, by file name."""
    bom = build_sbom(plan, dist, collection, files, licences or {})
    text: str = make_outputter(bom, OutputFormat.JSON, SCHEMA_VERSION).output_as_string(indent=1)
    return text.encode() + b"\n"


def read_sbom(dist: Path) -> dict[str, Any] | None:
    """The SBOM document beside ``dist``; ``None`` when it is missing or not JSON."""
    document = read_json_record(sbom_path(dist), RECORD_MAX_BYTES)
    return document if isinstance(document, dict) else None


def sbom_components(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every component of the document, nested ones included (:class:`ValueError` when a
    ``components`` is not a list of objects, as CycloneDX has it)."""
    found: list[Mapping[str, Any]] = []
    pending = _component_list(document)
    while pending:
        component = pending.pop()
        found.append(component)
        pending += _component_list(component)
    return found


def _component_list(holder: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    components = holder.get("components", [])
    if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
        raise ValueError("its components are not a list of objects")
    return list(components)


def sbom_files(document: Mapping[str, Any]) -> dict[str, str]:
    """Every file the document places in the dist: its path there -> sha256."""
    found: dict[str, str] = {}
    for component in sbom_components(document):
        sha = _sha256_of(component)
        for occurrence in component.get("evidence", {}).get("occurrences", ()):
            if sha is not None:
                found[occurrence["location"]] = sha
    return found


def sbom_problems(
    document: Mapping[str, Any] | None, path: Path, files: Mapping[str, FileDigest], executable: str
) -> list[str]:
    """The SBOM ``document`` (read from ``path``) against the verified manifest: the executable,
    every native and data file, with the same sha256, and nothing the artifact does not hold."""
    try:
        named = sbom_files(document or {})
        root_sha = _sha256_of((document or {})["metadata"]["component"])
    except (KeyError, TypeError, AttributeError, ValueError):
        document = None
    if document is None:
        return [f"{path} is missing or invalid: rebuild with the build step, which writes it"]
    problems = []
    if executable in files and root_sha != files[executable].sha256:
        problems.append(f"{executable}: the SBOM records another sha256 than the build")
    data = (f"{DATA_FOLDER}/", f"{PYINSTALLER_CONTENTS}/{DATA_FOLDER}/")
    described = {rel for rel in files if is_native(rel) or rel.startswith(data)} - {executable}
    problems += [f"{rel} is in the artifact but not in its SBOM" for rel in sorted(described - set(named))]
    for rel, sha in sorted(named.items()):
        if rel not in files:
            problems.append(f"{rel} is in the SBOM but not in the artifact")
        elif files[rel].sha256 != sha:
            problems.append(f"{rel}: the SBOM records another sha256 than the build")
    return problems


def _sha256_of(component: Mapping[str, Any]) -> str | None:
    return next((h["content"] for h in component.get("hashes", ()) if h.get("alg") == "SHA-256"), None)


# -- components ---------------------------------------------------------------------


def _distribution_component(dist: metadata.Distribution) -> Component:
    name, version = dist.metadata["Name"], dist.version
    return Component(
        name=name,
        version=version,
        bom_ref=f"pypi:{name.lower()}@{version}",
        purl=PackageURL(type="pypi", name=name.lower().replace("_", "-"), version=version),
        licenses=_licenses(dist),
    )


def _python_component() -> Component:
    version = ".".join(map(str, sys.version_info[:3]))
    return Component(
        name=sys.implementation.name,
        version=version,
        bom_ref=f"python@{version}",
        licenses=[LicenseExpression("PSF-2.0")],
        description="The Python interpreter and standard library frozen into the artifact",
    )


def _data_components(plan: BuildPlan, data: Mapping[str, FileDigest], prefix: str) -> list[Component]:
    """The model profile and the tiktoken encodings, each file under the component it belongs to."""
    components: list[Component] = []
    claimed: set[str] = set()
    models = f"{MODELS_FOLDER}/{plan.pin.profile_id}/"
    model_files = {rel: entry for rel, entry in data.items() if rel.startswith(models)}
    if model_files:
        pin = plan.pin
        namespace, _, name = pin.repo.rpartition("/")
        model = Component(
            name=pin.repo,
            version=pin.revision,
            type=ComponentType.MACHINE_LEARNING_MODEL,
            bom_ref=f"model:{pin.profile_id}",
            purl=PackageURL(type="huggingface", namespace=namespace or None, name=name, version=pin.revision),
            licenses=_named_license(plan.target.config.model_license),
            properties=[
                Property(name=f"{PROPERTY_PREFIX}:profile-id", value=pin.profile_id),
                Property(name=f"{PROPERTY_PREFIX}:variants", value=",".join(pin.variants)),
            ],
        )
        for rel, entry in sorted(model_files.items()):
            model.components.add(_file_component(prefix + rel, entry, ComponentType.FILE, rel.removeprefix(models)))
        components.append(model)
        claimed |= set(model_files)
    cache = f"{TIKTOKEN_FOLDER}/"
    cached = read_tiktoken_manifest(plan.target.config.tiktoken_cache) or []
    for encoding in plan.target.config.tiktoken_encodings:
        blobs = [b for b in cached if b.encoding == encoding]
        component = Component(name=encoding, type=ComponentType.DATA, bom_ref=f"tiktoken:{encoding}")
        for blob in blobs:
            rel = cache + blob.file
            if rel in data:
                file = _file_component(prefix + rel, data[rel], ComponentType.FILE, blob.file)
                file.external_references.add(
                    ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(blob.url))
                )
                component.components.add(file)
                claimed.add(rel)
        components.append(component)
    # The rest of data/: provenance, licence notice, probe record, the cache's own manifest.
    for rel, entry in sorted(data.items()):
        if rel not in claimed:
            components.append(_file_component(prefix + rel, entry, ComponentType.FILE, rel))
    return components


def _file_component(location: str, entry: FileDigest, kind: ComponentType, name: str) -> Component:
    return Component(
        name=name,
        type=kind,
        bom_ref=f"file:{location}",
        hashes=[_sha256(entry)],
        evidence=ComponentEvidence(occurrences=[Occurrence(location=location)]),
    )


def _sha256(entry: FileDigest) -> HashType:
    return HashType(alg=HashAlgorithm.SHA_256, content=entry.sha256)


def _licenses(dist: metadata.Distribution) -> list[Any] | None:
    """The distribution's licence: the SPDX expression if declared, else its short licence or classifiers."""
    names, expression = declared_licences(dist)
    factory = LicenseFactory()
    return [factory.make_from_string(n) if expression else factory.make_with_name(n) for n in names] or None


def _named_license(value: str) -> list[Any] | None:
    return [LicenseFactory().make_from_string(value)] if value else None


def _installed(name: str) -> metadata.Distribution | None:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def _timestamp(checkout: Path) -> datetime:
    """``SOURCE_DATE_EPOCH``, else the app's commit time (two clones of a commit give identical SBOMs),
    else, outside a checkout, the build time."""
    epoch = source_date_epoch(checkout)
    return datetime.now(UTC) if epoch is None else datetime.fromtimestamp(epoch, UTC)
