"""One remote shell of the WinRM transport: its connections, requests, receive threads and executions.

A :class:`Shell` is a PSRP runspace pool on the host (:class:`~pswrap.transports.psrp.PSRPClient`
without I/O, its payloads in the messages of :mod:`.wsman`). Requests run on :class:`Connections`:
pypsrp ``WSMan`` objects, each one authenticated HTTP connection carrying one request at a time, made
as concurrency needs and replaced when idle or broken. Each running pipeline has a thread long-polling
its output; a Receive the host answers with the timed-out fault is simply sent again.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

import psrpcore

from pswrap.errors import (
    ConfigError,
    InvocationNotStarted,
    InvocationTimeout,
    ProtocolError,
    TransportError,
    WinRMAuthenticationError,
    WinRMError,
)
from pswrap.secret import get_logger, protect_loggers
from pswrap.transports import wsman
from pswrap.transports.base import Invocation, QueuedExecution
from pswrap.transports.psrp import PSRPClient, RemotePipeline

if TYPE_CHECKING:
    from pypsrp.wsman import WSMan

    from pswrap.transports.winrm import WinRMTransport

__all__ = ["Connections", "Shell", "protect_pypsrp_logs"]

log = get_logger("pswrap.transports.winrm")

# A connection unused for this long is replaced before its next request: WinRM hosts close idle
# HTTP connections, and an NTLM/Kerberos session (and its message encryption) dies with its connection.
_CONNECTION_IDLE_LIMIT = 50.0
# How long a health probe of an idle shell may take.
_PROBE_TIMEOUT = 10.0


# --- logging -------------------------------------------------------------------------------------

_STREAM_CONTENT = re.compile(
    rb"(<(?:[\w.-]+:)?(?:Stream|Arguments|creationXml)\b[^>]*>)([^<]+)(</)", re.IGNORECASE
)


class _MessageFilter(logging.Filter):
    """Hide the PSRP data in the WSMan messages pypsrp logs at DEBUG: it carries parameter values
    (access tokens) base64-encoded, which the value-based secret scrubbing cannot recognise. Also
    lower pypsrp's error about an HTTP error without a WSMan fault, which pswrap handles."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if isinstance(message, str) and message.startswith("Failed to parse WSManFault message"):
            # pswrap handles that answer (retries on a fresh connection, or reports it): not an error here.
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        if isinstance(message, str) and message.startswith(("Sending message", "Received message")):
            head, sep, body = message.partition(": ")
            hidden = _STREAM_CONTENT.sub(
                lambda m: (
                    m.group(1) + b"<%d base64 characters hidden by pswrap>" % len(m.group(2)) + m.group(3)
                ),
                body.encode("utf-8", "replace"),
            )
            record.msg = head + sep + hidden.decode("utf-8", "replace")
            record.args = None
        return True


_MESSAGE_FILTER = _MessageFilter()


def protect_pypsrp_logs() -> None:
    for name in ("pypsrp.wsman", "pypsrp"):
        logger = logging.getLogger(name)
        if _MESSAGE_FILTER not in logger.filters:
            logger.addFilter(_MESSAGE_FILTER)
    protect_loggers()


protect_pypsrp_logs()


# --- connections ---------------------------------------------------------------------------------


