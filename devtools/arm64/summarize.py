"""The per-CPU table of `nox -s arm64-smoke` from /arm/out/<cpu>/*, and whether each row is as expected.

Run in the chroot (numpy is in /opt/venv): python summarize.py /arm/out cortex-a53 neoverse-n1 max.
Exit 1 when a row is not as expected: fp32 chosen on a CPU without the dot product (cortex-a53), int8
on the others, the x86 host's /proc/cpuinfo ignored with a reason, every command exit 0, verify PASS.
"""

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

X86_FEATURES = {"AVX2", "AVX512VNNI", "AVXVNNI"}
EXPECTED_VARIANT = {"cortex-a53": "fp32"}  # every other emulated CPU has ASIMDDP: int8
NOTES = """
Where qemu-user differs from real arm64 hardware:
- the emulator: {qemu}; Debian 12's qemu-user 7.2 computes onnxruntime's fused int8 kernels wrongly
  on `max` (I8MM): int8 agrees with fp32 at cosine -0.006 there (0.9996 under 10.0, and on the other
  CPUs), the artifact's canary falls back to fp32 and verify fails closed;
- no speed: every time above is emulation (about 50-100x native for compute); nothing here measures speed;
- no part's own defects: qemu implements the architecture (an instruction outside the emulated CPU's
  features does raise SIGILL), not a real part's errata, so a real part's crash in int8 kernels (what the
  int8 block list is for) cannot show here; qemu's `max` is implementer 0, part 0x051, no real part;
- /proc/cpuinfo: Debian 12's qemu 7.2 shows the x86 host's (the runtime ignores it, column "host
  cpuinfo"); 10.0 writes one for the emulated CPU (under 7.2 the harness bind-mounts a generated one);
- one emulated core per process; sysfs (cache topology, midr_el1) is the host's.
"""


def load(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
        return loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        return {}


def codes(path: Path) -> dict[str, int]:
    try:
        return {name: int(rc) for name, rc in (line.split() for line in path.read_text().splitlines() if line.strip())}
    except (OSError, ValueError):
        return {}


def row(out: Path, cpu: str) -> tuple[list[str], list[str]]:
    d = out / cpu
    hw, doc = load(d / "hwcap.json"), load(d / "doctor.json")
    src, art, can = load(d / "selfcheck-source.json"), load(d / "selfcheck-artifact.json"), load(d / "canary.json")
    host = load(d / "facts-host-cpuinfo.json").get("facts") or {}
    times = {**load(d / "times3.json"), **load(d / "times4.json")}
    rcs = {**codes(d / "rc3"), **codes(d / "rc4")}
    vectors = src.get("vectors", {})
    self_cos = (
        f"{float((np.array(vectors['int8']) * np.array(vectors['fp32'])).sum(1).min()):.4f}"
        if {"int8", "fp32"} <= set(vectors)
        else "-"
    )
    facts = doc.get("cpu") or {}
    variants = (
        (doc.get("resolution") or {}).get("variant"),
        (src.get("variant") or {}).get("chosen"),
        (art.get("variant") or {}).get("chosen"),
    )
    lines = (d / "verify.log").read_text().splitlines() if (d / "verify.log").exists() else []
    verdict = next((line.split(" verdict ", 1)[1].strip() for line in lines if " verdict " in line), "-")
    errors = [line.split(": ", 2)[-1] for line in lines if line.startswith("ERROR")]

    problems = [f"{name} exit {rc}" for name, rc in rcs.items() if rc != 0]
    want = EXPECTED_VARIANT.get(cpu, "int8")
    chosen = zip(("doctor", "source", "artifact"), variants, strict=True)
    problems += [f"{what} chose {got}, want {want}" for what, got in chosen if got != want]
    if not host.get("ignored") or X86_FEATURES & set(host.get("features", [])) or host.get("vendor"):
        problems.append(f"the host's /proc/cpuinfo was not ignored: {host}")
    if not facts.get("parts"):
        problems.append("doctor names no part")
    if verdict.split(" ", 1)[0] != "PASS" or errors:
        problems.append(f"verify {verdict}")
    cells = [
        cpu,
        " ".join(hw.get("features", [])),
        " / ".join(str(v) for v in variants),
        (doc.get("variant") or {}).get("reason", "-"),
        f"{', '.join(facts.get('parts', []))} {facts.get('model_name', '')!r}; {'+'.join(facts.get('sources', []))}",
        "ignored" if host.get("ignored") else "USED",
        str(can.get("int8_vs_fp32_min_cosine", "-")),
        self_cos,
        *(str(times.get(k, "-")) for k in ("doctor_s", "selfcheck_source_s", "canary_s", "selfcheck_artifact_s")),
        verdict
        + (f" ({times['verify_s']} s)" if "verify_s" in times else "")
        + ("; " + "; ".join(errors) if errors else ""),
        "ok" if not problems else "; ".join(problems),
    ]
    return cells, problems


def main(out: Path, cpus: list[str]) -> int:
    header = [
        "CPU", "AT_HWCAP (emulated)", "variant (doctor / src / artifact)", "reason", "parts, name; sources",
        "host cpuinfo", "probe int8~fp32", "self-check int8~fp32", "doctor s", "src self-check s", "canary s",
        "artifact self-check s", "verify", "as expected",
    ]  # fmt: skip
    rows, failed = [header], []
    for cpu in cpus:
        cells, problems = row(out, cpu)
        rows.append(cells)
        failed += [cpu] if problems else []
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
        if cells is header:
            print("|" + " --- |" * len(cells))
    host = load(out / cpus[0] / "facts-host-cpuinfo.json").get("facts") or {}
    print(f"\nWith qemu's own /proc/cpuinfo ({cpus[0]}): {'; '.join(host.get('ignored', [])) or 'nothing ignored'}")
    qemu = (out / "qemu.txt").read_text().strip() if (out / "qemu.txt").exists() else "unknown"
    print(NOTES.format(qemu=qemu))
    build = out / "build-pyinstaller.txt"
    print("PyInstaller build (step 4): " + (build.read_text().strip() if build.exists() else "not run"))
    nuitka = out / "nuitka.txt"
    print("Nuitka (step 5): " + (nuitka.read_text().strip().replace("\n", "; ") if nuitka.exists() else "not run"))
    print(f"arm64-smoke: {'FAILED on ' + ', '.join(failed) if failed else 'every CPU as expected'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
