"""A small PowerShell interpreter over the tree-sitter syntax tree.

It runs the subset that pswrap's bootstrap, templates and tests need, with PowerShell's semantics:
statements, ``param()`` blocks, scopes, assignment, pipelines with streaming, command calls with named,
positional and splatted arguments, ``&`` and ``.``, redirection ``*>&1`` / ``2>&1`` / ``N>&1`` /
``*>$null``, ``if``/``elseif``/``else``, ``try``/``catch``/``finally``, ``throw``, ``exit``, ``return``,
``$input``, indexing, member access and method calls on a whitelist, the operators listed in
:mod:`values`, casts and literals. Every other construct raises :class:`StandinUnsupported` naming the
node, so a script outside the subset fails loudly instead of doing something else.

Errors follow PowerShell: a statement-terminating error (command not found, parameter binding, a
failing method) is written to the error stream and the script goes on, unless a ``try`` encloses it
anywhere up the call stack or ``$ErrorActionPreference`` is ``Stop``; a script-terminating error
(``throw``, an error under ``-ErrorAction Stop``) unwinds to the nearest ``catch``.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from psrpcore import types as ps
from tree_sitter import Node

from tests.standins.powershell import commands as cmd
from tests.standins.powershell.errors import (
    ExitRequested,
    PipelineStopped,
    PSError,
    StandinUnsupported,
    command_not_found,
    error_record,
    method_invocation,
    position_message,
    runtime_error,
    thrown,
)
from tests.standins.powershell.language import dotnet
from tests.standins.powershell.language import values as v
from tests.standins.powershell.language.parser import ParseError, Script, parse
from tests.standins.powershell.runspace import Runspace, Scope
from tests.standins.powershell.streams import MERGEABLE, Redirected, Streams

_WRAPPERS = {
    "logical_expression", "bitwise_expression", "comparison_expression", "additive_expression",
    "multiplicative_expression", "format_expression", "range_expression", "array_literal_expression",
    "unary_expression", "pipeline_chain", "logical_argument_expression", "bitwise_argument_expression",
    "comparison_argument_expression", "additive_argument_expression", "multiplicative_argument_expression",
    "format_argument_expression", "range_argument_expression", "argument_expression", "pipeline",
    "left_assignment_expression", "command_name_expr", "path_command_name", "key_expression",
    "script_parameter_default",
}  # fmt: skip

_ESCAPES = {
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}
_VARIABLE_IN_STRING = re.compile(
    r"\$(?:\{(?P<braced>[^}]*)\}|(?P<name>(?:[A-Za-z_][A-Za-z0-9_]*:)?[A-Za-z0-9_?]+))"
)
_SCOPES = ("global", "script", "local", "private", "env", "variable")


class ReturnSignal(Exception):
    """``return`` leaving a script block."""


def _kids(node: Node) -> list[Node]:
    return [child for child in node.children if child.type != "comment"]


def _named(node: Node) -> list[Node]:
    return [child for child in node.named_children if child.type != "comment"]


@dataclass
class Execution:
    """One top-level run on a runspace: host, stop flag, config, stdin and the engine's services."""

    runspace: Runspace
    host: Any
    table: cmd.CommandTable
    config: Any = None
    stop: threading.Event = field(default_factory=threading.Event)
    read_stdin: Callable[[], str] = lambda: ""
    on_script: Callable[[str], None] = lambda text: None
    deserialize: Callable[[str], Any] | None = None
    serialize: Callable[[Any], str] | None = None
    source_id: int = 1
    try_depth: int = 0
    #: The line each running script block is at, outermost first (the script stack trace).
    lines: list[int] = field(default_factory=list)
    _stdin_text: str | None = None

    def stamp(self, record: Any) -> None:
        """Give an error record the script stack trace of where it happened (once, as PowerShell)."""
        if self.lines and isinstance(record, ps.ErrorRecord) and not record.ScriptStackTrace:
            frames = (f"at <ScriptBlock>, <No file>: line {line}" for line in reversed(self.lines))
            record.ScriptStackTrace = "\n".join(frames)

    def stdin_text(self) -> str:
        if self._stdin_text is None:
            self._stdin_text = self.read_stdin()
        return self._stdin_text

    def stdin_lines(self) -> list[str]:
        text = self.stdin_text()
        if not text:
            return []
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [line[:-1] if line.endswith("\r") else line for line in lines]


@dataclass
class Frame:
    """Where a block of statements runs: its scope, its streams, its input and its script text."""

    scope: Scope
    streams: Streams
    script: Script
    input: Callable[[], list[Any]] = lambda: []
    script_scope: Scope | None = None


class Stage:
    """One element of a pipeline: ``begin``, ``process(item)`` per input object, ``end``."""

    downstream: Callable[[Any], None]

    def begin(self) -> None:
        return None

    def process(self, item: Any) -> None:
        raise NotImplementedError

    def end(self) -> None:
        return None


