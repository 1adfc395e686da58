"""The pwsh stand-in: an executable that tests put first on PATH as ``pwsh``.

Layout (one concern per module):

* ``entry.py`` / ``cli.py`` - the process: pwsh's command line, config, recording, mode dispatch.
* ``server_mode.py`` - ``pwsh -s``: out-of-process packets on stdin/stdout, pwsh's fatal rules.
* ``framing.py`` - the out-of-process packet framing (sans I/O).
* ``runtime.py`` - the PSRP server runtime (psrpcore server pool, pipelines on worker threads,
  runspaces, host calls), transport-neutral: fed and drained through a small ``Channel``.
* ``oneshot.py`` + ``clixml.py`` - ``-OutputFormat xml`` one-shot mode and its CLIXML documents.
* ``engine.py`` - runs a script or a PSRP command list on a runspace.
* ``language/`` - parser (tree-sitter + PowerShell's quote rules) and the interpreter.
* ``commands.py`` + ``cmdlets.py`` - the command table, parameter binding, the built-in cmdlets.
* ``runspace.py``, ``streams.py``, ``errors.py`` - runspace state, stream routing, error records.
* ``config.py``, ``recording.py``, ``faults.py`` - test configuration, what each process received,
  fault switches.

See ``commands.py`` for registering more commands and per-runspace state, and ``config.py`` for the
configuration keys and fault switches. The fixture is ``tests/fixtures/pwsh.py``.
"""