class Connections:
    """Authenticated HTTP connections (pypsrp WSMan objects), each carrying one request at a time.

    A connection that failed below WSMan (reset, timeout, TLS, authentication) is dropped; one idle
    longer than :data:`_CONNECTION_IDLE_LIMIT` is replaced; new ones are made as concurrency needs.
    """

    def __init__(self, transport: WinRMTransport) -> None:
        self._transport = transport
        self._lock = threading.Lock()
        self._idle: list[tuple[WSMan, float]] = []
        self._busy: set[int] = set()
        self._closed = False
        self.opened = 0
        #: The envelope size every request is sent with (and every answer asked to fit in).
        self.envelope_size = transport.max_envelope_size or wsman.DEFAULT_ENVELOPE_SIZE

    def payload_size(self) -> int:
        """The largest PSRP payload that fits in one envelope."""
        probe = self._transport._new_wsman(self.envelope_size)
        size = int(probe.max_payload_size)
        probe.close()
        return size

    @contextlib.contextmanager
    def use(self) -> Iterator[tuple[WSMan, bool]]:
        """A connection for one request, and whether it is new (not yet authenticated)."""
        from pypsrp.exceptions import WSManFaultError

        connection, fresh = self._take()
        try:
            yield connection, fresh
        except WSManFaultError:
            self._give_back(connection)  # the host answered: the connection is fine
            raise
        except BaseException:
            self._drop(connection)
            raise
        self._give_back(connection)

    def _take(self) -> tuple[WSMan, bool]:
        stale: list[WSMan] = []
        with self._lock:
            if self._closed:
                raise TransportError("the WinRM session is closed")
            now = time.monotonic()
            connection = None
            while self._idle:
                candidate, since = self._idle.pop()
                if now - since > _CONNECTION_IDLE_LIMIT:
                    stale.append(candidate)
                    continue
                connection = candidate
                break
        for old in stale:
            _quietly_close(old)
        fresh = connection is None
        if connection is None:
            connection = self._transport._new_wsman(self.envelope_size)
            with self._lock:
                self.opened += 1
        elif connection.max_envelope_size != self.envelope_size:
            connection.update_max_payload_size(self.envelope_size)
        with self._lock:
            self._busy.add(id(connection))
        return connection, fresh

    def _give_back(self, connection: WSMan) -> None:
        with self._lock:
            self._busy.discard(id(connection))
            if not self._closed:
                self._idle.append((connection, time.monotonic()))
                return
        _quietly_close(connection)

    def _drop(self, connection: WSMan) -> None:
        with self._lock:
            self._busy.discard(id(connection))
        _quietly_close(connection)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            _quietly_close(connection)


def _quietly_close(connection: WSMan) -> None:
    try:
        connection.close()
    except Exception:  # closing a broken connection may fail; there is nothing left to release
        log.debug("closing a WinRM connection failed", exc_info=True)


# --- the shell -----------------------------------------------------------------------------------


