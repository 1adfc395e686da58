"""pwsh's command line as the stand-in understands it, and the process's entry point.

Parameters are matched as pwsh matches them (case-insensitive, any prefix at least as long as the
documented short form): ``-NoLogo``, ``-NoProfile``, ``-NonInteractive``, ``-s`` (server mode),
``-InputFormat``, ``-OutputFormat``, ``-EncodedCommand``, ``-Command``, ``-ExecutionPolicy`` (ignored on
Unix, as in pwsh), ``-Version``. Anything else fails loudly: pwsh's "not recognized" error and exit 64
for an unknown argument, a "stand-in does not support" message for real pwsh options it lacks.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import os
import sys
from dataclasses import dataclass

from tests.standins.powershell import commands as cmd
from tests.standins.powershell.config import ConfigError, StandinConfig, load
from tests.standins.powershell.engine import Engine
from tests.standins.powershell.faults import FaultInjector
from tests.standins.powershell.recording import Recorder
from tests.standins.powershell.runtime import PS_VERSION

EXIT_BAD_COMMAND_LINE = 64
EXIT_INIT_FAILURE = 70

# (full name, shortest accepted form)
_SWITCHES = [
    ("servermode", "s"),
    ("nologo", "nol"),
    ("noprofile", "nop"),
    ("noninteractive", "noni"),
    ("inputformat", "inp"),
    ("outputformat", "o"),
    ("encodedcommand", "e"),
    ("command", "c"),
    ("executionpolicy", "ex"),
    ("version", "v"),
    ("file", "f"),
    ("noexit", "noe"),
    ("sshservermode", "sshs"),
    ("namedpipeservermode", "namedpipeservermode"),
    ("workingdirectory", "wd"),
    ("configurationname", "config"),
    ("interactive", "i"),
    ("login", "l"),
]
_ALIASES = {"if": "inputformat", "of": "outputformat", "ec": "encodedcommand", "ep": "executionpolicy"}
_UNSUPPORTED = {
    "file",
    "noexit",
    "namedpipeservermode",
    "workingdirectory",
    "configurationname",
    "interactive",
    "login",
}


class CommandLineError(Exception):
    def __init__(self, message: str, code: int = EXIT_BAD_COMMAND_LINE) -> None:
        self.code = code
        super().__init__(message)


@dataclass
class Invocation:
    mode: str = "interactive"  # server | oneshot | version
    script: str | None = None
    encoded: bool = False
    input_format: str = "text"
    output_format: str = "text"
    noninteractive: bool = False
    ssh: bool = False  # -sshs: the SSH subsystem's server mode


def _switch(arg: str) -> str | None:
    if not arg.startswith(("-", "/")) or arg in ("-", "--"):
        return None
    key = arg.lstrip("-/").casefold()
    if key in _ALIASES:
        return _ALIASES[key]
    for full, short in _SWITCHES:
        if full.startswith(key) and len(key) >= len(short):
            return full
    return None


def parse_arguments(args: list[str]) -> Invocation:
    invocation = Invocation()
    i = 0

    def value(name: str) -> str:
        nonlocal i
        if i >= len(args):
            raise CommandLineError(
                f"Cannot process the command because of a missing parameter. A command must follow -{name}."
            )
        result = args[i]
        i += 1
        return result

    while i < len(args):
        arg = args[i]
        i += 1
        name = _switch(arg)
        if name is None:
            raise CommandLineError(
                f"The argument '{arg}' is not recognized as the name of a script file. Check the spelling of the "
                "name, or if a path was included, verify that the path is correct and try again."
            )
        if name in _UNSUPPORTED:
            raise CommandLineError(
                f"pwsh stand-in does not support the pwsh option -{name}", EXIT_INIT_FAILURE
            )
        if name in ("servermode", "sshservermode"):
            invocation.mode = "server"
            invocation.ssh = name == "sshservermode"
        elif name in ("nologo", "noprofile"):
            pass
        elif name == "noninteractive":
            invocation.noninteractive = True
        elif name in ("inputformat", "outputformat"):
            fmt = value(name).casefold()
            if fmt not in ("text", "xml"):
                raise CommandLineError(
                    f"Cannot process the command because the value specified with -{name} is not valid. Specify "
                    "one of the following values and try again. The parameter values are: Text, XML."
                )
            setattr(invocation, name.replace("format", "_format"), fmt)
        elif name == "executionpolicy":
            value(name)
        elif name == "version":
            invocation.mode = "version"
        elif name == "encodedcommand":
            encoded = value(name)
            try:
                invocation.script = base64.b64decode(encoded, validate=True).decode("utf-16-le")
            except (binascii.Error, ValueError):
                raise CommandLineError(
                    "Cannot process the command because the value specified with -EncodedCommand is not properly "
                    "encoded. The value must be Base64 encoded."
                ) from None
            invocation.encoded = True
            invocation.mode = "oneshot"
        elif name == "command":
            rest = args[i:]
            i = len(args)
            if rest == ["-"]:
                raise CommandLineError(
                    "pwsh stand-in does not support -Command - (statements from stdin)", EXIT_INIT_FAILURE
                )
            invocation.script = " ".join(rest)
            invocation.mode = "oneshot"
    if invocation.input_format == "xml" and invocation.mode == "oneshot":
        raise CommandLineError("pwsh stand-in does not support -InputFormat XML", EXIT_INIT_FAILURE)
    return invocation


def build_table(config: StandinConfig) -> cmd.CommandTable:
    """The default commands plus whatever the config's extensions register."""
    table = cmd.DEFAULT_TABLE.copy()
    for name in config.extensions:
        module = importlib.import_module(name)
        register = getattr(module, "register", None)
        if register is not None:
            register(table)
        else:  # modules that used @command registered into DEFAULT_TABLE on import
            table = _merge(table, cmd.DEFAULT_TABLE)
    return table


