"""An arm64 /proc/cpuinfo for the CPU qemu-user emulates (qemu >= 8.1 writes one itself; Debian 12's
qemu 7.2 shows the x86 host's, on which onnxruntime's cpuinfo crashes at import). Features from
AT_HWCAP/AT_HWCAP2 (names as arch/arm64/kernel/cpuinfo.c prints them), MIDR_EL1 from the CPU
itself (./midr), one block per CPU in the host's /sys/devices/system/cpu/present. Run with the
chroot's venv (it has the runtime)."""

import ctypes
import subprocess
from pathlib import Path

from embedding_runtime._cpu import auxv_names  # the kernel's names, in bit order

libc = ctypes.CDLL(None)
libc.getauxval.restype = ctypes.c_ulong
libc.getauxval.argtypes = [ctypes.c_ulong]
hw, hw2 = libc.getauxval(16), libc.getauxval(26)  # AT_HWCAP, AT_HWCAP2
features = auxv_names(hw, hw2)
midr = int(subprocess.run(["/arm/harness/midr"], capture_output=True, text=True, check=True).stdout, 16)
lo, _, hi = Path("/sys/devices/system/cpu/present").read_text().strip().partition("-")  # "0-1"
for n in range(int(lo), int(hi or lo) + 1):
    print(
        f"processor\t: {n}\nBogoMIPS\t: 100.00\nFeatures\t: {' '.join(features)}\n"
        f"CPU implementer\t: 0x{midr >> 24 & 0xFF:02x}\nCPU architecture: 8\nCPU variant\t: 0x{midr >> 20 & 0xF:x}\n"
        f"CPU part\t: 0x{midr >> 4 & 0xFFF:03x}\nCPU revision\t: {midr & 0xF}\n"
    )
