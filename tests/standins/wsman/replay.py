"""A WinRM host that replays a recording of a real Windows host (``../shared/corpus/wsman/*.yml``).

Each recording is a list of request/response pairs: pypsrp's requests and the SOAP envelopes a real
Windows Server 2016 host (Windows PowerShell 5.1) answered, PSRP fragments included. The replay serves
those responses to pswrap's WinRM transport over plain HTTP (Basic, any credentials: the recordings
hold no authentication or TLS), in order, matching each request by operation (Create, Command, Send,
Receive, Signal, Delete, Get) and by what it targets (the pool or a command). It rewrites only the
identifiers pswrap chose: the ShellId, the CommandIds, the runspace pool and pipeline GUIDs in the PSRP
message headers, and RelatesTo; every other byte of the answer is the recorded one.

Where pswrap's requests differ from the recorded client's, :attr:`ReplayHost.differences` says exactly
where (operation, what, sent, recorded); :attr:`ReplayHost.problems` lists requests a real host would
refuse (over its MaxEnvelopeSize, another resource URI, a selector naming no shell it has). A request
the recording has no answer for is answered with the real answer Windows gave to the same operation in
another recording (:data:`ANSWERS`), and listed as a difference:

* ``Signal Terminate`` after each pipeline: pswrap closes every command it is done with; pypsrp's
  recorded client leaves that to Delete. Windows answers it with an empty SignalResponse.
* the session key: pswrap exchanges it as soon as the pool is open (SecureStrings can then travel
  either way). The host's EncryptedSessionKey is made for the client's public key, so the replay
  encrypts a session key of its own for pswrap's key (psrpcore's server-side helper), in the message
  Windows sends; recorded SecureStrings, encrypted with the recorded client's key, cannot be read.
* ``Get`` of ``wsman/1/config``: pswrap asks the host's MaxEnvelopeSizekb, as pypsrp's
  ``update_max_payload_size`` does; answered from ``test_wsman_update_envelope_size_<n>.yml``.
* a Receive the recording has no answer for waits for the request's OperationTimeout, then gets
  Windows' TimedOut fault (2150858793), as on a host with nothing to say.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import secrets
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import yaml
from psrpcore._crypto import encrypt_session_key

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "wsman"

S = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
RSP = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
PWSH = "http://schemas.microsoft.com/powershell"
CONFIG = "http://schemas.microsoft.com/wbem/wsman/1/config"
TERMINATE = f"{RSP}/signal/Terminate"

PUBLIC_KEY = 0x00010005
ENCRYPTED_SESSION_KEY = 0x00010006
CREATE_PIPELINE = 0x00021006

#: Where the answers to requests a recording lacks come from: (recording, message index).
ANSWERS = {
    "SendResponse": ("test_psrp_multiple_commands.yml", 3),
    "SignalResponse": ("test_winrs_standard.yml", 3),
    "DeleteResponse": ("test_psrp_multiple_commands.yml", 7),
    "TimedOut": ("test_winrs_operation_timeout.yml", 3),
    "EncryptedSessionKey": ("test_psrp_multiple_commands.yml", 4),
}


# --- PSRP fragments ------------------------------------------------------------------------------


@dataclass
class Fragment:
    object_id: int
    fragment_id: int
    flags: int
    data: bytes

    def pack(self) -> bytes:
        return struct.pack(">QQBI", self.object_id, self.fragment_id, self.flags, len(self.data)) + self.data


def fragments(data: bytes) -> list[Fragment]:
    """The PSRP fragments of one stream's payload."""
    found = []
    while data:
        if len(data) < 21:
            raise ValueError("a PSRP fragment header is cut short")
        object_id, fragment_id, flags, length = struct.unpack(">QQBI", data[:21])
        found.append(Fragment(object_id, fragment_id, flags, data[21 : 21 + length]))
        data = data[21 + length :]
    return found