class Shell:
    """One remote shell (a PSRP runspace pool), its pipelines' receive threads and its connections."""

    def __init__(self, transport: WinRMTransport) -> None:
        self.transport = transport
        self.connections = Connections(transport)
        self.client = PSRPClient(pool_size=transport.pool_size, fragment_size=self.connections.payload_size())
        self.selectors: list[tuple[str, str]] = [("ShellId", str(self.client.pool_id).upper())]
        self.created = False
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._broken: str | None = None
        self._closing = False
        self._closed = False
        self._receivers: dict[uuid.UUID, threading.Thread] = {}
        self._last_activity = time.monotonic()

    # --- state ---

    @property
    def healthy(self) -> bool:
        return self._broken is None and not self._closing and self.client.ready

    def idle_for(self) -> float:
        """Seconds since the host last answered, 0 while something runs."""
        with self.client.lock:
            if any(not p.finished for p in self.client.pipelines.values()):
                return 0.0
        return time.monotonic() - self._last_activity

    def error(self, message: str, kind: type[TransportError] = TransportError) -> TransportError:
        if self._broken:
            message = f"{message}: {self._broken}"
        return kind(message)

    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait(self, predicate: Any, timeout: float | None) -> bool:
        with self._cond:
            return bool(self._cond.wait_for(lambda: predicate() or self._broken is not None, timeout))

    # --- requests ---

    def request(
        self,
        action: str,
        body: ET.Element | None,
        *,
        resource: str | None = None,
        options: list[tuple[str, str, dict[str, str]]] | None = None,
        selectors: bool = True,
        timeout: float | None = None,
    ) -> ET.Element:
        """Send one WSMan request on a free connection; returns the answer's SOAP body."""
        from pypsrp.wsman import NAMESPACES, OptionSet, SelectorSet

        option_set = None
        if options:
            option_set = OptionSet()
            for name, value, attributes in options:
                option_set.add_option(name, value, attributes)
        selector_set = None
        if selectors:
            selector_set = SelectorSet()
            for name, value in self.selectors:
                selector_set.add_option(name, value)
        for attempt in (1, 2):
            fresh = True
            try:
                with self.connections.use() as (connection, fresh):
                    envelope = connection.invoke(
                        action,
                        resource or self.transport.resource_uri,
                        body,
                        option_set,
                        selector_set,
                        timeout,  # type: ignore[arg-type]
                    )
                break
            except Exception as exc:
                # The host closed a kept-alive connection (idle, restarted service): the request went out
                # on a new one, unauthenticated, and was refused unread. It is safe to send it again.
                if attempt == 2 or fresh or not _refused_unread(exc):
                    raise
                log.debug(
                    "the WinRM host refused a request on a reused connection (%s); retrying", _short(exc)
                )
        self._touch()
        found = envelope.find("s:Body", namespaces=NAMESPACES)
        if found is None:
            raise ProtocolError(
                f"{self.transport.host} answered {action.rsplit('/', 1)[-1]} without a SOAP body"
            )
        return found

    def failure(self, exc: BaseException, operation: str) -> WinRMError:
        """The :class:`WinRMError` (or subclass) that says what went wrong doing ``operation``."""
        if isinstance(exc, ConfigError):
            raise exc
        return _describe(self.transport, exc, operation)

    # --- opening ---

    def open(self) -> None:
        from pypsrp.wsman import WSManAction

        client = self.client
        transport = self.transport
        client.open()
        payloads = client.outgoing()
        body = wsman.create_shell(client.pool_id, payloads[0].data)
        options = [("protocolversion", wsman.PROTOCOL_VERSION, {"MustComply": "true"})]
        operation = f"open a PowerShell session ({transport.configuration})"
        try:
            answer = self.request(WSManAction.CREATE, body, options=options, selectors=False)
            self.selectors = wsman.shell_selectors(answer)
        except (ValueError, ProtocolError) as exc:
            raise WinRMError(
                f"{transport.host} answered the request to {operation} with something pswrap cannot read: {exc}",
                url=transport.url,
                operation=operation,
            ) from None
        except Exception as exc:
            raise self.failure(exc, operation) from None
        self.created = True
        for payload in payloads[1:]:
            self._send_payload(payload, operation)
        deadline = time.monotonic() + transport.open_timeout
        while not client.ready:
            if client.broken_reason:
                raise WinRMError(
                    f"PowerShell on {transport.host} could not open a session: {client.broken_reason}",
                    url=transport.url,
                    operation=operation,
                )
            if time.monotonic() >= deadline:
                raise WinRMError(
                    f"{transport.host} did not open a PowerShell session within {transport.open_timeout:g} s",
                    url=transport.url,
                    operation=operation,
                )
            try:
                answer = self.request(WSManAction.RECEIVE, wsman.receive(), options=_KEEPALIVE)
            except Exception as exc:
                if _is_timed_out(exc):
                    continue
                raise self.failure(exc, operation) from None
            try:
                received = wsman.parse_receive(answer)
                # One payload for the whole answer (fragments delimit themselves): output read at once.
                client.receive(
                    psrpcore.PSRPPayload(b"".join(received.data), psrpcore.StreamType.default, None)
                )
            except (ValueError, ProtocolError) as exc:
                raise WinRMError(
                    f"{transport.host} sent something that is not PowerShell remoting data: {exc}",
                    url=transport.url,
                    operation=operation,
                ) from None
            self.flush(operation)
        self._size_envelope()

    def _size_envelope(self) -> None:
        """Use the largest envelope the host allows (unless the user set one): hosts speaking PSRP 2.2
        or later accept 500 KB by default (PowerShell's client and pypsrp assume it); an administrator
        can read the host's own MaxEnvelopeSizekb, which wins. Fewer, larger messages: fewer round trips."""
        from pypsrp.wsman import WSManAction

        if self.transport.max_envelope_size is not None:
            return
        protocol = self.client.server_protocol
        if protocol is None or protocol < (2, 2):
            return
        size = wsman.LARGE_ENVELOPE_SIZE
        try:
            answer = self.request(
                WSManAction.GET,
                None,
                resource=wsman.CONFIG_RESOURCE,
                selectors=False,
                timeout=min(self.transport.operation_timeout, _PROBE_TIMEOUT),
            )
            size = wsman.max_envelope_size(answer) or size
        except Exception as exc:  # not an administrator (access denied), or no such resource
            log.debug("the host's WinRM configuration is not readable (%s); assuming 500 KB", _short(exc))
        self.connections.envelope_size = size
        with self.client.lock:
            self.client.fragment_size = self.connections.payload_size()

    def alive(self) -> bool:
        """Probe the shell (a WSMan Get of it): false when the host no longer has it, or says another
        client disconnected it (State Disconnected: unusable until reconnected)."""
        from pypsrp.wsman import WSManAction

        try:
            answer = self.request(
                WSManAction.GET,
                None,
                resource=wsman.SHELL_RESOURCE,
                timeout=min(self.transport.operation_timeout, _PROBE_TIMEOUT),
            )
        except Exception as exc:
            log.debug("the WinRM shell probe failed: %s", _short(exc))
            return False
        state = wsman.shell_state(answer)
        if state == "Disconnected":
            log.debug("the WinRM shell is disconnected")
            return False
        return True

    # --- sending ---

    def _send_payload(self, payload: psrpcore.PSRPPayload, operation: str) -> None:
        from pypsrp.wsman import WSManAction

        stream = "pr" if payload.stream_type == psrpcore.StreamType.prompt_response else "stdin"
        try:
            self.request(WSManAction.SEND, wsman.send(stream, payload.data, payload.pipeline_id))
        except Exception as exc:
            raise self.failure(exc, operation) from None

    def flush(self, operation: str) -> None:
        """Send what the PSRP client has queued (host-call answers, key exchange, input), in order."""
        with self._send_lock:
            with self.client.lock:
                payloads = self.client.outgoing()
            for payload in payloads:
                self._send_payload(payload, operation)

    # --- running ---

    def start(self, invocation: Invocation) -> _WinRMExecution:
        from pypsrp.wsman import WSManAction

        client = self.client
        transport = self.transport
        pipeline = client.prepare(invocation)  # bad values fail here, before anything is sent
        deadline = None if invocation.timeout is None else time.monotonic() + invocation.timeout
        operation = f"start {invocation.description}"
        with self._send_lock:
            try:
                with client.lock:
                    client.begin(pipeline)
                    payloads = client.outgoing()
            except BaseException as exc:
                client.abandon(pipeline, TransportError(f"could not start {invocation.description}: {exc}"))
                raise
            ours = [p for p in payloads if p.pipeline_id == pipeline.id]
            others = [p for p in payloads if p.pipeline_id != pipeline.id]
            try:
                for payload in others:
                    self._send_payload(payload, operation)
                body = wsman.command(pipeline.id, ours[0].data)
                self.request(WSManAction.COMMAND, body, options=_COMMAND_OPTIONS)
            except Exception as exc:
                raw = exc.__context__ if isinstance(exc, WinRMError) and exc.__context__ else exc
                error = self.failure(exc, operation)
                client.abandon(pipeline, error)
                if error.code == wsman.SHELL_NOT_FOUND:
                    self.abandon(
                        f"the PowerShell session on {transport.host} is gone (WinRM closes shells idle for "
                        "too long, and a restart of the host or its WinRM service drops them)"
                    )
                    raise self.error(
                        f"could not start {invocation.description}", InvocationNotStarted
                    ) from exc
                if _never_sent(raw):
                    self.abandon(str(error))
                    raise InvocationNotStarted(f"could not start {invocation.description}: {error}") from exc
                if not _is_fault(raw):  # the connection broke: the command may or may not have started
                    self.abandon(str(error))
                raise error from None
            thread = threading.Thread(
                target=self._receive_loop,
                args=(pipeline,),
                name=f"pswrap-winrm-{str(pipeline.id)[:8]}",
                daemon=True,
            )
            self._receivers[pipeline.id] = thread
            thread.start()
            try:
                for payload in ours[1:]:
                    self._send_payload(payload, operation)
            except WinRMError as error:
                pipeline.fail(error)
                self._terminate_later(pipeline)
        return _WinRMExecution(self, pipeline, deadline)

    def _receive_loop(self, pipeline: RemotePipeline) -> None:
        from pypsrp.wsman import WSManAction

        client = self.client
        description = pipeline.invocation.description
        operation = f"receive the output of {description}"
        body = wsman.receive(pipeline.id)
        try:
            while not pipeline.finished and self._broken is None:
                try:
                    answer = self.request(WSManAction.RECEIVE, body, options=_KEEPALIVE)
                except Exception as exc:
                    if _is_timed_out(exc):
                        continue
                    if pipeline.finished or self._broken is not None or self._closing:
                        return
                    error = self.failure(exc, operation)
                    if error.code == wsman.SHELL_NOT_FOUND and not self.alive():
                        self.abandon(str(error))
                        return
                    if error.code == wsman.SHELL_NOT_FOUND:  # the same code for a command the host closed
                        error = WinRMError(
                            f"{self.transport.host} closed the command of {description} (the session lives "
                            f"on): {error.reason}",
                            code=error.code,
                            reason=error.reason,
                            url=self.transport.url,
                            operation=operation,
                        )
                    pipeline.fail(error)
                    return
                try:
                    received = wsman.parse_receive(answer)
                    # One payload for the whole answer (fragments delimit themselves): output read at once.
                    client.receive(
                        psrpcore.PSRPPayload(
                            b"".join(received.data), psrpcore.StreamType.default, pipeline.id
                        )
                    )
                except (ValueError, ProtocolError) as exc:
                    self.abandon(
                        f"{self.transport.host} sent something that is not PowerShell remoting data ({exc})"
                    )
                    return
                self._notify()
                try:
                    self.flush(operation)
                except WinRMError as error:
                    pipeline.fail(error)
                    return
                if received.done and not pipeline.finished:
                    pipeline.fail(
                        WinRMError(
                            f"{self.transport.host} ended the command of {description} without its final state",
                            url=self.transport.url,
                            operation=operation,
                        )
                    )
        except Exception as exc:  # a pswrap bug: still end the invocation, and say what happened
            log.exception("receiving the output of %s failed", description)
            pipeline.fail(
                WinRMError(
                    f"pswrap failed receiving the output of {description}: {exc!r}", url=self.transport.url
                )
            )
        finally:
            self._terminate(pipeline)
            self._receivers.pop(pipeline.id, None)
            self._notify()

    def _terminate(self, pipeline: RemotePipeline) -> None:
        """Close the pipeline's command on the host (best effort) and forget it."""
        from pypsrp.wsman import WSManAction

        if self._broken is None and not self._closed:
            try:
                self.request(WSManAction.SIGNAL, wsman.signal(pipeline.id, wsman.Signal.TERMINATE))
            except Exception as exc:
                log.debug(
                    "closing the command of %s failed: %s", pipeline.invocation.description, _short(exc)
                )
        self.client.forget(pipeline)

    def _terminate_later(self, pipeline: RemotePipeline) -> None:
        threading.Thread(target=self._terminate, args=(pipeline,), daemon=True).start()

    def stop(self, pipeline: RemotePipeline) -> None:
        """Ask PowerShell to stop the pipeline (the signal travels on its own thread)."""
        with self.client.lock:
            if not self.client.stop(pipeline):
                return
        threading.Thread(
            target=self._signal_stop, args=(pipeline,), name="pswrap-winrm-stop", daemon=True
        ).start()

    def _signal_stop(self, pipeline: RemotePipeline) -> None:
        from pypsrp.wsman import WSManAction

        try:
            self.request(WSManAction.SIGNAL, wsman.signal(pipeline.id, wsman.Signal.STOP))
        except Exception as exc:
            log.debug("stopping %s failed: %s", pipeline.invocation.description, _short(exc))

    # --- ending ---

    def abandon(self, reason: str) -> None:
        """Give the shell up: running invocations fail with ``reason``; the host is told in the background."""
        with self._cond:
            if self._broken is None:
                self._broken = reason
            self._cond.notify_all()
        self.client.fail_all(
            lambda p: WinRMError(f"{reason} while running {p.invocation.description}", url=self.transport.url)
        )
        threading.Thread(target=self._delete, name="pswrap-winrm-abandon", daemon=True).start()

    def _delete(self) -> None:
        from pypsrp.wsman import WSManAction

        with self._cond:
            if self._closed:
                return
            self._closed = True
        if self.created:
            try:
                self.request(
                    WSManAction.DELETE, None, timeout=min(self.transport.operation_timeout, _PROBE_TIMEOUT)
                )
            except Exception as exc:
                log.debug("deleting the WinRM shell failed: %s", _short(exc))
        self.connections.close()

    def close(self) -> None:
        """Stop what runs, delete the shell on the host, release the connections."""
        if self._closing:
            return
        self._closing = True
        grace = self.transport.stop_grace
        if self._broken is None and self.created:
            running = [p for p in list(self.client.pipelines.values()) if not p.finished]
            for pipeline in running:
                self.stop(pipeline)
                # Its reader raises this before the "stopped" outcome the host will send: not a success.
                pipeline.items.put(
                    TransportError(f"the session was closed while running {pipeline.invocation.description}")
                )
            self.wait(lambda: all(p.finished for p in running), grace)
        self.client.fail_all(
            lambda p: TransportError(f"the session was closed while running {p.invocation.description}")
        )
        self._delete()
        deadline = time.monotonic() + grace  # a receive thread may be waiting on a host that stalls
        for thread in list(self._receivers.values()):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


