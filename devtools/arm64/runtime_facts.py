"""What the runtime reads of this CPU, and the variant it prefers (no onnxruntime import: with qemu 7.2's
own /proc/cpuinfo, importing onnxruntime segfaults)."""

import json
import os

from embedding_runtime._cpu import detect
from embedding_runtime._variant import decide_variant

facts = detect()
print(json.dumps({"facts": facts.to_json(), "decision": decide_variant(facts, os.environ).to_json()}))