def messages(payloads: list[bytes]) -> list[bytes]:
    """Whole PSRP messages (header and body) from the payloads of one direction, defragmented."""
    partial: dict[int, bytes] = {}
    whole = []
    for payload in payloads:
        for fragment in fragments(payload):
            if fragment.flags & 1:
                partial[fragment.object_id] = b""
            partial[fragment.object_id] = partial.get(fragment.object_id, b"") + fragment.data
            if fragment.flags & 2:
                whole.append(partial.pop(fragment.object_id))
    return whole


def message_type(message: bytes) -> int:
    return int(struct.unpack("<I", message[4:8])[0])


# --- the recording -------------------------------------------------------------------------------


def _find(element: ET.Element | None, path: str) -> ET.Element | None:
    return None if element is None else element.find(path)


@dataclass
class Request:
    """What matters of one request envelope (the recorded client's or pswrap's)."""

    action: str
    message_id: str
    resource_uri: str
    max_envelope_size: int
    operation_timeout: str
    selectors: dict[str, str]
    options: list[tuple[str, str, str]]
    body: ET.Element | None
    command: str | None = None  # the CommandId the request targets (Command, Send, Receive, Signal)
    code: str | None = None  # a Signal's code
    stream: str | None = None  # a Send's stream: stdin, or pr (answers to host calls)
    payloads: list[bytes] = field(default_factory=list)  # PSRP data it carries
    size: int = 0

    @property
    def op(self) -> str:
        return self.action.rsplit("/", 1)[-1]


def parse_request(text: str | bytes) -> Request:
    envelope = ET.fromstring(text)
    header = envelope.find(f"{{{S}}}Header")
    body_element = envelope.find(f"{{{S}}}Body")
    body = body_element[0] if body_element is not None and len(body_element) else None

    def read(tag: str) -> str:
        found = _find(header, tag)
        return (found.text or "").strip() if found is not None else ""

    request = Request(
        action=read(f"{{{WSA}}}Action"),
        message_id=read(f"{{{WSA}}}MessageID"),
        resource_uri=read(f"{{{WSMAN}}}ResourceURI"),
        max_envelope_size=int(read(f"{{{WSMAN}}}MaxEnvelopeSize") or 0),
        operation_timeout=read(f"{{{WSMAN}}}OperationTimeout"),
        selectors={
            s.get("Name", ""): (s.text or "")
            for s in (header.iter(f"{{{WSMAN}}}Selector") if header is not None else [])
        },
        options=sorted(
            (o.get("Name", ""), (o.text or ""), o.get("MustComply", ""))
            for o in (header.iter(f"{{{WSMAN}}}Option") if header is not None else [])
        ),
        body=body,
        size=len(text),
    )
    if body is None:
        return request
    carriers: list[ET.Element] = []
    if body.tag == f"{{{RSP}}}Shell":
        carriers = [e for e in body if e.tag == f"{{{PWSH}}}creationXml"]
    elif body.tag == f"{{{RSP}}}CommandLine":
        request.command = body.get("CommandId")
        carriers = body.findall(f"{{{RSP}}}Arguments")
    elif body.tag == f"{{{RSP}}}Send":
        carriers = body.findall(f"{{{RSP}}}Stream")
        request.command = next((c.get("CommandId") for c in carriers if c.get("CommandId")), None)
        request.stream = next((c.get("Name") for c in carriers), None)
    elif body.tag == f"{{{RSP}}}Receive":
        request.command = _attribute(body.find(f"{{{RSP}}}DesiredStream"), "CommandId")
    elif body.tag == f"{{{RSP}}}Signal":
        request.command = body.get("CommandId")
        request.code = (body.findtext(f"{{{RSP}}}Code") or "").strip()
    for carrier in carriers:
        try:
            request.payloads.append(base64.b64decode(carrier.text or "", validate=True))
        except (binascii.Error, ValueError):  # a WinRS command line's arguments are plain text
            continue
    if request.command:
        request.command = request.command.upper()
    return request


def _attribute(element: ET.Element | None, name: str) -> str | None:
    return None if element is None else element.get(name)


@dataclass
class Exchange:
    index: int
    request: Request
    response: str | None
    status: int
    consumed: bool = False

    @property
    def op(self) -> str:
        return self.request.op

    def carries(self, kind: int) -> bool:
        return any(message_type(m) == kind for m in messages(self.request.payloads))


