"""Canary vectors: a folder whose weights do not reproduce the build's probe vectors never serves."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from devtools.fixture_model import FixtureSpec, fixture_files
from embedding_runtime import EmbeddingService, ModelRoot
from embedding_runtime._cpu import CpuFacts
from embedding_runtime.build_api import PROBE_TEXTS, ProbeRecord
from tests.runtime_fixtures import FIXTURE_PROFILE, write_profile

VNNI = CpuFacts("x86_64", frozenset({"AVX2", "AVX512VNNI"}), "GenuineIntel", 6, 106, "Xeon")
FLOOR = 0.80
OTHER_PIN = "b" * 40  # an override of another revision: only the canary can judge its weights


@pytest.fixture
def record(tmp_path: Path, repo_files_a: dict[str, bytes]) -> ProbeRecord:
    """What the build records: fp32 vectors of the probe texts from the prepared (good) profile."""
    write_profile(tmp_path / "prepared", repo_files_a)
    service = EmbeddingService(
        FIXTURE_PROFILE,
        roots=[ModelRoot(tmp_path / "prepared", "source")],
        env={"EMBEDDING_RUNTIME_VARIANT": "fp32", "EMBEDDING_RUNTIME_THREADS": "1"},
    )
    return ProbeRecord(FIXTURE_PROFILE.profile_id, PROBE_TEXTS, service.embed_documents(list(PROBE_TEXTS)), FLOOR)


def scrambled(files: dict[str, bytes], *variants: str) -> dict[str, bytes]:
    """The same layout with another model's weights for ``variants``: loads fine, computes garbage."""
    other = fixture_files(FixtureSpec(seed=99))
    names = {"fp32": ("onnx/model.onnx", "onnx/model.onnx_data"), "int8": ("onnx/model_quantized.onnx",)}
    names["int8"] += ("onnx/model_quantized.onnx_data",)
    return {**files, **{name: other[name] for variant in variants for name in names[variant]}}


def service(roots: list[ModelRoot], record: ProbeRecord | None, **env: str) -> EmbeddingService:
    return EmbeddingService(FIXTURE_PROFILE, roots=roots, env=env, cpu=VNNI, probe_record=record)


def test_an_override_with_wrong_weights_is_skipped_and_the_bundle_serves(
    tmp_path: Path, repo_files_a: dict[str, bytes], record: ProbeRecord
) -> None:
    """Same sizes, a consistent marker, unit vectors: only the canary can tell."""
    write_profile(tmp_path / "override", scrambled(repo_files_a, "int8"), revision=OTHER_PIN)
    write_profile(tmp_path / "bundled", repo_files_a)
    roots = [ModelRoot(tmp_path / "override", "override"), ModelRoot(tmp_path / "bundled", "bundled")]
    chosen = service(roots, record)
    vectors = chosen.embed_documents(["hello"])
    resolution = chosen.explain()["resolution"]
    assert resolution["kind"] == "bundled" and resolution["variant"] == "int8"
    assert resolution["skipped"][0]["reason"].startswith("canary_mismatch: int8 probe vectors agree")
    good = service([ModelRoot(tmp_path / "bundled", "bundled")], None).embed_documents(["hello"])
    np.testing.assert_allclose(vectors, good, atol=1e-6)


def test_without_the_canary_the_wrong_weights_would_have_served(tmp_path: Path, repo_files_a: dict[str, bytes]) -> None:
    write_profile(tmp_path / "override", scrambled(repo_files_a, "int8"), revision=OTHER_PIN)
    write_profile(tmp_path / "bundled", repo_files_a)
    roots = [ModelRoot(tmp_path / "override", "override"), ModelRoot(tmp_path / "bundled", "bundled")]
    unproven = service(roots, None)
    unproven.load()
    report = unproven.explain()
    assert report["resolution"]["kind"] == "override"
    assert report["canary"]["state"] == "unproven" and "no probe record" in report["canary"]["detail"]


def test_int8_failing_everywhere_falls_back_to_fp32_with_the_reason(
    tmp_path: Path, repo_files_a: dict[str, bytes], record: ProbeRecord
) -> None:
    write_profile(tmp_path / "bundled", scrambled(repo_files_a, "int8"))
    chosen = service([ModelRoot(tmp_path / "bundled", "bundled")], record)
    chosen.load()
    report = chosen.explain()
    assert chosen.variant == "fp32"
    assert "int8 failed its canary in every folder" in report["resolution"]["variant_reason"]
    assert report["canary"]["state"] == "proven"


