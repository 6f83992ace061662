"""What a Nuitka program runs before the app's code, so that a Ctrl-C during its own start-up ends it
with one line, never a crash. The plugin (:mod:`build_hooks.freezing.nuitka_plugin`) hands it to Nuitka.

Nuitka's program initialises the interpreter with Python's SIGINT handler, then
bootstraps in C: it imports ``os`` and its loader before any of the app's code
runs. A KeyboardInterrupt raised there is not survivable: 120 SIGINTs spread
over the first 120 ms of the demo's program gave 3 SIGABRTs ("Unexpected failure
of hard import of 'os'"), 2 SIGSEGVs and 15 tracebacks. So a C handler is set
before ``main`` (a constructor in an extra code file): a SIGINT writes
``ERROR: interrupted`` and ends the program with 130, as the launcher's own
handler does. Python sees a handler that is not its own and leaves it alone. A
SIGINT that was ignored when the program started (``nohup``, a background job)
stays ignored.

Just before the app's main module runs, still under the C handler (the code
:func:`preload_code` makes):

- the modules the main module imports that Nuitka imports "the hard way"
  (``__future__``, ``os``, ``sys``, ``typing``...: ``isHardModule``) are
  imported. Nuitka aborts the program when such an import fails (its message
  goes to stdout), and a KeyboardInterrupt inside one is a failure; loaded
  first, the main module's own import of each returns the loaded module.
- an app that sets its own SIGINT handler in its main module's top level (the
  launcher does, in its first lines) keeps the C handler until that call
  replaces it: no Python handler comes in between.
- any other app gets a Python handler that raises ``KeyboardInterrupt()``: from
  its first line on, a Ctrl-C is a KeyboardInterrupt as in any Python program.
  Not ``signal.default_int_handler``: the exception it sets has no value until
  something normalises it, and Nuitka's exit path reads that value (a SIGSEGV).

Measured on the demo, 2 CPUs kept busy, SIGINTs spread over the program's first
150 ms: with Python's handler put back for every app, 2 SIGABRTs (a hard import)
in 2000 and then 1 SIGSEGV (the exit path) in 3000; with both changes, none
(tests/test_artifacts_hostile.py sends 300 per run).

Linux and macOS only: on Windows a console's Ctrl-C reaches a process as a
control event, which Python does not turn into a KeyboardInterrupt before its
code runs.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

EARLY_INTERRUPT_C = r"""
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L /* sigaction: Nuitka compiles as plain C11 */
#include <signal.h>
#include <string.h>
#include <unistd.h>

static void embedding_pipeline_interrupted(int signum) {
    static char const message[] = "ERROR: interrupted\n";
    ssize_t written = write(2, message, sizeof(message) - 1);
    (void)written;
    _exit(128 + signum);
}

__attribute__((constructor)) static void embedding_pipeline_early_interrupt(void) {
    struct sigaction current;
    if (sigaction(SIGINT, NULL, &current) != 0 || current.sa_handler != SIG_DFL) {
        return; /* ignored (nohup, a background job) or set by someone else: left as it is */
    }
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = embedding_pipeline_interrupted;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
}
#endif
"""

# Python's handler for an app that sets none itself, where the start-up's still is: KeyboardInterrupt().
_PYTHON_HANDLER = """\
import signal as _embedding_pipeline_signal
if _embedding_pipeline_signal.getsignal(_embedding_pipeline_signal.SIGINT) is None:
    def _embedding_pipeline_interrupt(signum, frame):
        raise KeyboardInterrupt()
    _embedding_pipeline_signal.signal(_embedding_pipeline_signal.SIGINT, _embedding_pipeline_interrupt)
    del _embedding_pipeline_interrupt
del _embedding_pipeline_signal
"""
_LOADED = "_embedding_pipeline_loaded"  # bound and unbound at once: the app's namespace stays its own


def hard_imports(tree: ast.Module, is_hard: Callable[[str], bool]) -> list[str]:
    """The modules ``tree`` imports, anywhere in it, that ``is_hard`` says Nuitka imports the hard way
    (a package's parents with it), sorted."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    parents = {".".join(name.split(".")[:depth]) for name in names for depth in range(1, name.count(".") + 2)}
    return sorted(name for name in parents if is_hard(name))


def sets_own_interrupt_handler(tree: ast.Module) -> bool:
    """Whether the module's top level calls ``signal.signal(signal.SIGINT, ...)`` (or ``signal(SIGINT,
    ...)``): a statement of its own, not inside a function, a condition or a ``try``."""
    for statement in tree.body:
        call = statement.value if isinstance(statement, ast.Expr) else None
        if not isinstance(call, ast.Call) or not call.args:
            continue
        function, first = call.func, call.args[0]
        named = (isinstance(function, ast.Attribute) and function.attr == "signal") or (
            isinstance(function, ast.Name) and function.id == "signal"
        )
        sigint = (isinstance(first, ast.Attribute) and first.attr == "SIGINT") or (
            isinstance(first, ast.Name) and first.id == "SIGINT"
        )
        if named and sigint:
            return True
    return False


def preload_code(source: str, is_hard: Callable[[str], bool]) -> str:
    """The code run before the main module (``source``): its hard imports, then, unless it sets its
    own SIGINT handler, a Python one. Without a parse, Python's handler alone (the compiler will say
    why it cannot compile the module)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return _PYTHON_HANDLER
    modules = hard_imports(tree, is_hard)
    code = "".join(f"import {name} as {_LOADED}\n" for name in modules) + (f"del {_LOADED}\n" if modules else "")
    return code if sets_own_interrupt_handler(tree) else code + _PYTHON_HANDLER