_Options = list[tuple[str, str, dict[str, str]]]
_KEEPALIVE: _Options = [("WSMAN_CMDSHELL_OPTION_KEEPALIVE", "True", {})]
_COMMAND_OPTIONS: _Options = [("WINRS_SKIP_CMD_SHELL", "False", {})]


class _WinRMExecution(QueuedExecution):
    def __init__(self, shell: Shell, pipeline: RemotePipeline, deadline: float | None) -> None:
        super().__init__(pipeline.items, pipeline.invocation, deadline, shell.transport.stop_grace)
        self._shell = shell
        self._pipeline = pipeline

    def stop(self) -> None:
        self._shell.stop(self._pipeline)

    def give_up(self, limit: float) -> InvocationTimeout:
        shell = self._shell
        description = self._pipeline.invocation.description
        grace = shell.transport.stop_grace
        shell.abandon(
            f"{shell.transport.host} did not stop {description} within {grace:g} s of its "
            f"{limit:g} s timeout, so pswrap gave the session up"
        )
        return InvocationTimeout(
            f"{description} did not finish within its timeout of {limit:g} s and "
            f"{shell.transport.host} did not answer the stop signal within {grace:g} s: pswrap gave the "
            "remote session up (the next invocation opens a fresh one)",
            timeout=limit,
        )