class Interpreter:
    """Runs scripts and commands for one :class:`Execution`."""

    def __init__(self, execution: Execution) -> None:
        self.x = execution
        self._static = dotnet.StaticContext(
            read_stdin=execution.stdin_text,
            create_scriptblock=self.create_scriptblock,
            deserialize=execution.deserialize or _no_serializer,
            serialize=execution.serialize or _no_serializer,
        )

    # ------------------------------------------------------------------------------------------
    # Entry points
    # ------------------------------------------------------------------------------------------

    def parse(self, text: str) -> Script:
        """Parse a script the engine received (recorded first, so leak checks see every script)."""
        self.x.on_script(text)
        return parse(text)

    def create_scriptblock(self, text: str) -> v.ScriptBlock:
        try:
            script = self.parse(text)
        except ParseError as problem:
            raise PSError(
                error_record(
                    f'Exception calling "Create" with "1" argument(s): "{problem.record.Exception.Message}"',
                    exception_type="System.Management.Automation.MethodInvocationException",
                    exception_bases=[
                        "System.Management.Automation.MethodException",
                        "System.Management.Automation.RuntimeException",
                        "System.SystemException",
                        "System.Exception",
                    ],
                    error_id="ParseException",
                    category=ps.ErrorCategory.NotSpecified,
                )
            ) from None
        return v.ScriptBlock(text=text, script=script, body=script.tree_root)

    def create_scriptblock_for_pipeline(self, text: str) -> v.ScriptBlock:
        """A PSRP script command: a parse error fails the pipeline with the ParseException record."""
        try:
            script = self.parse(text)
        except ParseError as problem:
            raise PSError(problem.record, script_terminating=True) from None
        return v.ScriptBlock(text=text, script=script, body=script.tree_root)

    def run_top_level(self, script: Script, streams: Streams, input_lines: Callable[[], list[Any]]) -> None:
        """Run a whole script at global scope (``-Command`` / ``-EncodedCommand`` text)."""
        scope = self.x.runspace.globals
        frame = Frame(scope=scope, streams=streams, script=script, input=input_lines, script_scope=scope)
        block = v.ScriptBlock(text=script.text, script=script, body=script.tree_root)
        self.invoke_block(
            block, [], frame, streams.output, dot_source=True, input_values=None, top_frame=frame
        )

    # ------------------------------------------------------------------------------------------
    # Script blocks
    # ------------------------------------------------------------------------------------------

    def invoke_block(
        self,
        block: v.ScriptBlock,
        arguments: list[cmd.Argument],
        caller: Frame,
        sink: Callable[[Any], None],
        *,
        dot_source: bool,
        input_values: list[Any] | None,
        streams: Streams | None = None,
        top_frame: Frame | None = None,
    ) -> None:
        script = block.script
        body = block.body
        param_block = next((c for c in _named(body) if c.type == "param_block"), None)
        statements = self._block_statements(body)
        scope = caller.scope if dot_source else Scope(parent=caller.scope, name="script")
        streams = streams or caller.streams
        if top_frame is not None:
            frame = top_frame
        else:
            values = list(input_values) if input_values is not None else []
            frame = Frame(
                scope=scope,
                streams=streams,
                script=script,
                input=lambda: values,
                script_scope=scope if not dot_source else caller.script_scope,
            )
        parameters, advanced, defaults = (
            self._parameters(param_block, script) if param_block is not None else ([], False, {})
        )
        binding = cmd.bind("", "", parameters, arguments, advanced=advanced)
        if input_values:
            piped = next((p for p in parameters if p.pipeline and p.name not in binding.values), None)
            if piped is not None:
                binding.values[piped.name] = cmd.convert_argument(piped, input_values[-1], "")
        missing = cmd.missing_mandatory(parameters, binding.values)
        if missing:
            binding.values.update(self._prompt_for(missing, ""))
        for name, preference in cmd.common_preferences(binding.common).items():
            scope.set(name, preference)
        bound = ps.PSDict()
        for parameter in parameters:
            if parameter.name in binding.values:
                value = binding.values[parameter.name]
                bound[parameter.name] = value
            elif parameter.name in defaults:
                value = self.value_of(
                    defaults[parameter.name], Frame(scope, streams, script, frame.input, frame.script_scope)
                )
                if parameter.type is not None and value is not None:
                    value = cmd.convert_argument(parameter, value, "")
            elif parameter.switch:
                value = False
            else:
                value = None
            scope.set(parameter.name, value)
        if param_block is not None:
            scope.set("PSBoundParameters", bound)
        scope.set("args", v.make_array(binding.extra))
        self.x.lines.append(body.start_point[0] + 1)
        try:
            if statements is not None:
                self.run_statements(statements, frame, sink)
        except ReturnSignal:
            pass
        finally:
            self.x.lines.pop()

    def _block_statements(self, body: Node) -> Node | None:
        if body.type == "ERROR":  # a blank script (whitespace and comments only)
            return None
        if body.type == "program":
            for child in _named(body):
                if child.type == "statement_list":
                    return child
                if child.type not in ("param_block",):
                    raise StandinUnsupported(f"the script element '{child.type}'")
            return None
        if body.type == "script_block_expression":
            for child in _named(body):
                if child.type == "script_block":
                    return self._block_statements(child)
                if child.type not in ("param_block",):
                    raise StandinUnsupported(f"the script block element '{child.type}'")
            return None
        if body.type == "script_block":
            for child in _named(body):
                if child.type == "script_block_body":
                    inner = _named(child)
                    if inner and inner[0].type == "statement_list":
                        return inner[0]
                    if inner:
                        raise StandinUnsupported(f"named blocks ({inner[0].type}: begin/process/end)")
                    return None
                if child.type not in ("param_block",):
                    raise StandinUnsupported(f"the script block element '{child.type}'")
            return None
        raise StandinUnsupported(f"a script block body of type '{body.type}'")

    def _parameters(
        self, param_block: Node, script: Script
    ) -> tuple[list[cmd.Parameter], bool, dict[str, Node]]:
        advanced = False
        for child in _named(param_block):
            if child.type == "attribute_list":
                for attribute in _named(child):
                    name = _attribute_name(attribute, script)
                    if name.casefold() == "cmdletbinding":
                        advanced = True
                    else:
                        raise StandinUnsupported(f"the attribute [{name}] on a param block")
        parameters: list[cmd.Parameter] = []
        defaults: dict[str, Node] = {}
        parameter_list = next((c for c in _named(param_block) if c.type == "parameter_list"), None)
        if parameter_list is None:
            return parameters, advanced, defaults
        implicit_position = 0
        for node in _named(parameter_list):
            if node.type != "script_parameter":
                raise StandinUnsupported(f"the parameter element '{node.type}'")
            type_name: str | None = None
            mandatory = pipeline = False
            position: int | None = None
            has_parameter_attribute = False
            name = ""
            default: Node | None = None
            for part in _named(node):
                if part.type == "attribute_list":
                    for attribute in _named(part):
                        type_literal = next((c for c in _named(attribute) if c.type == "type_literal"), None)
                        if type_literal is not None:
                            type_name = dotnet.resolve_type(_type_text(type_literal, script)).name
                            continue
                        attr_name = _attribute_name(attribute, script)
                        if attr_name.casefold() != "parameter":
                            raise StandinUnsupported(f"the parameter attribute [{attr_name}]")
                        has_parameter_attribute = True
                        for key, value in self._attribute_arguments(attribute, script):
                            folded = key.casefold()
                            if folded == "mandatory":
                                mandatory = v.to_bool(value)
                            elif folded == "position":
                                position = int(v.to_number(value))
                            elif folded == "valuefrompipeline":
                                pipeline = v.to_bool(value)
                            else:
                                raise StandinUnsupported(f"the Parameter() argument {key}")
                elif part.type == "variable":
                    name = script.node_text(part)[1:]
                elif part.type == "script_parameter_default":
                    default = _named(part)[0]
                else:
                    raise StandinUnsupported(f"the parameter element '{part.type}'")
            if has_parameter_attribute:
                advanced = True
            switch = type_name == "System.Management.Automation.SwitchParameter"
            if position is None and not switch and not has_parameter_attribute:
                position = implicit_position
                implicit_position += 1
            parameters.append(
                cmd.Parameter(
                    name=name,
                    type=None if switch or type_name in (None, "System.Object") else type_name,
                    position=position,
                    switch=switch,
                    mandatory=mandatory,
                    pipeline=pipeline,
                )
            )
            if default is not None:
                defaults[name] = default
        return parameters, advanced, defaults

    def _attribute_arguments(self, attribute: Node, script: Script) -> list[tuple[str, Any]]:
        arguments: list[tuple[str, Any]] = []
        holder = next((c for c in _named(attribute) if c.type == "attribute_arguments"), None)
        if holder is None:
            return arguments
        for argument in _named(holder):
            parts = _named(argument)
            key = script.node_text(parts[0])
            if len(parts) == 1:
                arguments.append((key, True))
            else:
                empty = Frame(Scope(), _NullStreams(), script)
                arguments.append((key, self.eval(parts[1], empty)))
        return arguments

    def _prompt_for(
        self, missing: list[cmd.Parameter], error_suffix: str, command: str = ""
    ) -> dict[str, Any]:
        host = self.x.host
        if not getattr(host, "interactive", False):
            raise cmd.missing_mandatory_error(error_suffix, missing)
        fields = [
            ps.FieldDescription(
                Name=p.name,
                ParameterTypeName=(p.type or "System.Object").rsplit(".", 1)[-1],
                ParameterTypeFullName=p.type or "System.Object",
                IsMandatory=True,
            )
            for p in missing
        ]
        caption = f"cmdlet {command} at command pipeline position 1" if command else ""
        answers = host.prompt(caption, "Supply values for the following parameters:", fields)
        result: dict[str, Any] = {}
        for parameter in missing:
            value = v.dict_get(answers, parameter.name) if isinstance(answers, dict) else None
            result[parameter.name] = cmd.convert_argument(parameter, value, error_suffix)
        return result

    # ------------------------------------------------------------------------------------------
    # Statements
    # ------------------------------------------------------------------------------------------

    def run_statements(self, statement_list: Node, frame: Frame, sink: Callable[[Any], None]) -> None:
        for statement in _named(statement_list):
            self._check_stop()
            if self.x.lines:
                self.x.lines[-1] = statement.start_point[0] + 1
            try:
                self.run_statement(statement, frame, sink)
            except PSError as problem:
                self.x.stamp(problem.record)
                if problem.script_terminating or self.x.try_depth > 0 or self._stop_preference(frame):
                    if not problem.script_terminating:
                        problem.script_terminating = True
                    raise
                self._record_error(problem.record)
                frame.streams.error(problem.record)

    def _stop_preference(self, frame: Frame) -> bool:
        try:
            return dotnet.action_preference(frame.scope.get("ErrorActionPreference", "Continue")) == "Stop"
        except PSError:
            return False

    def _record_error(self, record: Any) -> None:
        errors = self.x.runspace.globals.get("Error")
        if isinstance(errors, list):
            errors.insert(0, record)

    def _check_stop(self) -> None:
        if self.x.stop.is_set():
            raise PipelineStopped()

    def run_statement(self, node: Node, frame: Frame, sink: Callable[[Any], None]) -> None:
        kind = node.type
        if kind == "empty_statement":
            return
        if kind == "pipeline":
            self.run_pipeline(node, frame, sink)
        elif kind == "if_statement":
            self._if(node, frame, sink)
        elif kind == "try_statement":
            self._try(node, frame, sink)
        elif kind == "flow_control_statement":
            self._flow(node, frame, sink)
        elif kind == "statement_block":
            inner = next((c for c in _named(node) if c.type == "statement_list"), None)
            if inner is not None:
                self.run_statements(inner, frame, sink)
        else:
            raise StandinUnsupported(f"the statement '{kind}' ({_snippet(frame.script, node)})")

    def _if(self, node: Node, frame: Frame, sink: Callable[[Any], None]) -> None:
        children = _kids(node)
        condition = next(c for c in children if c.type == "pipeline")
        block = next(c for c in children if c.type == "statement_block")
        if v.to_bool(self.value_of(condition, frame)):
            self.run_statement(block, frame, sink)
            return
        for child in children:
            if child.type == "elseif_clauses":
                for clause in _named(child):
                    parts = _kids(clause)
                    clause_condition = next(c for c in parts if c.type == "pipeline")
                    clause_block = next(c for c in parts if c.type == "statement_block")
                    if v.to_bool(self.value_of(clause_condition, frame)):
                        self.run_statement(clause_block, frame, sink)
                        return
            elif child.type == "else_clause":
                self.run_statement(next(c for c in _named(child) if c.type == "statement_block"), frame, sink)
                return

    def _try(self, node: Node, frame: Frame, sink: Callable[[Any], None]) -> None:
        children = _named(node)
        body = children[0]
        catches = next((c for c in children if c.type == "catch_clauses"), None)
        finally_clause = next((c for c in children if c.type == "finally_clause"), None)
        try:
            self.x.try_depth += 1
            try:
                self.run_statement(body, frame, sink)
            finally:
                self.x.try_depth -= 1
        except PSError as problem:
            handler = self._catch_for(problem, catches, frame) if catches is not None else None
            if handler is None:
                raise
            previous = frame.scope.lookup("_")
            frame.scope.set("_", problem.record)
            frame.scope.set("PSItem", problem.record)
            try:
                self.run_statement(handler, frame, sink)
            finally:
                if previous[0]:
                    frame.scope.set("_", previous[1])
                    frame.scope.set("PSItem", previous[1])
        finally:
            if finally_clause is not None:
                self.run_statement(
                    next(c for c in _named(finally_clause) if c.type == "statement_block"), frame, sink
                )

    def _catch_for(self, problem: PSError, catches: Node, frame: Frame) -> Node | None:
        exception_types = [str(t).casefold() for t in problem.record.Exception.PSObject.type_names]
        for clause in _named(catches):
            parts = _named(clause)
            block = next(c for c in parts if c.type == "statement_block")
            type_list = next((c for c in parts if c.type == "catch_type_list"), None)
            if type_list is None:
                return block
            for type_literal in _named(type_list):
                wanted = _type_text(type_literal, frame.script).casefold()
                candidates = {wanted, f"system.{wanted}"}
                if candidates & set(exception_types):
                    return block
        return None

    def _flow(self, node: Node, frame: Frame, sink: Callable[[Any], None]) -> None:
        children = _kids(node)
        keyword = frame.script.node_text(children[0]).casefold()
        argument = next((c for c in children[1:] if c.type == "pipeline"), None)
        if keyword == "exit":
            code = 0 if argument is None else self.value_of(argument, frame)
            try:
                number = int(v.to_number(code)) if code is not None else 0
            except PSError:
                number = 1
            raise ExitRequested(number)
        if keyword == "throw":
            if argument is None:
                current = frame.scope.get("_")
                if isinstance(current, ps.ErrorRecord):
                    raise PSError(current, script_terminating=True)
                raise thrown(None)
            raise thrown(self.value_of(argument, frame))
        if keyword == "return":
            if argument is not None:
                for value in v.enumerate_value(self.value_of(argument, frame)):
                    sink(value)
            raise ReturnSignal()
        raise StandinUnsupported(f"the keyword '{keyword}'")

    # ------------------------------------------------------------------------------------------
    # Pipelines and commands
    # ------------------------------------------------------------------------------------------

    def run_pipeline(self, node: Node, frame: Frame, sink: Callable[[Any], None]) -> None:
        elements = self._pipeline_elements(node)
        if elements is None:
            self._expression_statement(node, frame, sink)
            return
        stages = [self._stage(element, frame, index, len(elements)) for index, element in enumerate(elements)]
        self.run_stages(stages, sink, None)

    def run_stages(
        self, stages: list[Stage], sink: Callable[[Any], None], feed: Iterable[Any] | None
    ) -> None:
        for index, stage in enumerate(stages):
            stage.downstream = stages[index + 1].process if index + 1 < len(stages) else sink
        for stage in stages:
            stage.begin()
        if feed is not None:
            for item in feed:
                self._check_stop()
                stages[0].process(item)
        for stage in stages:
            stage.end()

    def _pipeline_elements(self, node: Node) -> list[Node] | None:
        """The elements of a ``|`` pipeline, or None when the statement is a single expression."""
        current = node
        while True:
            children = _kids(current)
            if current.type == "pipeline_chain":
                if any(c.type == "pipeline_chain_tail" or c.type in ("&&", "||") for c in children):
                    raise StandinUnsupported("pipeline chain operators && and ||")
                elements = [c for c in children if c.type != "|"]
                if len(elements) == 1 and elements[0].type != "command":
                    return None
                return elements
            if current.type == "command":
                return [current]
            if current.type == "pipeline" and len(children) == 1:
                current = children[0]
                continue
            return None

    def _expression_statement(self, node: Node, frame: Frame, sink: Callable[[Any], None]) -> None:
        inner = _unwrap(node)
        if inner.type == "assignment_expression":
            self._assign(inner, frame)
            return
        value = self.eval(inner, frame)
        for item in v.enumerate_value(value):
            sink(item)

    def _stage(self, element: Node, frame: Frame, index: int, count: int) -> Stage:
        if element.type != "command":
            return ExpressionStage(self, element, frame)
        children = _kids(element)
        operator = None
        name_node = None
        elements_node = None
        for child in children:
            if child.type == "command_invokation_operator":
                operator = frame.script.node_text(child).strip()
            elif child.type in ("command_name", "command_name_expr"):
                name_node = child
            elif child.type == "command_elements":
                elements_node = child
            else:
                raise StandinUnsupported(f"the command element '{child.type}'")
        if name_node is None:
            raise StandinUnsupported(f"a command without a name ({_snippet(frame.script, element)})")
        if name_node.type == "command_name":
            target: Any = frame.script.node_text(name_node)
            bounds = re.fullmatch(r"([+-]?\d+)\.\.([+-]?\d+|\$[A-Za-z_][A-Za-z0-9_]*)", target)
            bare = elements_node is None or all(
                c.type == "command_argument_sep" for c in _kids(elements_node)
            )
            if bounds and bare and operator is None:
                # The grammar reads "1..5" / "1..$n" as a command name; PowerShell reads a range.
                upper = bounds.group(2)
                limit = self.variable(upper[1:], frame) if upper.startswith("$") else upper
                start, stop = int(bounds.group(1)), int(v.to_number(limit))
                step = 1 if stop >= start else -1
                return ValueStage(self, list(range(start, stop + step, step)))
            if target[:1].isdigit():
                raise StandinUnsupported(f"the command name {target!r} (the grammar and PowerShell disagree)")
            if any(ch in target for ch in "$`"):
                raise StandinUnsupported(f"the command name {target!r}")
        else:
            target = self.eval(_unwrap(name_node), frame)
        arguments, merged, discarded = (
            self._arguments(elements_node, frame) if elements_node is not None else ([], set(), set())
        )
        line, column = frame.script.position(element)
        source_line = frame.script.text.split("\n")[line - 1].rstrip("\r")
        site = CallSite(
            line=line,
            column=column,
            source=source_line,
            text=frame.script.node_text(element),
            position=index + 1,
            length=count,
        )
        return self.command_stage(
            target,
            arguments,
            frame,
            merged=merged,
            discarded=discarded,
            dot_source=operator == ".",
            has_input=index > 0,
            site=site,
        )

    def command_stage(
        self,
        target: Any,
        arguments: list[cmd.Argument],
        frame: Frame,
        *,
        merged: set[str],
        discarded: set[str],
        dot_source: bool = False,
        has_input: bool = False,
        site: CallSite | None = None,
    ) -> Stage:
        if isinstance(target, v.ScriptBlock):
            return ScriptBlockStage(self, target, arguments, frame, merged, discarded, dot_source, has_input)
        if isinstance(target, str):
            info = self.x.table.find(target)
            if info is None:
                if target.casefold() in cmd.KNOWN_UNIMPLEMENTED:
                    raise StandinUnsupported(f"the cmdlet {target}")
                raise command_not_found(target)
            return CommandStage(self, info, arguments, frame, merged, discarded, has_input, site, target)
        if isinstance(target, cmd.CommandInfo):
            return CommandStage(
                self, target, arguments, frame, merged, discarded, has_input, site, target.name
            )
        if target is None:
            record = error_record(
                "The expression after '&' in a pipeline element produced an object that was not valid. It must "
                "result in a command name, a script block, or a CommandInfo object.",
                error_id="BadExpression",
                category=ps.ErrorCategory.InvalidOperation,
            )
            raise PSError(record)
        raise StandinUnsupported(f"invoking a {type(target).__name__} as a command")

    def _arguments(self, node: Node, frame: Frame) -> tuple[list[cmd.Argument], set[str], set[str]]:
        arguments: list[cmd.Argument] = []
        merged: set[str] = set()
        discarded: set[str] = set()
        children = _kids(node)
        attach_next = False
        for child in children:
            if child.type == "command_argument_sep":
                if frame.script.node_text(child).strip() == ":":
                    if not arguments or arguments[-1].name is None:
                        raise StandinUnsupported("a ':' that does not follow a parameter name")
                    attach_next = True
                continue
            if child.type == "command_parameter":
                text = frame.script.node_text(child)
                name = text[1:].rstrip(":")
                if not name:
                    raise StandinUnsupported("the end-of-parameters token --")
                arguments.append(cmd.Argument(name=name, text=text))
                attach_next = text.endswith(":")
                continue
            if child.type == "redirection":
                self._redirection(child, frame, merged, discarded)
                continue
            if child.type == "stop_parsing":
                raise StandinUnsupported("the stop-parsing token --%")
            child = _unwrap(child)
            if child.type == "variable" and frame.script.node_text(child).startswith("@"):
                if attach_next:
                    raise StandinUnsupported("splatting after '-Name:'")
                arguments.extend(self._splat(frame.script.node_text(child)[1:], frame))
                continue
            value = self._argument_value(child, frame)
            if attach_next:
                arguments[-1].value = value
                arguments[-1].attached = True
                attach_next = False
            else:
                arguments.append(cmd.Argument(value=value, text=frame.script.node_text(child)))
        if attach_next:
            raise StandinUnsupported("a parameter written '-Name:' without a value")
        return arguments, merged, discarded

    def _argument_value(self, node: Node, frame: Frame) -> Any:
        if node.type == "generic_token":
            text = frame.script.node_text(node)
            if any(ch in text for ch in "$`"):
                raise StandinUnsupported(
                    f"the bare-word argument {text!r} (variables or escapes in a bare word)"
                )
            return text
        return self.eval(_unwrap(node), frame)

    def _splat(self, name: str, frame: Frame) -> list[cmd.Argument]:
        value = self.variable(name, frame)
        if value is None:
            return []
        if isinstance(value, dict):
            return [
                cmd.Argument(name=v.to_string(key), value=item, text=f"-{key}", attached=True)
                for key, item in value.items()
            ]
        if v.is_enumerable(value):
            return [cmd.Argument(value=item, text=v.to_string(item)) for item in value]
        return [cmd.Argument(value=value, text=v.to_string(value))]

    def _redirection(self, node: Node, frame: Frame, merged: set[str], discarded: set[str]) -> None:
        text = frame.script.node_text(node).replace(" ", "")
        streams = {
            "*": set(MERGEABLE),
            "2": {"error"},
            "3": {"warning"},
            "4": {"verbose"},
            "5": {"debug"},
            "6": {"information"},
        }
        match = re.fullmatch(r"([*2-6])>&1", text)
        if match:
            merged.update(streams[match.group(1)])
            return
        match = re.fullmatch(r"([*1-6])?>\$null", text, re.IGNORECASE)
        if match:
            which = match.group(1) or "1"
            discarded.update({"output"} if which == "1" else streams[which])
            if which == "*":
                discarded.add("output")
            return
        raise StandinUnsupported(f"the redirection {text}")

    # ------------------------------------------------------------------------------------------
    # Expressions
    # ------------------------------------------------------------------------------------------

    def value_of(self, node: Node, frame: Frame) -> Any:
        """A pipeline used as a value: an expression's value as is; commands' output collected."""
        elements = self._pipeline_elements(node) if node.type in ("pipeline", "pipeline_chain") else None
        if elements is None:
            inner = _unwrap(node)
            if inner.type == "assignment_expression":
                return self._assign(inner, frame)
            return self.eval(inner, frame)
        collected: list[Any] = []
        stages = [self._stage(element, frame, index, len(elements)) for index, element in enumerate(elements)]
        self.run_stages(stages, collected.append, None)
        return v.collect(collected)

    def eval(self, node: Node, frame: Frame) -> Any:
        kind = node.type
        if kind in _WRAPPERS:
            children = _kids(node)
            if len(children) == 1:
                return self.eval(children[0], frame)
            if kind in ("logical_expression", "logical_argument_expression"):
                return self._logical(node, frame)
            if kind in ("comparison_expression", "comparison_argument_expression"):
                return self._comparison(node, frame)
            if kind in (
                "additive_expression",
                "additive_argument_expression",
                "multiplicative_expression",
                "multiplicative_argument_expression",
            ):
                left, op, right = children
                a, b = self.eval(left, frame), self.eval(right, frame)
                operator = frame.script.node_text(op)
                return v.add(a, b) if operator == "+" else v.arithmetic(operator, a, b)
            if kind in ("array_literal_expression",):
                return v.make_array(self.eval(c, frame) for c in children if c.type != ",")
            if kind in ("range_expression", "range_argument_expression"):
                left, _, right = children
                start, stop = (
                    int(v.to_number(self.eval(left, frame))),
                    int(v.to_number(self.eval(right, frame))),
                )
                step = 1 if stop >= start else -1
                return v.make_array(range(start, stop + step, step))
            if kind in ("pipeline", "pipeline_chain"):
                return self.value_of(node, frame)
            if kind in ("argument_expression",):
                return self.eval(_named(node)[0], frame)
            raise StandinUnsupported(f"the expression '{kind}' ({_snippet(frame.script, node)})")
        if kind == "variable":
            text = frame.script.node_text(node)
            if text.startswith("@"):
                raise StandinUnsupported("splatting outside a command call")
            return self.variable(_variable_name(text), frame)
        if kind == "integer_literal":
            return _integer(frame.script.node_text(node))
        if kind == "real_literal":
            return _real(frame.script.node_text(node))
        if kind == "string_literal":
            return self._string(node, frame)
        if kind == "expandable_string_literal" or kind == "verbatim_string_characters":
            return self._string(node.parent or node, frame)
        if kind == "array_expression":
            inner = next((c for c in _named(node) if c.type == "statement_list"), None)
            collected: list[Any] = []
            if inner is not None:
                self.run_statements(inner, frame, collected.append)
            return v.make_array(collected)
        if kind == "sub_expression":
            inner = next((c for c in _named(node) if c.type == "statement_list"), None)
            collected = []
            if inner is not None:
                self.run_statements(inner, frame, collected.append)
            return v.collect(collected)
        if kind == "parenthesized_expression":
            inner = _named(node)
            return self.value_of(inner[0], frame) if inner else None
        if kind == "hash_literal_expression":
            return self._hashtable(node, frame, ordered=False)
        if kind == "script_block_expression":
            text = frame.script.node_text(node)
            return v.ScriptBlock(text=text[1:-1], script=frame.script, body=node)
        if kind == "member_access":
            return self._member_access(node, frame)
        if kind == "element_access":
            children = _kids(node)
            target = self.eval(children[0], frame)
            index = self.eval(children[2], frame)
            return v.get_index(target, index)
        if kind == "invokation_expression":
            return self._invoke_method(node, frame)
        if kind == "cast_expression":
            return self._cast(node, frame)
        if kind == "type_literal":
            return dotnet.resolve_type(_type_text(node, frame.script))
        if kind == "expression_with_unary_operator":
            return self._unary(node, frame)
        if kind == "assignment_expression":
            return self._assign(node, frame)
        if kind == "generic_token":
            return self._argument_value(node, frame)
        if kind == "command":
            return self.value_of(node, frame)
        raise StandinUnsupported(f"the expression '{kind}' ({_snippet(frame.script, node)})")

    def _logical(self, node: Node, frame: Frame) -> Any:
        children = _kids(node)
        left = v.to_bool(self.eval(children[0], frame))
        op = frame.script.node_text(children[1]).casefold()
        if op == "-and":
            return left and v.to_bool(self.eval(children[2], frame))
        if op == "-or":
            return left or v.to_bool(self.eval(children[2], frame))
        if op == "-xor":
            return left != v.to_bool(self.eval(children[2], frame))
        raise StandinUnsupported(f"the operator {op}")

    def _comparison(self, node: Node, frame: Frame) -> Any:
        children = _kids(node)
        left = self.eval(children[0], frame)
        op = frame.script.node_text(children[1]).casefold()
        right = self.eval(children[2], frame)
        if op == "-join":
            return v.join(left, right)
        if op in ("-contains", "-ccontains", "-icontains"):
            return v.contains(left, right, op.startswith("-cc"))
        if op in ("-notcontains", "-cnotcontains", "-inotcontains"):
            return not v.contains(left, right, op.startswith("-cn"))
        if op in ("-in", "-cin", "-iin"):
            return v.contains(right, left, op == "-cin")
        if op in ("-notin", "-cnotin", "-inotin"):
            return not v.contains(right, left, op == "-cnotin")
        if op in ("-is", "-isnot"):
            if not isinstance(right, dotnet.TypeRef):
                raise StandinUnsupported(f"{op} with a right operand that is not a type literal")
            result = _is_type(left, right)
            return result if op == "-is" else not result
        if op in ("-replace", "-creplace", "-ireplace"):
            pattern, replacement = ([*list(right), ""])[:2] if v.is_enumerable(right) else (right, "")
            flags = 0 if op == "-creplace" else re.IGNORECASE
            replacement_text = re.sub(r"\$(\d+)", r"\\\1", v.to_string(replacement))
            return re.sub(v.to_string(pattern), replacement_text, v.to_string(left), flags=flags)
        return v.compare(op, left, right)

    def _unary(self, node: Node, frame: Frame) -> Any:
        children = _kids(node)
        if len(children) == 1:
            return self.eval(children[0], frame)
        op = frame.script.node_text(children[0]).casefold()
        operand = children[1]
        if op in ("-not", "!"):
            return not v.to_bool(self.eval(operand, frame))
        if op == ",":
            return v.make_array([self.eval(operand, frame)])
        if op == "-":
            value = self.eval(operand, frame)
            number = v.to_number(value)
            result = -number
            return v.double(result) if isinstance(result, float) else result
        if op == "+":
            return v.to_number(self.eval(operand, frame))
        if op == "-join":
            return v.join(self.eval(operand, frame), "")
        raise StandinUnsupported(f"the unary operator {op}")

    def _cast(self, node: Node, frame: Frame) -> Any:
        children = _named(node)
        type_text = _type_text(children[0], frame.script)
        operand = _unwrap(children[1])
        folded = type_text.strip().casefold()
        if folded == "ordered":
            if operand.type != "hash_literal_expression":
                raise runtime_error(
                    "The ordered attribute can be specified only on a hash literal node.",
                    "OrderedAttributeOnlyOnHashLiteralNode",
                )
            return self._hashtable(operand, frame, ordered=True)
        type_ref = dotnet.resolve_type(type_text)
        value = self.eval(operand, frame)
        return dotnet.convert(type_ref, value)

    def _hashtable(self, node: Node, frame: Frame, *, ordered: bool) -> Any:
        table: Any = v.OrderedHashtable() if ordered else ps.PSDict()
        body = next((c for c in _named(node) if c.type == "hash_literal_body"), None)
        if body is None:
            return table
        for entry in _named(body):
            if entry.type != "hash_entry":
                raise StandinUnsupported(f"the hashtable element '{entry.type}'")
            parts = _named(entry)
            key_node, value_node = parts[0], parts[-1]
            key_inner = _unwrap(key_node)
            key = (
                frame.script.node_text(key_inner)
                if key_inner.type == "simple_name"
                else self.eval(key_inner, frame)
            )
            if v.dict_contains(table, key):
                raise PSError(
                    error_record(
                        f"Duplicate keys '{v.to_string(key)}' are not allowed in hash literals.",
                        exception_type="System.Management.Automation.ParseException",
                        error_id="DuplicateKeyInHashLiteral",
                        category=ps.ErrorCategory.ParserError,
                    )
                )
            table[key] = self.value_of(value_node, frame)
        return table

    def _member_access(self, node: Node, frame: Frame) -> Any:
        children = _kids(node)
        target_node, operator, member_node = children[0], children[1], children[-1]
        name = self._member_name(member_node, frame)
        if frame.script.node_text(operator) == "::":
            type_ref = self.eval(target_node, frame)
            if not isinstance(type_ref, dotnet.TypeRef):
                raise StandinUnsupported("'::' on something other than a type literal")
            return dotnet.static_property(type_ref, name, self._static)
        target = self.eval(target_node, frame)
        return v.get_member(target, name)

    def _member_name(self, node: Node, frame: Frame) -> str:
        inner = _unwrap(node)
        if inner.type == "member_name":
            parts = _named(inner)
            inner = parts[0] if parts else inner
        if inner.type in ("simple_name", "member_name"):
            return frame.script.node_text(inner)
        return v.to_string(self.eval(inner, frame))

    def _invoke_method(self, node: Node, frame: Frame) -> Any:
        children = _kids(node)
        target_node, operator, member_node = children[0], children[1], children[2]
        argument_list = next((c for c in children if c.type == "argument_list"), None)
        name = self._member_name(member_node, frame)
        args: list[Any] = []
        if argument_list is not None:
            holder = next((c for c in _named(argument_list) if c.type == "argument_expression_list"), None)
            if holder is not None:
                args = [self.eval(c, frame) for c in _named(holder)]
        if frame.script.node_text(operator) == "::":
            type_ref = self.eval(target_node, frame)
            if not isinstance(type_ref, dotnet.TypeRef):
                raise StandinUnsupported("'::' on something other than a type literal")
            return dotnet.static_method(type_ref, name, args, self._static)
        target = self.eval(target_node, frame)
        if isinstance(target, v.ScriptBlock) and name.casefold() == "invoke":
            collected: list[Any] = []
            arguments = [cmd.Argument(value=a) for a in args]
            self.invoke_block(target, arguments, frame, collected.append, dot_source=False, input_values=None)
            return v.make_array(collected)
        if target is None:
            raise runtime_error("You cannot call a method on a null-valued expression.", "InvokeMethodOnNull")
        return dotnet.instance_method(target, name, args)

    def _string(self, node: Node, frame: Frame) -> str:
        children = _named(node)
        if children and children[0].type in (
            "verbatim_here_string_characters",
            "expandable_here_string_literal",
        ):
            raw = frame.script.node_text(node)
            first = raw.find("\n")
            last = raw.rfind("\n")
            content = raw[first + 1 : last] if last > first else ""
            content = content.removesuffix("\r")
            if children[0].type == "verbatim_here_string_characters":
                return content
            return self.expand(content, frame, here=True)
        token = frame.script.string_at(node)
        if token.verbatim:
            return token.value
        return self.expand(token.value, frame)

    def expand(self, content: str, frame: Frame, *, here: bool = False) -> str:
        """Expand a double-quoted string's raw content: backtick escapes, doubled quotes, ``$var``."""
        out: list[str] = []
        i = 0
        while i < len(content):
            char = content[i]
            if char == "`" and i + 1 < len(content):
                following = content[i + 1]
                if following == "u" and content.startswith("{", i + 2):
                    end = content.index("}", i + 3)
                    out.append(chr(int(content[i + 3 : end], 16)))
                    i = end + 1
                    continue
                out.append(_ESCAPES.get(following, following))
                i += 2
                continue
            if (
                not here
                and char in '"\u201c\u201d\u201e'
                and i + 1 < len(content)
                and content[i + 1] in ('"\u201c\u201d\u201e')
            ):
                out.append(content[i + 1])
                i += 2
                continue
            if char == "$":
                match = _VARIABLE_IN_STRING.match(content, i)
                if match:
                    name = match.group("braced") if match.group("braced") is not None else match.group("name")
                    out.append(v.to_string(self.variable(name, frame)))
                    i = match.end()
                    continue
            out.append(char)
            i += 1
        return "".join(out)

    # ------------------------------------------------------------------------------------------
    # Variables and assignment
    # ------------------------------------------------------------------------------------------

    def variable(self, name: str, frame: Frame) -> Any:
        scope_name, _, bare = name.rpartition(":") if ":" in name else ("", "", name)
        folded = bare.casefold()
        if scope_name:
            folded_scope = scope_name.casefold()
            if folded_scope == "env":
                return os.environ.get(bare)
            if folded_scope not in _SCOPES:
                raise StandinUnsupported(f"the variable drive or scope '{scope_name}:'")
            if folded_scope == "global":
                return self.x.runspace.globals.get(bare)
            if folded_scope == "script" and frame.script_scope is not None:
                return frame.script_scope.get(bare)
        if folded == "true":
            return True
        if folded == "false":
            return False
        if folded == "null":
            return None
        if folded == "input":
            return v.make_array(frame.input())
        if folded == "?":
            raise StandinUnsupported("the automatic variable $?")
        if folded in ("lastexitcode",):
            return frame.scope.get(bare)
        if folded == "psversiontable":
            table = ps.PSDict()
            table["PSVersion"] = ps.PSVersion("7.4.6")
            table["PSEdition"] = "Core"
            table["OS"] = "Linux (pwsh stand-in)"
            table["Platform"] = "Unix"
            return table
        return frame.scope.get(bare)

    def _assign(self, node: Node, frame: Frame) -> Any:
        children = _kids(node)
        target = _unwrap(children[0])
        operator = frame.script.node_text(children[1]).strip()
        value = self.value_of(children[2], frame)
        if operator != "=":
            current = self.eval(target, frame)
            op = operator[:-1]
            value = v.add(current, value) if op == "+" else v.arithmetic(op, current, value)
        if target.type == "variable":
            text = frame.script.node_text(target)
            name = _variable_name(text)
            scope_name, _, bare = name.rpartition(":") if ":" in name else ("", "", name)
            if bare.casefold() in ("true", "false", "null", "input"):
                raise runtime_error(
                    f"Cannot overwrite variable {bare} because it is read-only or constant.",
                    "VariableNotWritable",
                    category=ps.ErrorCategory.WriteError,
                )
            if scope_name.casefold() == "global":
                self.x.runspace.globals.set(bare, value)
            elif scope_name.casefold() == "script" and frame.script_scope is not None:
                frame.script_scope.set(bare, value)
            elif scope_name.casefold() == "env":
                raise StandinUnsupported("assigning environment variables")
            elif scope_name and scope_name.casefold() not in ("local", "private"):
                raise StandinUnsupported(f"the variable scope '{scope_name}:'")
            else:
                frame.scope.set(bare, value)
            return value
        if target.type == "member_access":
            parts = _kids(target)
            owner = self.eval(parts[0], frame)
            v.set_member(owner, self._member_name(parts[-1], frame), value)
            return value
        if target.type == "element_access":
            parts = _kids(target)
            owner = self.eval(parts[0], frame)
            index = self.eval(parts[2], frame)
            if isinstance(owner, dict):
                v.dict_set(owner, index, value)
            elif isinstance(owner, list):
                position = int(v.to_number(index))
                if not -len(owner) <= position < len(owner):
                    raise runtime_error("Index was outside the bounds of the array.", "IndexOutOfRange")
                owner[position] = value
            else:
                raise StandinUnsupported(f"assigning into a {type(owner).__name__} by index")
            return value
        raise StandinUnsupported(f"assigning to '{target.type}' ({_snippet(frame.script, target)})")