@functools.cache
def _document(name: str) -> Any:
    return yaml.safe_load((CORPUS / name).read_text(encoding="utf-8"))


def load(name: str) -> list[Exchange]:
    """The exchanges of one recording (by file name, from the corpus)."""
    document = _document(name)
    exchanges = []
    for index, message in enumerate(document["messages"]):
        error = message.get("transport_error") or {}
        status = int(error.get("code", 500 if message.get("http_error") else 200))
        request = parse_request(message["request"])
        for override in message.get("overrides") or []:  # the recording's own edit of its request
            if override["path"].endswith("rsp:DesiredStream"):
                request.command = str(override["attributes"]["CommandId"]).upper()
        exchanges.append(Exchange(index, request, message["response"], status))
    return exchanges


def answer(name: str) -> str:
    """A real answer from :data:`ANSWERS`."""
    recording, index = ANSWERS[name]
    response = _document(recording)["messages"][index]["response"]
    assert isinstance(response, str)
    return response


def host_max_envelope_size(kilobytes: int) -> str:
    """The recording whose host has this MaxEnvelopeSizekb (150 or 500)."""
    return f"test_wsman_update_envelope_size_{kilobytes}.yml"


# --- the host ------------------------------------------------------------------------------------


@dataclass
class Difference:
    """Where pswrap's request differs from the recorded client's."""

    op: str
    what: str
    sent: Any = None
    recorded: Any = None

    def __str__(self) -> str:
        return f"{self.op}: {self.what} (sent {self.sent!r}, recorded {self.recorded!r})"


