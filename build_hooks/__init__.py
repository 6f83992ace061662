"""Build-time library of the desktop embedding pipeline, one package per stage.

Read top down, the tree is the pipeline:

- the doors: ``cli/`` (the ``embedding-pipeline`` command), ``nox_sessions``
  (``register``), ``pyinstaller_spec`` (what an app's spec imports) and
  ``build_nuitka`` (the Nuitka build's public name);
- ``prepare_model/``: mirror the pinned model into its profile folder;
- ``tiktoken_cache/``: warm the encodings' cache;
- ``freezing/``: the target and its plan, the two freezers, and the records
  each build writes beside its artifact (manifest, SBOM, licences, stamp);
- ``verification/``: prove an artifact complete, intact and its own;
- ``archive``: pack what verify passed into what users download;
- at the bottom: ``config`` (the one table), ``versions``, ``pipeline_steps``
  (the step table), ``fsutil`` and ``errors``.

It raises, never exits; only the doors turn an error into an exit status.
"""
