"""What the emulated CPU really offers: AT_HWCAP/AT_HWCAP2 from the aux vector (qemu-user emulates it)."""

import ctypes
import json

libc = ctypes.CDLL(None)
libc.getauxval.restype = ctypes.c_ulong
libc.getauxval.argtypes = [ctypes.c_ulong]
hw, hw2 = libc.getauxval(16), libc.getauxval(26)  # AT_HWCAP, AT_HWCAP2
# arch/arm64/include/uapi/asm/hwcap.h
HWCAP = {"asimd": 1, "asimddp": 20, "sve": 22, "asimdfhm": 23}
HWCAP2 = {"sve2": 1, "i8mm": 13, "bf16": 14}
features = [k for k, b in HWCAP.items() if hw >> b & 1] + [k for k, b in HWCAP2.items() if hw2 >> b & 1]
print(json.dumps({"AT_HWCAP": hex(hw), "AT_HWCAP2": hex(hw2), "features": features}))