class ReplayHost:
    """Serves one recording to a WinRM client on 127.0.0.1 (plain HTTP, Basic with any credentials)."""

    def __init__(self, recording: str, *, max_envelope_kb: int = 500, wait: float = 2.0) -> None:
        self.recording = recording
        self.exchanges = load(recording)
        config = load(host_max_envelope_size(max_envelope_kb))[0]
        #: The host's MaxEnvelopeSizekb in bytes: no request may be larger.
        self.max_envelope_size = max_envelope_kb * 1024
        self._config = config.response
        self._wait = wait
        self._cond = threading.Condition()
        self.differences: list[Difference] = []
        self.problems: list[str] = []
        #: Every request pswrap sent, parsed, in order of arrival.
        self.requests: list[Request] = []
        self._ids: dict[str, str] = {}  # recorded GUID text (upper) -> pswrap's
        self._raw: dict[bytes, bytes] = {}  # recorded GUID bytes in PSRP headers -> pswrap's
        self._back: dict[str, str] = {}  # pswrap's CommandId -> the recorded one
        self._recorded_commands = [e.request.command for e in self.exchanges if e.op == "Command"]
        self._recorded_key = any(e.carries(PUBLIC_KEY) for e in self.exchanges)
        self._session_key = secrets.token_bytes(32)
        self._key_pending: bytes | None = None
        self._object_id = 1 << 40
        self._httpd: ThreadingHTTPServer | None = None

    # --- life cycle ---

    def start(self) -> ReplayHost:
        handler = type("_Handler", (_Handler,), {"replay": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="wsman-replay", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> ReplayHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    def transport_options(self, **changes: Any) -> dict[str, Any]:
        """Keyword arguments connecting a :class:`pswrap.WinRMTransport` to the replay."""
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "scheme": "http",
            "auth": "basic",
            "username": "vagrant",
            "password": "replayed",
            "allow_unencrypted": True,
            "operation_timeout": 20.0,  # as the recorded client asked
            "connection_timeout": 5.0,
            "stop_grace": 3.0,
            "idle_check": None,
        }
        options.update(changes)
        return options

    @property
    def unanswered(self) -> list[str]:
        """Recorded requests pswrap never sent (its scenario ended without them)."""
        return [f"#{e.index} {e.op}" for e in self.exchanges if not e.consumed]

    # --- serving ---

    def handle(self, body: bytes) -> tuple[int, bytes]:
        try:
            request = parse_request(body)
        except (ET.ParseError, ValueError, binascii.Error) as exc:
            self.problems.append(f"a request that is not a WSMan envelope: {exc}")
            return 400, b""
        with self._cond:
            self.requests.append(request)
        if len(body) > self.max_envelope_size:
            self.problems.append(
                f"{request.op} of {len(body)} bytes is over the host's MaxEnvelopeSize ({self.max_envelope_size})"
            )
        if request.op == "Get" and request.resource_uri == CONFIG:
            assert self._config is not None
            return 200, self._relate(self._config, request).encode("utf-8")
        if request.op == "Send" and self._key(request, recorded=False)[3]:
            self._key_pending = self._public_key(request)
        if request.op == "Create":
            self._learn_create(request)
        elif request.op == "Command":
            self._learn_command(request)
        self._check_selectors(request)
        if (
            request.op == "Receive"
            and request.command is None
            and self._key_pending
            and not self._recorded_key
        ):
            return 200, self._session_key_answer(request).encode("utf-8")
        exchange = self._match(request)
        if exchange is None:
            return self._extra(request)
        self._compare(request, exchange.request)
        if exchange.response is None:  # the recorded host broke the connection / sent no body
            return exchange.status, b""
        return exchange.status, self._rewrite(exchange.response, request).encode("utf-8")

    def _learn_create(self, request: Request) -> None:
        recorded = next((e for e in self.exchanges if e.op == "Create"), None)
        if recorded is None or request.body is None or recorded.request.body is None:
            return
        ours = (request.body.get("ShellId") or "").upper()
        theirs = (recorded.request.body.get("ShellId") or "").upper()
        if recorded.response is not None:
            found = re.search(r'Name="ShellId">([0-9A-Fa-f-]{36})<', recorded.response)
            theirs = found.group(1).upper() if found else theirs
        with self._cond:
            if theirs and ours:
                self._ids[theirs] = ours
            mine, recorded_messages = messages(request.payloads), messages(recorded.request.payloads)
            if mine and recorded_messages:
                self._raw[recorded_messages[0][8:24]] = mine[0][8:24]

    def _learn_command(self, request: Request) -> None:
        with self._cond:
            taken = len(self._back)
            if request.command is None or taken >= len(self._recorded_commands):
                return
            recorded_id = self._recorded_commands[taken]
            assert recorded_id is not None
            self._ids[recorded_id] = request.command
            self._back[request.command] = recorded_id
            recorded = next(
                e for e in self.exchanges if e.op == "Command" and e.request.command == recorded_id
            )
            mine, theirs = messages(request.payloads), messages(recorded.request.payloads)
            carried = {message_type(m) for m in mine[1:]}  # input sent with CREATE_PIPELINE
            for later in self.exchanges:
                kinds = {message_type(m) for m in messages(later.request.payloads)}
                if (
                    carried
                    and not later.consumed
                    and later.op == "Send"
                    and later.request.command == recorded_id
                    and kinds <= carried
                ):
                    later.consumed = True
                    self.differences.append(Difference("Send", "carried in the Command's argument"))
            if mine and theirs:
                self._raw[theirs[0][24:40]] = mine[0][24:40]
                sent, was = _commands(mine[0]), _commands(theirs[0])
                if sent != was:
                    self.differences.append(Difference("Command", "the pipeline's commands", sent, was))

    def _check_selectors(self, request: Request) -> None:
        if request.op in ("Create",) or request.resource_uri == CONFIG:
            return
        shell = (request.selectors.get("ShellId") or "").upper()
        if shell not in self._ids.values():
            self.problems.append(f"{request.op} names shell {shell or 'none'}, which the host does not have")

    def _key(self, request: Request, recorded: bool) -> tuple[str, str | None, str | None, bool]:
        command = request.command
        if request.op == "Send" and request.stream == "pr":
            command = None  # an answer to a host call: pypsrp sends it to the shell, pswrap to the command
        elif not recorded and command is not None:
            command = self._back.get(command, f"unknown {command}")
        key_exchange = request.op == "Send" and any(
            message_type(m) == PUBLIC_KEY for m in messages(request.payloads)
        )
        code = request.code if request.op == "Signal" else None
        return request.op, command, code, key_exchange

    def _match(self, request: Request) -> Exchange | None:
        key = self._key(request, recorded=False)
        deadline = time.monotonic() + self._wait
        with self._cond:
            exchange = next(
                (e for e in self.exchanges if not e.consumed and self._key(e.request, True) == key), None
            )
            if exchange is None:
                return None
            exchange.consumed = True
            # Answer in the recorded order: what the recorded client sent before this request reached
            # the host first (a Receive's output may depend on the input sent before it).
            while True:
                waiting = [
                    e
                    for e in self.exchanges
                    if e.index < exchange.index and not e.consumed and e.op in ("Create", "Command", "Send")
                ]
                remaining = deadline - time.monotonic()
                if not waiting or remaining <= 0:
                    break
                self._cond.wait(remaining)
            for skipped in waiting:
                self.differences.append(
                    Difference(request.op, f"answered before recorded #{skipped.index} {skipped.op} arrived")
                )
            self._cond.notify_all()
            return exchange

    def _extra(self, request: Request) -> tuple[int, bytes]:
        """A request the recording holds no answer for: answer as Windows answered it elsewhere."""
        op = request.op
        if op == "Send" and self._key(request, recorded=False)[3]:
            self.differences.append(
                Difference("Send", "PUBLIC_KEY: pswrap exchanges the session key on open")
            )
            return 200, self._relate(answer("SendResponse"), request).encode("utf-8")
        if op == "Signal":
            self.differences.append(Difference("Signal", "not in the recording", request.code))
            return 200, self._relate(answer("SignalResponse"), request).encode("utf-8")
        if op == "Delete":
            self.differences.append(Difference("Delete", "not in the recording"))
            return 200, self._relate(answer("DeleteResponse"), request).encode("utf-8")
        if op == "Receive" and request.command is None and self._key_pending is not None:
            return 200, self._session_key_answer(request).encode("utf-8")
        if op == "Receive":
            # Nothing more to say: wait for the OperationTimeout, then Windows' TimedOut fault.
            timeout = _seconds(request.operation_timeout)
            with self._cond:
                self._cond.wait(min(timeout, 0.5))  # Windows waits it all out; tests need not
            return 500, self._relate(answer("TimedOut"), request).encode("utf-8")
        self.differences.append(Difference(op, "not in the recording, no answer"))
        return 500, b""

    # --- rewriting ---

    def _relate(self, response: str, request: Request) -> str:
        return re.sub(
            r"(<a:RelatesTo>)[^<]*(</a:RelatesTo>)",
            lambda m: m.group(1) + request.message_id + m.group(2),
            response,
        )

    def _rewrite(self, response: str, request: Request) -> str:
        text = self._relate(response, request)
        with self._cond:
            ids = dict(self._ids)
        for theirs, ours in ids.items():
            text = text.replace(theirs, ours).replace(theirs.lower(), ours.lower())

        def stream(match: re.Match[str]) -> str:
            data = base64.b64decode(match.group(2))
            return (
                match.group(1) + base64.b64encode(self._rewrite_psrp(data)).decode("ascii") + match.group(3)
            )

        return re.sub(r"(<rsp:Stream\b[^>]*>)([^<]+)(</rsp:Stream>)", stream, text)

    def _rewrite_psrp(self, data: bytes) -> bytes:
        out = []
        for fragment in fragments(data):
            if fragment.flags & 1 and len(fragment.data) >= 40:
                head = bytearray(fragment.data[:40])
                for start in (8, 24):
                    replacement = self._raw.get(bytes(head[start : start + 16]))
                    if replacement is not None:
                        head[start : start + 16] = replacement
                if message_type(bytes(head)) == ENCRYPTED_SESSION_KEY and fragment.flags & 2:
                    self.differences.append(
                        Difference("Receive", "EncryptedSessionKey re-made for pswrap's public key")
                    )
                    fragment = Fragment(
                        fragment.object_id, 0, 3, bytes(head) + self._session_key_body(self._key_pending)
                    )
                    self._key_pending = None
                else:
                    fragment = Fragment(
                        fragment.object_id,
                        fragment.fragment_id,
                        fragment.flags,
                        bytes(head) + fragment.data[40:],
                    )
            out.append(fragment.pack())
        return b"".join(out)

    # --- the session key ---

    def _public_key(self, request: Request) -> bytes:
        for message in messages(request.payloads):
            if message_type(message) == PUBLIC_KEY:
                found = re.search(rb'<S N="PublicKey">([^<]+)</S>', message)
                if found:
                    return base64.b64decode(found.group(1))
        raise ValueError("a PUBLIC_KEY message without its key")

    def _session_key_body(self, public_key: bytes | None) -> bytes:
        if public_key is None:
            raise ValueError("the host sends a session key, but pswrap sent no public key")
        encrypted = base64.b64encode(encrypt_session_key(public_key, self._session_key)).decode("ascii")
        return f'\ufeff<Obj RefId="0"><MS><S N="EncryptedSessionKey">{encrypted}</S></MS></Obj>'.encode()

    def _session_key_answer(self, request: Request) -> str:
        """Windows' ReceiveResponse carrying an EncryptedSessionKey, made for pswrap's public key."""
        self.differences.append(Difference("Receive", "EncryptedSessionKey made for pswrap's public key"))
        template = self._relate(answer("EncryptedSessionKey"), request)
        recorded = base64.b64decode(re.search(r"<rsp:Stream[^>]*>([^<]+)<", template).group(1))  # type: ignore[union-attr]
        head = bytearray(fragments(recorded)[0].data[:40])
        pool = next(iter(self._raw.values()), None)
        if pool is not None:
            head[8:24] = b"\0" * 16  # Windows sends the session key with the empty pool id, as recorded
        body = self._session_key_body(self._key_pending)
        self._key_pending = None
        self._object_id += 1
        payload = Fragment(self._object_id, 0, 3, bytes(head) + body).pack()
        return re.sub(
            r"(<rsp:Stream[^>]*>)[^<]+(</rsp:Stream>)",
            lambda m: m.group(1) + base64.b64encode(payload).decode("ascii") + m.group(2),
            template,
        )

    # --- comparing ---

    def _compare(self, sent: Request, recorded: Request) -> None:
        op = sent.op
        if sent.resource_uri != recorded.resource_uri:
            self.problems.append(f"{op} to {sent.resource_uri}, recorded {recorded.resource_uri}")
        if sent.options != recorded.options:
            self.differences.append(Difference(op, "options", sent.options, recorded.options))
        if sent.max_envelope_size != recorded.max_envelope_size:
            self.differences.append(
                Difference(op, "MaxEnvelopeSize", sent.max_envelope_size, recorded.max_envelope_size)
            )
        if sent.operation_timeout != recorded.operation_timeout:
            self.differences.append(
                Difference(op, "OperationTimeout", sent.operation_timeout, recorded.operation_timeout)
            )
        if _shape(sent.body) != _shape(recorded.body):
            self.differences.append(Difference(op, "body", _shape(sent.body), _shape(recorded.body)))

    def kinds(self) -> set[str]:
        """The differences, by operation and what differs (without values): what a test documents."""
        return {f"{d.op}: {d.what}" for d in self.differences}


def _shape(element: ET.Element | None) -> list[str]:
    if element is None:
        return []
    return [e.tag.rsplit("}", 1)[-1] + "".join(sorted(f"@{k}" for k in e.attrib)) for e in element.iter()]


def _commands(message: bytes) -> list[tuple[str, bool]]:
    """The commands of a CREATE_PIPELINE message: (text, is_script)."""
    text = message[40:].decode("utf-8", "replace")
    commands = re.findall(r'<S N="Cmd">(.*?)</S>', text, re.S)
    scripts = re.findall(r'<B N="IsScript">(true|false)</B>', text)
    return [(command, script == "true") for command, script in zip(commands, scripts, strict=False)]


def _seconds(duration: str) -> float:
    found = re.match(r"PT([\d.]+)S", duration or "")
    return float(found.group(1)) if found else 20.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    replay: ReplayHost

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not (self.headers.get("Authorization") or "").lower().startswith("basic "):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="WSMAN"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, reply = self.replay.handle(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        if reply:
            self.wfile.write(reply)