def test_fp32_weights_must_agree_almost_exactly(
    tmp_path: Path, repo_files_a: dict[str, bytes], record: ProbeRecord
) -> None:
    write_profile(tmp_path / "bundled", scrambled(repo_files_a, "fp32", "int8"))
    chosen = service([ModelRoot(tmp_path / "bundled", "bundled")], record, EMBEDDING_RUNTIME_VARIANT="fp32")
    with pytest.raises(Exception, match="canary_mismatch"):
        chosen.load()
    assert chosen.disabled_reason == "canary_mismatch"


def test_the_canary_runs_within_the_load_and_reports_its_cost(
    tmp_path: Path, repo_files_a: dict[str, bytes], record: ProbeRecord
) -> None:
    """Measured, not held to a limit: the canary seconds are part of the load and reported by doctor."""
    write_profile(tmp_path / "bundled", repo_files_a)
    chosen = service([ModelRoot(tmp_path / "bundled", "bundled")], record)
    started = time.perf_counter()
    chosen.load()
    load_seconds = time.perf_counter() - started
    canary = chosen.explain()["canary"]
    assert canary["state"] == "proven" and canary["texts"] == len(PROBE_TEXTS)
    assert 0 < canary["seconds"] <= load_seconds


def test_the_int8_floor_is_the_builds_own_figure_less_the_cpu_margin(record: ProbeRecord) -> None:
    from dataclasses import replace

    from embedding_runtime._probe import INT8_CPU_MARGIN

    assert record.int8_floor == FLOOR, "no int8 figure recorded: the configuration's floor"
    calibrated = replace(record, int8_agreement=0.97)
    assert calibrated.int8_floor == pytest.approx(0.97 - INT8_CPU_MARGIN)
    assert replace(record, int8_agreement=0.81).int8_floor == FLOOR, "never below the absolute floor"


def test_a_damaged_override_with_noise_is_caught_by_the_calibrated_floor(
    tmp_path: Path, repo_files_a: dict[str, bytes], record: ProbeRecord
) -> None:
    """The 32-wide fixture's int8 with 20 % noise (min cosine 0.91 on the probes): above the absolute
    floor, below the build's figure less the CPU margin (0.9998 - 0.03). This small model shrugs off
    10 % noise (0.976, as close as two honest CPUs); the demo artifact's test covers the 10 % case."""
    noisy = fixture_files(FixtureSpec(seed=1, noise=0.20))
    noisy_int8 = {n: noisy[n] for n in noisy if "quantized" in n}
    write_profile(tmp_path / "override", {**repo_files_a, **noisy_int8}, revision=OTHER_PIN)
    write_profile(tmp_path / "bundled", repo_files_a)
    genuine = EmbeddingService(FIXTURE_PROFILE, roots=[ModelRoot(tmp_path / "bundled", "bundled")],
                               env={"EMBEDDING_RUNTIME_VARIANT": "int8", "EMBEDDING_RUNTIME_THREADS": "1"})  # fmt: skip
    agreement = float((genuine.embed_documents(list(PROBE_TEXTS)) * record.fp32).sum(axis=1).min())
    calibrated = ProbeRecord(record.profile_id, record.texts, record.fp32, FLOOR, agreement)
    roots = [ModelRoot(tmp_path / "override", "override"), ModelRoot(tmp_path / "bundled", "bundled")]
    service = EmbeddingService(FIXTURE_PROFILE, roots=roots, env={}, cpu=VNNI, probe_record=calibrated)
    service.load()
    resolution = service.explain()["resolution"]
    assert (resolution["kind"], resolution["variant"]) == ("bundled", "int8"), resolution
    assert resolution["skipped"][0]["reason"].startswith("canary_mismatch"), resolution["skipped"]


def test_an_override_naming_the_bundled_pin_with_other_bytes_is_skipped_without_loading(
    tmp_path: Path, repo_files_a: dict[str, bytes], record: ProbeRecord
) -> None:
    write_profile(tmp_path / "override", scrambled(repo_files_a, "int8"))  # the bundled revision, other bytes
    write_profile(tmp_path / "bundled", repo_files_a)
    roots = [ModelRoot(tmp_path / "override", "override"), ModelRoot(tmp_path / "bundled", "bundled")]
    chosen = service(roots, record)
    chosen.load()
    skipped = chosen.explain()["resolution"]["skipped"]
    assert skipped[0]["reason"].startswith("forged_marker: it names the bundled model's pin")
    assert "onnx/model_quantized.onnx" in skipped[0]["reason"]