def _merge(table: cmd.CommandTable, other: cmd.CommandTable) -> cmd.CommandTable:
    merged = table.copy()
    for name in other.names():
        info = other.find(name)
        if info is not None and merged.find(name) is None:
            merged.add(info)
    return merged


def main(args: list[str]) -> int:
    try:
        config = load()
    except ConfigError as problem:
        sys.stderr.write(f"pwsh stand-in: {problem}\n")
        return EXIT_INIT_FAILURE
    recorder = Recorder(config.record_dir)
    try:
        invocation = parse_arguments(args)
    except CommandLineError as problem:
        recorder.start(["pwsh", *args], dict(os.environ), "bad-command-line")
        sys.stderr.write(f"{problem}\n")
        recorder.exit(problem.code)
        return problem.code
    recorder.start(["pwsh", *args], dict(os.environ), invocation.mode)
    if invocation.mode == "version":
        sys.stdout.write(f"PowerShell {PS_VERSION}\n")
        recorder.exit(0)
        return 0
    if invocation.mode == "interactive":
        sys.stderr.write(
            "pwsh stand-in does not support an interactive session (give -s, -Command or -EncodedCommand)\n"
        )
        recorder.exit(EXIT_INIT_FAILURE)
        return EXIT_INIT_FAILURE
    engine = Engine(table=build_table(config), config=config, on_script=recorder.script)
    if invocation.mode == "server":
        from tests.standins.powershell import server_mode

        return server_mode.serve(engine, config, recorder, ssh=invocation.ssh)

    from tests.standins.powershell import oneshot

    faults = FaultInjector(
        config.faults, recorder, lambda data: (sys.stdout.buffer.write(data), sys.stdout.buffer.flush())
    )
    faults.at_start()
    code = oneshot.run(
        engine,
        invocation.script or "",
        xml=invocation.output_format == "xml",
        recorder=recorder,
        faults=faults,
    )
    recorder.exit(code)
    return code
