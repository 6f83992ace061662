"""Freeze the app: the target and its plan, the two freezers, and the records beside each artifact.

Read bottom up, one build: :mod:`~build_hooks.freezing.target` (where it lands;
the artifact's layout), :mod:`~build_hooks.freezing.selection` (what every
artifact collects and leaves out), :mod:`~build_hooks.freezing.content` (the
profile read once, the refusals, the generated files),
:mod:`~build_hooks.freezing.inputs` (what the up-to-date check hashes),
:mod:`~build_hooks.freezing.plan` (all of it, made once and written for the
freezer), the freezers :mod:`~build_hooks.freezing.nuitka` and
:mod:`~build_hooks.freezing.pyinstaller`, and after them
:mod:`~build_hooks.freezing.records` (licences, manifest, SBOM, stamp).
"""
