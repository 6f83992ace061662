# tiktoken finds its encodings by iterating the tiktoken_ext namespace package at run
# time; without these, a frozen app fails with "Unknown encoding o200k_base. Plugins found: []".
from PyInstaller.utils.hooks import collect_submodules

from build_hooks.freezing.selection import PLUGIN_PACKAGES

hiddenimports = [module for package in PLUGIN_PACKAGES for module in collect_submodules(package)]
