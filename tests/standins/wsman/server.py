"""The WinRM host: HTTP on 127.0.0.1 with Negotiate (NTLM) authentication and message encryption
(or an HTTPS listener, which can offer Basic authentication too).

Authentication is per TCP connection, as on Windows: a request without credentials is answered
``401`` with ``WWW-Authenticate: Negotiate``; the client's tokens go through pyspnego's acceptor (users
from the NTLM_USER_FILE the fixture writes) until it completes; later requests on that connection
carry bodies sealed with the connection's context (:mod:`.encryption`). An unencrypted body is
refused with ``401`` unless unencrypted traffic is allowed (WinRM's ``AllowUnencrypted``). Requests
larger than the host's MaxEnvelopeSize are refused with the EncodingLimit fault.

The host counts requests (:attr:`WSManStandin.counts`), records every byte it receives before
decryption (:attr:`WSManStandin.received`) and every script its PowerShell parses, and has fault
switches (:meth:`WSManStandin.set_faults`): reject credentials, drop the connection on a Receive,
stall requests, answer with a WSMan fault; :meth:`WSManStandin.kill_shells` forgets every shell, as a
restart of the WinRM service does.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import os
import socket
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import spnego

from tests.standins.powershell.cli import build_table
from tests.standins.powershell.config import StandinConfig
from tests.standins.powershell.engine import Engine
from tests.standins.wsman import commands, encryption
from tests.standins.wsman.shells import Shells
from tests.standins.wsman.soap import (
    CONFIG,
    RSP,
    Action,
    BadRequest,
    Code,
    Fault,
    Request,
    answer,
    fault,
    parse_request,
)

SOAP_CONTENT_TYPE = "application/soap+xml;charset=UTF-8"
USER_FILE_VARIABLE = "NTLM_USER_FILE"


@dataclass
class Faults:
    """Fault switches. ``drop_receive``: drop the connection when the Nth Receive for a command arrives
    (1: the next one). ``stall``: short action names (``"Receive"``…) whose requests are held unanswered
    until the switch is cleared, then dropped. ``close_command``: the next Receive's command is closed
    first (its Receive then fails as Windows answers an unknown command). ``fault``: ``(action, code, message)`` answered to the next
    request of that action (``fault_times`` times)."""

    reject_credentials: bool = False
    drop_receive: int | None = None
    stall: frozenset[str] = frozenset()
    fault: tuple[str, int, str] | None = None
    fault_times: int = 1
    #: Close the command of the next Receive first, as another client's Signal would.
    close_command: bool = False


@dataclass
class RequestRecord:
    """One SOAP request the host processed."""

    user: str
    action: str
    selectors: dict[str, str] = field(default_factory=dict)
    encrypted: bool = True
    #: The MaxEnvelopeSize the request named (the largest answer its client accepts).
    max_envelope_size: int = 0


class _Recorder:
    """Wraps a connection's input: every byte read is recorded before anything decrypts it."""

    def __init__(self, raw: Any, sink: Any) -> None:
        self._raw = raw
        self._sink = sink

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._raw.read(size)
        self._sink(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data: bytes = self._raw.readline(size)
        self._sink(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class WSManStandin:
    """A WinRM host on 127.0.0.1 serving PowerShell (the pwsh stand-in's runtime) over WS-Management."""

    def __init__(
        self,
        users_file: Path,
        *,
        configurations: Iterable[str] = ("Microsoft.PowerShell",),
        denied_users: Iterable[str] = (),
        allow_unencrypted: bool = False,
        max_envelope_size: int = 512_000,
        max_operation_timeout: float = 60.0,
        max_requests: int = 200_000,
        stall_limit: float = 30.0,
        idle_connection_timeout: float = 120.0,
        tls: ssl.SSLContext | None = None,
        basic: bool = False,
        powershell: StandinConfig | None = None,
    ) -> None:
        self.users_file = users_file
        #: WinRM's AllowUnencrypted: accept bodies that are not sealed (reset() restores the start value).
        self.allow_unencrypted = allow_unencrypted
        self._allow_unencrypted = allow_unencrypted
        self.max_envelope_size = max_envelope_size
        self.max_operation_timeout = max_operation_timeout
        self.max_requests = max_requests
        self.stall_limit = stall_limit
        #: HTTP.sys closes a kept-alive connection idle this long (and its authentication with it).
        self.idle_connection_timeout = idle_connection_timeout
        #: HTTPS (a WinRM HTTPS listener) when given: TLS protects the messages, so they are not sealed.
        self.tls = tls
        #: Basic authentication is offered too (WinRM's Auth/Basic; over HTTP only with AllowUnencrypted).
        self.basic = basic
        #: The PowerShell stand-in's configuration (switches, extensions) for shells created from now on.
        self.powershell = powershell or StandinConfig()
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.received = bytearray()
        self.requests: list[RequestRecord] = []
        self.scripts: list[str] = []
        self.faults = Faults()
        self._released = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._previous_user_file: str | None = None
        self.shells = Shells(
            self._engine,
            configurations=set(configurations),
            denied_users={u.casefold() for u in denied_users},
            endpoint="http://127.0.0.1/wsman",
        )

    # --- life cycle ---

    def start(self) -> WSManStandin:
        self._previous_user_file = os.environ.get(USER_FILE_VARIABLE)
        os.environ[USER_FILE_VARIABLE] = str(self.users_file)
        handler = type("_Handler", (_Handler,), {"timeout": self.idle_connection_timeout})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        if self.tls is not None:
            httpd.socket = self.tls.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        httpd.standin = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self.shells.endpoint = f"{self.url}"
        self._thread = threading.Thread(target=httpd.serve_forever, name="wsman-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)
        self.shells.drop_all()
        if self._previous_user_file is None:
            os.environ.pop(USER_FILE_VARIABLE, None)
        else:
            os.environ[USER_FILE_VARIABLE] = self._previous_user_file

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the stand-in first"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/wsman"

    def reset(self) -> None:
        """Back to a healthy host with no shells, switches, records or counts (between tests)."""
        self.set_faults()
        self.shells.drop_all()
        self.shells.signals.clear()
        with self._lock:
            sockets = list(self._sockets)
            self.counts.clear()
            self.received.clear()
            self.requests.clear()
            self.scripts.clear()
        for sock in sockets:  # each test starts with fresh connections (and authenticates again)
            _shutdown(sock)
        self.powershell = StandinConfig()
        self.allow_unencrypted = self._allow_unencrypted

    def set_faults(self, **switches: Any) -> None:
        """Replace the fault switches (see :class:`Faults`); no arguments clears them."""
        if "stall" in switches:
            switches["stall"] = frozenset(switches["stall"])
        with self._lock:
            self.faults = Faults(**switches)
            self._released.set()
            self._released = threading.Event()

    def close_connections(self) -> int:
        """Close every client connection, as WinRM does with idle ones (their authentication goes too)."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)
        return len(sockets)

    def kill_shells(self) -> int:
        """Forget every shell at once, as when WinRM restarts or drops idle shells. Returns how many."""
        return self.shells.drop_all()

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    # --- internals ---

    def _engine(self) -> Engine:
        config = self.powershell
        table = build_table(config)
        commands.register(table)
        return Engine(table=table, config=config, on_script=self._script)

    def _script(self, text: str) -> None:
        with self._lock:
            self.scripts.append(text)

    def _record(self, data: bytes) -> None:
        with self._lock:
            self.received += data

    def _track(self, sock: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._sockets.add(sock)
            else:
                self._sockets.discard(sock)

    def handle(self, plain: bytes, user: str, client_ip: str, encrypted: bool) -> tuple[int, bytes] | None:
        """Process one SOAP request: ``(status, envelope)``, or ``None`` to drop the connection."""
        try:
            request = parse_request(plain)
        except BadRequest:
            return 400, b""
        except Fault as problem:
            return 500, fault(problem.code, problem.message, relates_to=None)
        short = Action.short(request.action)
        self.count(short)
        with self._lock:
            self.requests.append(
                RequestRecord(user, short, dict(request.selectors), encrypted, request.max_envelope_size)
            )
            faults = self.faults
            released = self._released
        try:
            if len(plain) > self.max_envelope_size:
                raise Fault(Code.ENCODING_LIMIT, "The WS-Management service cannot process the request because "
                            "the request size exceeded the configured MaxEnvelopeSize quota.")  # fmt: skip
            if short in faults.stall:
                self.count("stalled")
                released.wait(self.stall_limit)
                return None
            planned = faults.fault
            if planned is not None and planned[0] == short:
                with self._lock:
                    if self.faults.fault_times > 0:
                        self.faults.fault_times -= 1
                        if self.faults.fault_times == 0:
                            self.faults.fault = None
                        raise Fault(planned[1], planned[2])
            if short == "Receive" and faults.drop_receive is not None and _for_command(request):
                with self._lock:
                    if self.faults.drop_receive is not None:
                        self.faults.drop_receive -= 1
                        if self.faults.drop_receive <= 0:
                            self.faults.drop_receive = None
                            self.counts["dropped"] += 1
                            return None
            if short == "Receive" and faults.close_command and _for_command(request):
                with self._lock:
                    self.faults.close_command = False
                self.shells.close_command(request, user)
            request.operation_timeout = min(request.operation_timeout, self.max_operation_timeout)
            reply = self._dispatch(request, short, user, client_ip)
            if len(reply) > request.max_envelope_size:
                self.count("answers_over_limit")  # a bug in the stand-in: Windows never does this
            return 200, reply
        except Fault as problem:
            self.count("faults")
            return 500, fault(
                problem.code,
                problem.message,
                relates_to=request.message_id,
                reason=problem.reason,
                detail=problem.detail,
            )

    def _config(self) -> ET.Element:
        """The part of ``winrm/config`` clients read (Windows answers an administrator with all of it)."""
        config = ET.Element(f"{{{CONFIG}}}Config")
        ET.SubElement(config, f"{{{CONFIG}}}MaxEnvelopeSizekb").text = str(self.max_envelope_size // 1024)
        ET.SubElement(config, f"{{{CONFIG}}}MaxTimeoutms").text = str(int(self.max_operation_timeout * 1000))
        return config

    def _dispatch(self, request: Request, short: str, user: str, client_ip: str) -> bytes:
        shells = self.shells
        if request.action == Action.CREATE:
            return answer(request, shells.create(request, user, client_ip))
        if request.action == Action.GET and request.resource_uri == RSP:
            return answer(request, shells.get(request, user, client_ip))
        if request.action == Action.GET and request.resource_uri == CONFIG:
            return answer(request, self._config())
        if request.action == Action.COMMAND:
            return answer(request, shells.command(request, user))
        if request.action == Action.SEND:
            return answer(request, shells.send(request, user))
        if request.action == Action.RECEIVE:
            response = shells.receive(request, user)
            if response is None:
                raise Fault(
                    Code.OPERATION_TIMED_OUT,
                    "The WS-Management service cannot complete the operation "
                    "within the time specified in OperationTimeout.  ",
                )  # fmt: skip (two spaces, sic)
            return answer(request, response)
        if request.action == Action.SIGNAL:
            return answer(request, shells.signal(request, user))
        if request.action == Action.DELETE:
            shells.delete(request, user)
            return answer(request, None)
        raise Fault(Code.ACTION_NOT_SUPPORTED, f"The WS-Management service does not support the action {short} "
                    f"on {request.resource_uri}.")  # fmt: skip


def _for_command(request: Request) -> bool:
    body = request.body
    desired = body.find(f"{{{RSP}}}DesiredStream") if body is not None else None
    return desired is not None and bool(desired.get("CommandId"))


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """One TCP connection: its authentication context lives as long as the connection does."""

    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes: without this, Nagle's algorithm holds the body back
        # until the client's delayed ACK (40 ms a request), which HTTP.sys does not do.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.standin: WSManStandin = self.server.standin  # type: ignore[attr-defined]
        self.rfile = _Recorder(self.rfile, self.standin._record)  # type: ignore[assignment]
        self.context: Any = None
        self.user: str | None = None
        self.standin.count("connections")
        self.standin._track(self.connection, True)

    def handle(self) -> None:
        try:
            super().handle()
        except ssl.SSLError:  # a client that does not trust the certificate hangs up in the handshake
            self.standin.count("tls_failures")
        except (ConnectionError, TimeoutError):  # the client went away, or stayed idle too long
            self.close_connection = True

    def finish(self) -> None:
        self.standin._track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the counts and records instead."""

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _challenge(self, token: bytes | None = None) -> None:
        offer = "Negotiate" if token is None else f"Negotiate {base64.b64encode(token).decode('ascii')}"
        self.send_response(401)
        self.send_header("WWW-Authenticate", offer)
        if token is None and self.standin.basic:
            self.send_header("WWW-Authenticate", 'Basic realm="WSMAN"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _basic(self, credentials: str) -> str | None:
        """The user a Basic ``Authorization`` names, when the password is right."""
        try:
            user, _, password = (
                base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")
            )
        except (binascii.Error, ValueError):
            return None
        for line in self.standin.users_file.read_text(encoding="utf-8").splitlines():
            domain, _, rest = line.partition(":")
            name, _, secret = rest.partition(":")
            known = f"{domain}\\{name}" if domain else name
            if known.casefold() == user.casefold() and secret == password:
                return known
        return None

    def _drop(self) -> None:
        self.close_connection = True
        _shutdown(self.connection)

    def do_GET(self) -> None:
        self._reply(405, headers={"Allow": "POST"})

    def do_POST(self) -> None:
        standin = self.standin
        standin.count("requests")
        if standin.counts["requests"] > standin.max_requests:
            self._reply(503)
            self.close_connection = True
            return
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._reply(411)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/").lower() != "/wsman":
            self._reply(404)
            return
        final_token = None
        authorization = self.headers.get("Authorization")
        basic_user = None
        if authorization and authorization.partition(" ")[0].lower() == "basic" and standin.basic:
            basic_user = (
                None if standin.faults.reject_credentials else self._basic(authorization.partition(" ")[2])
            )
            if basic_user is None:
                standin.count("auth_failures")
                self._challenge()
                return
            self.user = basic_user
        elif authorization:
            scheme, _, token_text = authorization.partition(" ")
            if scheme.lower() != "negotiate":
                self._challenge()
                return
            if self.context is None or self.context.complete:
                self.context = spnego.server(protocol="negotiate")
                self.user = None
                standin.count("handshakes")
            try:
                out = self.context.step(base64.b64decode(token_text.strip(), validate=True))
                if self.context.complete and standin.faults.reject_credentials:
                    raise PermissionError("credentials rejected by the stand-in's switch")
            except (binascii.Error, ValueError, PermissionError, spnego.exceptions.SpnegoError):
                standin.count("auth_failures")
                self.context = None
                self._challenge()
                return
            if not self.context.complete:
                self._challenge(out)
                return
            self.user = str(self.context.client_principal or "")
            final_token = out
        elif self.context is None or not self.context.complete:
            self._challenge()
            return
        headers = {}
        if final_token:
            headers["WWW-Authenticate"] = f"Negotiate {base64.b64encode(final_token).decode('ascii')}"
        content_type = self.headers.get("Content-Type", "")
        encrypted = encryption.is_encrypted(content_type)
        if encrypted:
            try:
                plain = encryption.unwrap(self.context, body, content_type)
            except encryption.EncryptionError:
                standin.count("bad_encryption")
                self._reply(400, headers=headers)
                return
        elif body and not standin.allow_unencrypted and standin.tls is None:
            standin.count("refused_unencrypted")
            self.context = None
            self._challenge()
            return
        else:
            plain = body
        if not plain:  # the empty request that sets up the security context
            self._reply(200, headers=headers)
            return
        result = standin.handle(plain, self.user or "", self.client_address[0], encrypted)
        if result is None:
            self._drop()
            return
        status, reply = result
        if encrypted:
            reply = encryption.wrap(self.context, reply)
            headers["Content-Type"] = encryption.CONTENT_TYPE
        else:
            headers["Content-Type"] = SOAP_CONTENT_TYPE
        self._reply(status, reply, headers)