# ----------------------------------------------------------------------------------------------
# Pipeline stages
# ----------------------------------------------------------------------------------------------


@dataclass
class CallSite:
    """Where a command was called (for InvocationInfo and error positions)."""

    line: int
    column: int
    source: str
    text: str
    position: int = 1
    length: int = 1


class ExpressionStage(Stage):
    def __init__(self, interpreter: Interpreter, node: Node, frame: Frame) -> None:
        self.interpreter = interpreter
        self.node = node
        self.frame = frame

    def process(self, item: Any) -> None:
        raise runtime_error(
            "Expressions are only allowed as the first element of a pipeline.",
            "ExpressionsMustBeFirstInPipeline",
        )

    def end(self) -> None:
        value = self.interpreter.eval(_unwrap(self.node), self.frame)
        for item in v.enumerate_value(value):
            self.interpreter._check_stop()
            self.downstream(item)


class ValueStage(Stage):
    """A first pipeline element that is a computed list of values."""

    def __init__(self, interpreter: Interpreter, values: list[Any]) -> None:
        self.interpreter = interpreter
        self.values = values

    def process(self, item: Any) -> None:
        raise runtime_error(
            "Expressions are only allowed as the first element of a pipeline.",
            "ExpressionsMustBeFirstInPipeline",
        )

    def end(self) -> None:
        for item in self.values:
            self.interpreter._check_stop()
            self.downstream(item)


