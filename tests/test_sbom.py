"""Each artifact's SBOM describes what is inside it, checked against the dist itself."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from build_hooks.freezing.sbom import sbom_components, sbom_files
from build_hooks.freezing.selection import is_native
from build_hooks.freezing.target import PYINSTALLER_CONTENTS, sbom_path
from build_hooks.verification.verify import verify
from devtools.demo_project import ARTIFACT_REPO, ARTIFACT_REVISION, Project
from embedding_runtime.build_api import DATA_FOLDER, HTTP_CLIENTS
from tests.artifacts import linked_copy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a cold Nuitka build alone takes ~5 min
# What every artifact runs on; each must be listed with the version the build environment has. (regex,
# tiktoken's dependency, is left out by the launcher's exclude-modules: tiktoken's teaching module alone uses it.)
RUNTIME_DISTRIBUTIONS = {"numpy", "onnxruntime", "tokenizers", "tiktoken"}


def document(dist: Path) -> dict[str, Any]:
    return dict(json.loads(sbom_path(dist).read_text()))


def pypi(doc: Mapping[str, Any]) -> dict[str, str]:
    """The Python distributions the SBOM lists: normalised name -> version."""
    return {
        c["name"].lower().replace("_", "-"): c["version"]
        for c in sbom_components(doc)
        if c.get("purl", "").startswith("pkg:pypi/")
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(params=["pyinstaller", "nuitka"])
def artifact(request: pytest.FixtureRequest) -> Path:
    return Path(request.getfixturevalue(f"{request.param}_artifact"))


def test_each_sbom_is_valid_cyclonedx(artifact: Path) -> None:
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom_path(artifact).read_text())
    assert errors is None, errors


def test_the_sbom_names_every_native_and_data_file_by_real_sha256(artifact: Path, artifact_project: Project) -> None:
    """Hashed here from the dist itself, not taken from the manifest the SBOM was made from."""
    doc = document(artifact)
    inside = {
        p.relative_to(artifact).as_posix(): p
        for p in artifact.rglob("*")
        if p.is_file() and (is_native(p.name) or DATA_FOLDER in p.relative_to(artifact).parts[:2])
    }
    assert {rel: sha256(p) for rel, p in inside.items()} == sbom_files(doc)
    executable = artifact_project.target.executable(artifact)
    assert doc["metadata"]["component"]["hashes"] == [{"alg": "SHA-256", "content": sha256(executable)}]
    assert doc["metadata"]["component"]["name"] == executable.name


def test_the_model_and_the_encodings_are_components_with_pin_and_licence(
    artifact: Path, artifact_project: Project
) -> None:
    components = sbom_components(document(artifact))
    (model,) = [c for c in components if c["type"] == "machine-learning-model"]
    assert (model["name"], model["version"]) == (ARTIFACT_REPO, ARTIFACT_REVISION)
    assert model["purl"] == f"pkg:huggingface/{ARTIFACT_REPO}@{ARTIFACT_REVISION}"
    assert model["licenses"] == [{"license": {"id": artifact_project.target.config.model_license}}]
    profile = sorted(
        p.relative_to(artifact_project.profile).as_posix() for p in artifact_project.profile.rglob("*") if p.is_file()
    )
    assert sorted(f["name"] for f in model["components"]) == profile
    (encoding,) = [c for c in components if c["type"] == "data" and c["name"] == "o200k_base"]
    (blob,) = encoding["components"]
    assert blob["externalReferences"][0]["url"].endswith("o200k_base.tiktoken")


def test_pyinstaller_sbom_lists_exactly_the_distributions_whose_modules_it_collected(
    pyinstaller_artifact: Path,
) -> None:
    """The .pyc files and extension modules in _internal/, mapped to their distributions by the
    standard library's own table: the same set as the SBOM's, versions as installed."""
    contents = pyinstaller_artifact / PYINSTALLER_CONTENTS
    owners = metadata.packages_distributions()
    tops = {
        p.relative_to(contents).parts[0].split(".")[0]
        for p in contents.rglob("*")
        if p.suffix == ".pyc" or (is_native(p.name) and p.parent != contents)
    }
    found = {name.lower().replace("_", "-") for top in tops for name in owners.get(top, ())}
    listed = pypi(document(pyinstaller_artifact))
    assert set(listed) - {"pyinstaller"} == found - {"desktop-embedding-pipeline"}
    assert set(listed) >= RUNTIME_DISTRIBUTIONS
    assert all(listed[name] == metadata.version(name) for name in listed)


def test_nuitka_sbom_lists_what_it_compiled_and_no_http_client(nuitka_artifact: Path) -> None:
    listed = pypi(document(nuitka_artifact))
    assert RUNTIME_DISTRIBUTIONS | {"nuitka"} <= set(listed)
    assert "regex" not in listed, "what exclude-modules leaves out is not listed"
    http = {name.replace("_", "-") for name in HTTP_CLIENTS} | {"huggingface-hub"}
    assert not http & set(listed), "the artifact leaves HTTP clients out; its SBOM must not list them"
    # Every native library sits under the distribution it came from, where it has one.
    numpy = next(c for c in sbom_components(document(nuitka_artifact)) if c["name"] == "numpy")
    assert any(f["name"].startswith("_multiarray_umath") for f in numpy["components"])


def test_a_stale_or_missing_sbom_fails_verify(
    artifact_project: Project, pyinstaller_artifact: Path, tmp_path: Path
) -> None:
    dist = linked_copy(pyinstaller_artifact, tmp_path / "stale" / "local-notes")
    doc = document(dist)
    library = next(
        c for c in sbom_components(doc) if c["type"] == "library" and c.get("evidence") and "onnxruntime" in c["name"]
    )
    library["hashes"][0]["content"] = "0" * 64
    sbom_path(dist).write_text(json.dumps(doc))
    verdict = verify(dist, artifact_project.target, run_self_check=False)
    changed = library["evidence"]["occurrences"][0]["location"]
    assert not verdict.ok and any(changed in f and "SBOM" in f for f in verdict.failures), verdict.failures

    sbom_path(dist).unlink()
    verdict = verify(dist, artifact_project.target, run_self_check=False)
    assert any("cdx.json is missing" in f for f in verdict.failures), verdict.failures
