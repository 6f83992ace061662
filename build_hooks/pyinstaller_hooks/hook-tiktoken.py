# tiktoken finds its encodings by iterating the tiktoken_ext namespace package at run
# time; without these, a frozen app fails with "Unknown encoding o200k_base. Plugins found: []".
from PyInstaller.utils.hooks import collect_submodules

hiddenimports = collect_submodules("tiktoken_ext")