class _NullStreams:
    def output(self, value: Any) -> None:
        return None

    def error(self, record: Any) -> None:
        return None

    warning = verbose = debug = information = error

    def progress(self, record: Any, source_id: int) -> None:
        return None


def _streams_for(
    base: Streams, downstream: Callable[[Any], None], merged: set[str], discarded: set[str]
) -> Streams:
    if not merged and not discarded:
        return base
    redirected = Redirected(base, downstream, set(merged))
    if discarded:
        return _Discarding(redirected, discarded)
    return redirected


class _Discarding:
    def __init__(self, inner: Streams, discarded: set[str]) -> None:
        self._inner = inner
        self._discarded = discarded
        self.information_pipe = "information" in discarded or bool(getattr(inner, "information_pipe", False))

    def __getattr__(self, name: str) -> Any:
        if name in self._discarded:
            return lambda *args: None
        return getattr(self._inner, name)


class ScriptBlockStage(Stage):
    def __init__(
        self,
        interpreter: Interpreter,
        block: v.ScriptBlock,
        arguments: list[cmd.Argument],
        frame: Frame,
        merged: set[str],
        discarded: set[str],
        dot_source: bool,
        has_input: bool,
    ) -> None:
        self.interpreter = interpreter
        self.block = block
        self.arguments = arguments
        self.frame = frame
        self.merged = merged
        self.discarded = discarded
        self.dot_source = dot_source
        self.has_input = has_input
        self.items: list[Any] = []

    def process(self, item: Any) -> None:
        self.items.append(item)

    def end(self) -> None:
        output = self.downstream if "output" not in self.discarded else (lambda value: None)
        streams = _streams_for(self.frame.streams, output, self.merged, self.discarded)
        self.interpreter.invoke_block(
            self.block,
            self.arguments,
            self.frame,
            output,
            dot_source=self.dot_source,
            input_values=self.items if self.has_input else None,
            streams=streams,
        )


