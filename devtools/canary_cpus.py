"""`nox -s canary-cpus`: how well int8 agrees with fp32 on the probe texts, on this CPU and on an
AVX2-only one (qemu-user emulating a Haswell), for the fixtures and for "the same model, x % off".

Linux only and opt-in (it installs Debian's qemu-user when missing), never part of the tests:
the figures it prints chose the runtime's ``INT8_CPU_MARGIN`` (embedding_runtime/_probe.py), the
room an honest int8 needs on another CPU below the build's own figure. It also shows the canary
at work: the floor a build would record, and whether each model passes it on each CPU.

    python -m devtools.canary_cpus
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from build_hooks.pipeline_steps import format_table
from devtools.demo_project import ARTIFACT_SPEC, PROFILE_ID
from devtools.fixture_model import FixtureSpec, write_fixture_repo
from embedding_runtime import EmbeddingService, ModelRoot, ProfileContract
from embedding_runtime.build_api import INT8_CPU_MARGIN, PROBE_TEXTS, THREADS_ENV, VARIANT_ENV, get_profile

QEMU = "qemu-x86_64"
EMULATED_CPU = "Haswell"  # AVX2, no AVX-512, no VNNI: onnxruntime's u8s8 AVX2 int8 kernels
FIXTURES = {
    "demo model, demo profile (768 wide)": ARTIFACT_SPEC,
    "32-wide fixture": FixtureSpec(seed=1),
}
NOISE = (0.05, 0.10, 0.15)


def contract(spec: FixtureSpec) -> ProfileContract:
    """The demo's own profile for the demo's model (so its figures are the ones its build records); a
    small last-token contract for the 32-wide fixture."""
    if spec == ARTIFACT_SPEC:
        return dataclasses.replace(get_profile(PROFILE_ID), profile_id="canary-v1")
    return ProfileContract("canary-v1", spec.hidden, (spec.hidden,), "last_token", max_tokens=64,
                           document_prompt="Document: ", batch_token_budget=256)  # fmt: skip


def probe_vectors(folder: Path, spec: FixtureSpec, variant: str) -> np.ndarray:
    env = {VARIANT_ENV: variant, THREADS_ENV: "1"}
    service = EmbeddingService(contract(spec), roots=[ModelRoot(folder.parent, "bundled")], env=env)
    return np.asarray(service.embed_documents(list(PROBE_TEXTS)))


def emulated(folder: Path, spec: FixtureSpec, variant: str) -> np.ndarray:
    """The same vectors from a child running under qemu as an AVX2-only CPU."""
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from devtools.canary_cpus import probe_vectors\n"
        "from devtools.fixture_model import FixtureSpec\n"
        "fields = json.loads(sys.argv[2])\n"
        "spec = FixtureSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})\n"
        "print(json.dumps(probe_vectors(Path(sys.argv[1]), spec, sys.argv[3]).tolist()))\n"
    )
    fields = {k: list(v) if isinstance(v, tuple) else v for k, v in spec.__dict__.items()}
    command = [QEMU, "-cpu", EMULATED_CPU, sys.executable, "-c", code, str(folder), json.dumps(fields), variant]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=3600, cwd=Path.cwd())
    return np.asarray(json.loads(result.stdout.splitlines()[-1]), dtype=np.float32)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).min())


def main() -> int:
    if shutil.which(QEMU) is None:
        if os.geteuid() != 0:
            print("ERROR: install qemu-user first: sudo apt-get install -y qemu-user", file=sys.stderr)
            return 2
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "qemu-user"], check=True)
    rows = [("model", "int8 vs fp32, this CPU", f"int8 vs fp32, emulated {EMULATED_CPU}", "floor a build here records")]
    spreads = []
    with tempfile.TemporaryDirectory(prefix="canary-cpus-") as scratch:
        for label, spec in FIXTURES.items():
            folder = Path(scratch) / label.split()[0] / "canary-v1"
            write_fixture_repo(folder, spec)
            fp32 = probe_vectors(folder, spec, "fp32")
            here = min_cosine(probe_vectors(folder, spec, "int8"), fp32)
            there = min_cosine(emulated(folder, spec, "int8"), fp32)
            floor = here - INT8_CPU_MARGIN
            spreads.append(here - there)
            rows.append(
                (label, f"{here:.4f}", f"{there:.4f} ({'passes' if there >= floor else 'FAILS'})", f"{floor:.4f}")
            )
            if spec is ARTIFACT_SPEC:
                for noise in NOISE:
                    noisy = Path(scratch) / f"noisy-{noise}" / "canary-v1"
                    write_fixture_repo(noisy, FixtureSpec(**{**spec.__dict__, "noise": noise}))
                    agree = min_cosine(probe_vectors(noisy, spec, "int8"), fp32)
                    verdict = "passes" if agree >= floor else "rejected"
                    rows.append((f"  the same, {noise:.0%} noise (int8)", f"{agree:.4f} ({verdict})", "-", "-"))
    print(format_table(rows))
    print(f"\nwidest spread (this CPU - emulated): {max(spreads):+.4f}; INT8_CPU_MARGIN = {INT8_CPU_MARGIN}")
    return 0 if max(spreads) <= INT8_CPU_MARGIN else 1


if __name__ == "__main__":
    sys.exit(main())
