"""The engine: runs a script or a PSRP command list on a runspace with the interpreter and command table.

Both modes use it: one-shot runs the command-line script at global scope; server mode runs each PSRP
pipeline's commands (``AddCommand``/``AddScript`` statements, with their parameters, stream merges and
pipeline input). Transport-neutral: a WinRM stand-in can run pipelines through the same engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from xml.etree import ElementTree

import psrpcore
from psrpcore import types as ps

import tests.standins.powershell.cmdlets  # noqa: F401 - registers the built-in cmdlets
from tests.standins.powershell import commands as cmd
from tests.standins.powershell.clixml import CIPHER
from tests.standins.powershell.errors import StandinUnsupported, method_invocation
from tests.standins.powershell.language import values as v
from tests.standins.powershell.language.interpreter import Execution, Frame, Interpreter
from tests.standins.powershell.language.parser import parse
from tests.standins.powershell.runspace import Runspace
from tests.standins.powershell.streams import Streams


class Engine:
    """Interpreter + command table + stand-in config, shared by every runspace of a process."""

    def __init__(
        self,
        table: cmd.CommandTable | None = None,
        config: Any = None,
        on_script: Callable[[str], None] | None = None,
    ) -> None:
        self.table = table or cmd.DEFAULT_TABLE
        self.config = config
        self.on_script = on_script or (lambda text: None)

    def execution(
        self,
        runspace: Runspace,
        host: Any,
        *,
        stop: threading.Event | None = None,
        read_stdin: Callable[[], str] | None = None,
    ) -> Execution:
        return Execution(
            runspace=runspace,
            host=host,
            table=self.table,
            config=self.config,
            stop=stop or threading.Event(),
            read_stdin=read_stdin or (lambda: ""),
            on_script=self.on_script,
            deserialize=deserialize,
            serialize=serialize,
        )

    def run_script(
        self,
        text: str,
        execution: Execution,
        streams: Streams,
        input_lines: Callable[[], list[Any]] | None = None,
    ) -> None:
        """Run script text at global scope (raises ParseError before anything runs)."""
        interpreter = Interpreter(execution)
        script = interpreter.parse(text)
        interpreter.run_top_level(script, streams, input_lines or (lambda: []))

    def run_powershell(
        self,
        powershell: psrpcore.PowerShell,
        execution: Execution,
        streams: Streams,
        input_items: Iterable[Any] | None,
    ) -> None:
        """Run a PSRP pipeline's commands; statements run in turn, input feeds the first one."""
        interpreter = Interpreter(execution)
        frame = Frame(
            scope=execution.runspace.globals,
            streams=streams,
            script=parse(""),
            script_scope=execution.runspace.globals,
        )
        statements: list[list[psrpcore.Command]] = [[]]
        for command in powershell.commands:
            statements[-1].append(command)
            if command.end_of_statement:
                statements.append([])
        statements = [s for s in statements if s]
        for number, statement in enumerate(statements):
            feed = input_items if number == 0 else None
            stages = []
            for position, command in enumerate(statement):
                if command.merge_unclaimed:
                    raise StandinUnsupported("MergeUnclaimedPreviousCommandResults")
                merged, discarded = _merges(command)
                arguments = [
                    cmd.Argument(name=name.lstrip("-"), value=value, text=f"-{name}", attached=True)
                    if name
                    else cmd.Argument(value=value, text=v.to_string(value))
                    for name, value in command.parameters
                ]
                if command.is_script:
                    target: Any = interpreter.create_scriptblock_for_pipeline(command.command_text)
                else:
                    target = command.command_text
                stages.append(
                    interpreter.command_stage(
                        target,
                        arguments,
                        frame,
                        merged=merged,
                        discarded=discarded,
                        dot_source=bool(command.is_script and not command.use_local_scope),
                        has_input=position > 0 or feed is not None,
                    )
                )
            interpreter.run_stages(stages, streams.output, feed)


def _merges(command: psrpcore.Command) -> tuple[set[str], set[str]]:
    merged: set[str] = set()
    discarded: set[str] = set()
    output = ps.PipelineResultTypes.Output
    null = ps.PipelineResultTypes.Null
    for stream in ("error", "warning", "verbose", "debug", "information"):
        target = getattr(command, f"merge_{stream}")
        if target == output:
            merged.add(stream)
        elif target == null:
            discarded.add(stream)
    if command.merge_my == ps.PipelineResultTypes.Error and command.merge_to == output:
        merged.add("error")
    return merged, discarded


def deserialize(text: str) -> Any:
    """``[PSSerializer]::Deserialize``: one object is itself, several are an array."""
    try:
        values = ps.deserialize_clixml(text, CIPHER)
    except ElementTree.ParseError as problem:
        reason = "Root element is missing." if not text.strip() else f"{problem}"
        raise method_invocation("Deserialize", 1, reason, "XmlException") from None
    if len(values) == 1:
        return values[0]
    return v.make_array(values)


def serialize(value: Any) -> str:
    """``[PSSerializer]::Serialize``."""
    return str(ps.serialize_clixml([value], CIPHER))