class CommandStage(Stage):
    def __init__(
        self,
        interpreter: Interpreter,
        info: cmd.CommandInfo,
        arguments: list[cmd.Argument],
        frame: Frame,
        merged: set[str],
        discarded: set[str],
        has_input: bool,
        site: CallSite | None,
        invocation_name: str,
    ) -> None:
        self.interpreter = interpreter
        self.info = info
        self.frame = frame
        self.merged = merged
        self.discarded = discarded
        self.has_input = has_input
        self.site = site
        self.invocation_name = invocation_name
        self.error_suffix = info.cmdlet_type
        self.binding = cmd.bind(info.name, self.error_suffix, info.parameters, arguments, advanced=True)
        self.preferences = cmd.common_preferences(self.binding.common)
        self.context: cmd.CommandContext | None = None

    def begin(self) -> None:
        output = self.downstream if "output" not in self.discarded else (lambda value: None)
        streams = _streams_for(self.frame.streams, output, self.merged, self.discarded)
        self.context = cmd.CommandContext(
            info=self.info,
            execution=self.interpreter.x,
            streams=streams,
            output=output,
            preferences=self._preference,
            bound=set(self.binding.values),
            invocation_info=self._invocation_info(),
        )

    def _preference(self, name: str) -> Any:
        if name in self.preferences:
            return self.preferences[name]
        return self.frame.scope.get(name)

    def process(self, item: Any) -> None:
        assert self.context is not None
        values = dict(self.binding.values)
        piped = next((p for p in self.info.parameters if p.pipeline and p.name not in values), None)
        if piped is None:
            error = cmd.input_not_bound(self.error_suffix, item)
            self.context.write_error(error.record)
            return
        values[piped.name] = cmd.convert_argument(piped, item, self.error_suffix)
        self._call(values)

    def end(self) -> None:
        if not self.has_input:
            self._call(dict(self.binding.values))

    def _call(self, values: dict[str, Any]) -> None:
        assert self.context is not None
        self.interpreter._check_stop()
        missing = cmd.missing_mandatory(self.info.parameters, values)
        if missing:
            values.update(self.interpreter._prompt_for(missing, self.error_suffix, self.info.name))
        kwargs = {}
        for parameter in self.info.parameters:
            if parameter.name in values:
                kwargs[parameter.name] = values[parameter.name]
            else:
                kwargs[parameter.name] = False if parameter.switch else parameter.default
        self.context.bound = set(values)
        self.info.handler(self.context, **kwargs)

    def _invocation_info(self) -> Any:
        site = self.site
        if site is None:
            return None
        my_command = ps.PSObject()
        my_command.PSObject.type_names = [
            "System.Management.Automation.CmdletInfo",
            "System.Management.Automation.CommandInfo",
            "System.Object",
        ]
        my_command.PSObject.to_string = self.info.name
        my_command.PSObject.adapted_properties.extend(
            [
                ps.PSNoteProperty("CommandType", ps.CommandTypes.Cmdlet),
                ps.PSNoteProperty("Name", self.info.name),
                ps.PSNoteProperty("Definition", self.info.name),
                ps.PSNoteProperty("Visibility", ps.SessionStateEntryVisibility.Public),
            ]
        )
        bound = ps.PSDict()
        for key, value in self.binding.values.items():
            bound[key] = value
        width = max(len(site.text.split("\n")[0]), 1)
        return ps.InvocationInfo(
            BoundParameters=bound,
            CommandOrigin=ps.CommandOrigin.Internal,
            DisplayScriptPosition=None,
            ExpectingInput=self.has_input,
            HistoryId=1,
            InvocationName=self.invocation_name,
            Line=site.source,
            MyCommand=my_command,
            OffsetInLine=site.column,
            PipelineLength=site.length,
            PipelinePosition=site.position,
            PositionMessage=position_message(site.line, site.column, site.source, width),
            PSCommandPath=None,
            PSScriptRoot="",
            ScriptLineNumber=site.line,
            ScriptName="",
            UnboundArguments=ps.PSList(),
        )


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------


