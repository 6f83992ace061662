# The runtime imports onnxruntime and tokenizers lazily (to report them missing instead of
# crashing), so PyInstaller cannot see those imports; and the standard library's C accelerators
# have pure-Python fallbacks a freezer may silently ship instead (the self-check reports them).
from PyInstaller.utils.hooks import collect_submodules

from build_hooks.freezing.selection import LAZY_IMPORTS
from embedding_runtime.build_api import STDLIB_ACCELERATORS

hiddenimports = [*collect_submodules("embedding_runtime"), *LAZY_IMPORTS, *STDLIB_ACCELERATORS]
