# The runtime imports onnxruntime and tokenizers lazily (to report them missing instead of
# crashing), so PyInstaller cannot see those imports: the bundle plan lists what it needs.
from PyInstaller.utils.hooks import collect_submodules

from build_hooks.bundle import COLLECTED_PACKAGES

hiddenimports = [*collect_submodules("embedding_runtime"), *COLLECTED_PACKAGES]