def _unwrap(node: Node) -> Node:
    while node.type in _WRAPPERS:
        children = _kids(node)
        if len(children) != 1:
            break
        node = children[0]
    return node


def _variable_name(text: str) -> str:
    name = text[1:] if text[:1] in ("$", "@") else text
    if name.startswith("{") and name.endswith("}"):
        name = name[1:-1]
    return name


def _type_text(type_literal: Node, script: Script) -> str:
    text = script.node_text(type_literal).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return text.strip()


def _attribute_name(attribute: Node, script: Script) -> str:
    name_node = next((c for c in _named(attribute) if c.type == "attribute_name"), None)
    return script.node_text(name_node).strip() if name_node is not None else script.node_text(attribute)


def _integer(text: str) -> Any:
    lowered = text.lower()
    if lowered.startswith("0x"):
        return int(lowered, 16)
    if lowered.endswith("l") and lowered[:-1].isdigit():
        return ps.PSInt64(int(lowered[:-1]))
    if not lowered.isdigit():
        raise StandinUnsupported(f"the numeric literal {text!r} (type suffixes and multipliers)")
    value = int(lowered)
    if value > 2**63 - 1:
        return v.double(float(value))
    return value


def _real(text: str) -> Any:
    lowered = text.lower()
    if lowered.endswith("d"):
        import decimal

        return decimal.Decimal(lowered[:-1])
    try:
        return v.double(float(lowered))
    except ValueError:
        raise StandinUnsupported(f"the numeric literal {text!r}") from None


