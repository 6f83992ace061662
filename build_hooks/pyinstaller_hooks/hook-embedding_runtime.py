# The runtime imports onnxruntime and tokenizers lazily (to report them missing instead of
# crashing), so PyInstaller cannot see those imports; the runtime's own modules are listed too.
from PyInstaller.utils.hooks import collect_submodules

hiddenimports = [*collect_submodules("embedding_runtime"), "onnxruntime", "tokenizers"]