# --- errors --------------------------------------------------------------------------------------


def _is_timed_out(exc: BaseException) -> bool:
    """A WSMan OperationTimeout fault: the host had nothing to say (poll again)."""
    from pypsrp.exceptions import WSManFaultError

    return isinstance(exc, WSManFaultError) and exc.code == wsman.OPERATION_TIMED_OUT


def _is_fault(exc: BaseException) -> bool:
    """Whether the host answered with a WSMan fault (it refused the request; the connection is fine)."""
    from pypsrp.exceptions import WSManFaultError

    return isinstance(exc, WSManFaultError)


def _refused_unread(exc: BaseException) -> bool:
    """A 401, or a 400 for a body the host could not decrypt: the request was not processed."""
    from pypsrp.exceptions import AuthenticationError, WinRMTransportError

    return isinstance(exc, AuthenticationError) or (isinstance(exc, WinRMTransportError) and exc.code == 400)


def _never_sent(exc: BaseException) -> bool:
    """Whether the request provably never reached WinRM (refused connection, rejected authentication)."""
    import requests
    from pypsrp.exceptions import AuthenticationError

    if isinstance(exc, (AuthenticationError, requests.exceptions.ConnectTimeout)):
        return True
    if isinstance(exc, WinRMAuthenticationError):
        return True
    text = str(exc)
    return isinstance(exc, requests.exceptions.ConnectionError) and (
        "NewConnectionError" in text or "Failed to establish a new connection" in text
    )