def _is_type(value: Any, type_ref: dotnet.TypeRef) -> bool:
    name = type_ref.name
    checks: dict[str, Callable[[Any], bool]] = {
        "System.String": lambda x: isinstance(x, str),
        "System.Int32": lambda x: isinstance(x, int) and not isinstance(x, bool) and -(2**31) <= x < 2**31,
        "System.Int64": lambda x: isinstance(x, int) and not isinstance(x, bool),
        "System.Double": lambda x: isinstance(x, float),
        "System.Boolean": lambda x: isinstance(x, bool),
        "System.Collections.Hashtable": lambda x: (
            isinstance(x, dict) and not isinstance(x, v.OrderedHashtable)
        ),
        "System.Array": v.is_enumerable,
        "System.Object[]": v.is_enumerable,
        "System.Management.Automation.ScriptBlock": lambda x: isinstance(x, v.ScriptBlock),
        "System.Management.Automation.ErrorRecord": lambda x: isinstance(x, ps.ErrorRecord),
        "System.Object": lambda x: x is not None,
    }
    check = checks.get(name)
    if check is None:
        raise StandinUnsupported(f"-is [{name}]")
    return check(value)


def _snippet(script: Script, node: Node) -> str:
    text = script.node_text(node).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def _no_serializer(_: Any) -> Any:
    raise StandinUnsupported("PSSerializer in this context")


def iterate(values: Iterable[Any]) -> Iterator[Any]:
    yield from values


__all__ = ["CallSite", "Execution", "Frame", "Interpreter", "method_invocation"]