def _tls_failure(transport: WinRMTransport, text: str) -> str:
    """What a failed TLS handshake means, and what to do about it, in one sentence."""
    url = transport.url
    reason = _tls_reason(text)
    lowered = text.lower()
    if "wrong_version_number" in lowered or "wrong version number" in lowered or "record layer" in lowered:
        return (
            f"{url} does not answer in TLS ({reason}): port {transport.port} is likely WinRM's HTTP "
            "listener, so use scheme='http' (port 5985, messages encrypted by negotiate, ntlm or "
            "kerberos) or the HTTPS listener's port (5986)"
        )
    if "certificate_verify_failed" in lowered or "certificate verify failed" in lowered:
        return (
            f"the certificate of {url} could not be checked ({reason}): give the certificate of the CA "
            "that issued it with ca_bundle (verify=False turns checking off)"
        )
    return f"the TLS handshake with {url} failed ({reason})"


def _tls_reason(text: str) -> str:
    """OpenSSL's own words from under urllib3's 'Max retries exceeded … Caused by' wrapping."""
    found = re.search(r"\[SSL(?:: [A-Z_]+)?\] ([^()'\"]+?)\s*(?:\(_ssl\.c:\d+\))", text)
    if found:
        return found.group(1).strip()
    found = re.search(r"Caused by \w+\((?:\w+\()*(?:\d+, )?['\"]?([^'\")]+)", text)
    return found.group(1).strip() if found else _short_text(text)


def _short(exc: BaseException) -> str:
    """An exception's gist, without urllib3's nesting."""
    text = str(exc)
    if "SSL" in text:
        return _tls_reason(text)
    return _short_text(text)


def _short_text(text: str) -> str:
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip()
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the host closed the connection without answering"
    if "Read timed out" in text:
        return "no answer in time"
    return text if len(text) <= 300 else text[:300] + "…"


def _describe(transport: WinRMTransport, exc: BaseException, operation: str) -> WinRMError:
    import requests
    from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError

    if isinstance(exc, WinRMError):
        return exc
    host = transport.host
    url = transport.url
    facts: dict[str, Any] = {"url": url, "operation": operation}
    if isinstance(exc, WSManFaultError):
        code = exc.code if isinstance(exc.code, int) else None
        reason = (exc.reason or "no reason given").strip()
        if code == wsman.SHELL_NOT_FOUND:
            text = f"the PowerShell session on {host} is gone ({reason})"
        elif code == 5:
            text = (
                f"{host} denied access to {operation} (WSMan fault 5: {reason}); the user needs to be allowed "
                f"to use the {transport.configuration} session configuration (usually: a member of the "
                "host's Administrators or Remote Management Users group)"
            )
        else:
            text = f"{host} could not {operation}: {reason} (WSMan fault {exc.code})"
        return WinRMError(text, code=code, reason=reason, **facts)
    if isinstance(exc, AuthenticationError) and transport.scheme == "http" and not transport.encrypted:
        return WinRMAuthenticationError(
            f"{host} refused to {operation} over plain HTTP (HTTP 401), as Windows does unless its WinRM "
            "service allows unencrypted traffic (AllowUnencrypted, off by default): use HTTPS "
            "(scheme='https', port 5986) or an auth that encrypts (negotiate, ntlm, kerberos), or, if the "
            "host does allow it, check the user name and password",
            code=401,
            **facts,
        )
    if isinstance(exc, AuthenticationError):
        who = f"user {transport.username!r}" if transport.username else "the current user"
        return WinRMAuthenticationError(
            f"{host} rejected the credentials of {who} ({transport.auth} authentication) when asked to "
            f"{operation}: check the user name (DOMAIN\\user or user@domain) and the password, and that "
            f"{transport.auth} is enabled on the host's WinRM service",
            code=401,
            **facts,
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return WinRMError(_tls_failure(transport, str(exc)), **facts)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return WinRMError(
            f"could not connect to {url} within {transport.connection_timeout:g} s when asked to {operation}",
            **facts,
        )
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return WinRMError(
            f"{host} did not answer within {transport.operation_timeout + 5:g} s when asked to {operation}",
            **facts,
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        if _never_sent(exc):
            text = f"could not connect to {url} to {operation}: {_short(exc)}"
        else:
            text = f"the connection to {url} broke when asked to {operation}: {_short(exc)}"
        return WinRMError(text, **facts)
    if isinstance(exc, WinRMTransportError):
        text = " ".join(str(exc.response_text or "no content").split())[:300]
        return WinRMError(
            f"{host} answered HTTP {exc.code} when asked to {operation}: {text}", code=exc.code, **facts
        )
    return WinRMError(f"could not {operation} on {host}: {type(exc).__name__}: {_short(exc)}", **facts)
