"""``pswrap.Fleet``: one cmdlet on many tenants at once, results streamed as ``(tenant, object)``.

::

    with Fleet.from_profiles() as fleet:                      # every profile in the config file
        run = fleet.invoke("Get-Mailbox", ResultSize="Unlimited")
        for tenant, mailbox in run:                           # as they arrive, from every tenant
            print(tenant, mailbox.PrimarySmtpAddress)
        print(run.summary)                                    # objects, errors, retries, time per tenant

Each tenant runs in its own :class:`pswrap.ExchangeOnline`; a tenant's failure (bad credentials, an
unreachable service, a cmdlet error) is recorded in its :class:`TenantReport` and never stops the
others. At most ``concurrency`` tenants run at once, and results wait in a buffer of ``buffer``
objects (the tenants pause while the reader is behind), so memory stays bounded however many tenants
and objects there are.

Warm sessions are kept per tenant and transport and reused by the next call; beyond ``max_sessions``
PowerShell sessions (each a ``pwsh`` process) or ``max_rest_sessions`` REST sessions, or when the
process and its children use more than ``memory_budget`` bytes, the least recently used idle session
is closed (disconnected) first. Tokens come from :func:`pswrap.auth.get_token_provider`: one provider
and cache per identity, shared by every session of that identity.

Which transport runs a tenant's call (:func:`choose_transport`): the ``transport`` the caller gave
(a name, or a function of the invocation and the tenant's settings), else the tenant's own
``transport`` setting, else ``rest`` when Exchange's admin API can carry the call (one cmdlet, named
parameters, no pipeline input, no SecureString: no pwsh at all, thousands of tenants per machine),
else ``local`` (a ``pwsh`` session).

``backend="ray"`` runs the same tenants in Ray actors across a cluster (``pip install pswrap[ray]``,
see :mod:`pswrap._fleet_ray`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NamedTuple

from pswrap.config import ConfigFile, Settings
from pswrap.errors import ConfigError, NotSupportedByTransport, PswrapError, TransportError
from pswrap.objects import Record
from pswrap.secret import get_logger
from pswrap.transports.base import Invocation
from pswrap.verbs import is_read_only

__all__ = [
    "Fleet",
    "FleetItem",
    "FleetRun",
    "FleetSummary",
    "SessionPool",
    "TenantReport",
    "TransportRule",
    "choose_transport",
]

logger = get_logger("pswrap.fleet")

#: A function choosing the transport of one tenant's call: ``(invocation, settings) -> name``.
TransportRule = Callable[[Invocation, Settings], str]


def choose_transport(invocation: Invocation, settings: Settings) -> str:
    """The default rule: the tenant's ``transport`` setting, else ``rest`` when the admin API can carry
    the call, else ``local`` (a pwsh session)."""
    if settings.transport:
        return settings.transport
    from pswrap.transports import adminapi

    try:
        adminapi.request_body(invocation)
    except NotSupportedByTransport:
        return "local"
    return "rest"


class FleetItem(NamedTuple):
    """One output object and the tenant it came from."""

    tenant: str
    value: Any


@dataclass(frozen=True)
class TenantReport:
    """What ran on one tenant: ``objects`` handed out, ``errors`` (non-terminating error records),
    ``retries`` (calls run again: throttling, a rejected token, a broken session), ``duration``
    (seconds), and ``error`` — what stopped it (``None`` when it completed)."""

    tenant: str
    transport: str | None
    objects: int = 0
    errors: int = 0
    retries: int = 0
    duration: float = 0.0
    error: str | None = None
    error_type: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the call completed without any error."""
        return self.error is None and self.errors == 0


@dataclass
class FleetSummary:
    """Every tenant's :class:`TenantReport`, in the order the tenants finished."""

    reports: dict[str, TenantReport] = field(default_factory=dict)
    duration: float = 0.0

    @property
    def failed(self) -> list[str]:
        """Tenants that stopped with an error or reported errors."""
        return [name for name, report in self.reports.items() if not report.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def objects(self) -> int:
        return sum(r.objects for r in self.reports.values())

    def __getitem__(self, tenant: str) -> TenantReport:
        return self.reports[tenant]

    def __len__(self) -> int:
        return len(self.reports)

    def __str__(self) -> str:
        lines = [
            f"{len(self.reports)} tenants, {self.objects} objects, {len(self.failed)} failed, "
            f"{self.duration:.1f} s"
        ]
        for report in self.reports.values():
            state = "ok" if report.ok else (report.error or f"{report.errors} errors")
            lines.append(
                f"  {report.tenant}: {report.objects} objects via {report.transport or '-'}, "
                f"{report.errors} errors, {report.retries} retries, {report.duration:.2f} s: {state}"
            )
        return "\n".join(lines)


# --- warm sessions --------------------------------------------------------------------------------


class _Warm:
    """One warm session and the retries its transport reported."""

    def __init__(self, exo: Any) -> None:
        self.exo = exo
        self.rest_retries = 0
        self.busy = False

    def retry(self, _event: Any) -> None:
        self.rest_retries += 1

    @property
    def retries(self) -> int:
        return self.rest_retries + int(getattr(self.exo, "retried", 0))


class SessionPool:
    """Warm :class:`pswrap.ExchangeOnline` sessions per ``(tenant, transport)``, least recently used
    closed first beyond the limits. ``factory(tenant, transport, on_retry)`` builds a session."""

    def __init__(
        self,
        factory: Callable[[str, str, Callable[[Any], None]], Any],
        *,
        max_sessions: int = 8,
        max_rest_sessions: int = 256,
        memory_budget: int | None = None,
    ) -> None:
        if max_sessions < 1 or max_rest_sessions < 1:
            raise ConfigError("max_sessions and max_rest_sessions must be at least 1")
        self._factory = factory
        self.max_sessions = max_sessions
        self.max_rest_sessions = max_rest_sessions
        self.memory_budget = memory_budget
        self._warm: OrderedDict[tuple[str, str], _Warm] = OrderedDict()
        self._changed = threading.Condition()
        self._closed = False
        #: Sessions closed to make room (least recently used first), as ``(tenant, transport)``.
        self.evicted: list[tuple[str, str]] = []

    def _limit(self, transport: str) -> int:
        return self.max_rest_sessions if transport == "rest" else self.max_sessions

    def _count(self, transport: str) -> int:
        rest = transport == "rest"
        return sum(1 for (_, t) in self._warm if (t == "rest") == rest)

    @contextlib.contextmanager
    def lease(self, tenant: str, transport: str) -> Iterator[_Warm]:
        """The tenant's warm session (made when there is none), for this caller alone until it returns."""
        warm = self._acquire(tenant, transport)
        try:
            yield warm
        finally:
            with self._changed:
                warm.busy = False
                self._changed.notify_all()

    def _acquire(self, tenant: str, transport: str) -> _Warm:
        key = (tenant, transport)
        doomed: list[_Warm] = []
        try:
            with self._changed:
                while True:
                    if self._closed:
                        raise PswrapError("the fleet is closed")
                    warm = self._warm.get(key)
                    if warm is not None and not warm.busy:
                        self._warm.move_to_end(key)
                        warm.busy = True
                        return warm
                    if warm is None and self._make_room(transport, doomed):
                        break
                    self._changed.wait(1.0)
                placeholder = _Warm(None)
                placeholder.busy = True
                self._warm[key] = placeholder
        finally:
            for old in doomed:
                _close_quietly(old.exo)
        try:
            placeholder.exo = self._factory(tenant, transport, placeholder.retry)
        except BaseException:
            with self._changed:
                self._warm.pop(key, None)
                self._changed.notify_all()
            raise
        return placeholder

    def _make_room(self, transport: str, doomed: list[_Warm]) -> bool:
        """Close idle sessions until a new one fits (the caller holds the lock); ``False``: wait."""
        limit = self._limit(transport)
        while True:
            full = self._count(transport) >= limit
            over = not full and self._over_budget(doomed)
            if not full and not over:
                return True
            # The least recently used idle session: of the same kind when full, of any kind for memory.
            victim = next(
                (k for k, w in self._warm.items() if not w.busy and (over or _same(k[1], transport))), None
            )
            if victim is None:
                return not full  # over the memory budget with nothing idle: go on rather than stall
            doomed.append(self._warm.pop(victim))
            self.evicted.append(victim)

    def _over_budget(self, doomed: list[_Warm]) -> bool:
        if self.memory_budget is None or doomed:
            return False  # sessions already chosen for closing free their memory once closed
        used = process_tree_rss()
        return used is not None and used > self.memory_budget

    def discard(self, tenant: str, transport: str) -> None:
        """Close and forget the tenant's session (it broke); the next lease makes a new one."""
        with self._changed:
            warm = self._warm.pop((tenant, transport), None)
            self._changed.notify_all()
        if warm is not None:
            _close_quietly(warm.exo)

    @property
    def warm(self) -> list[tuple[str, str]]:
        """The warm sessions, least recently used first."""
        with self._changed:
            return list(self._warm)

    def close(self) -> None:
        """Close (disconnect) every session."""
        with self._changed:
            self._closed = True
            sessions = list(self._warm.values())
            self._warm.clear()
            self._changed.notify_all()
        for warm in sessions:
            _close_quietly(warm.exo)


def _same(a: str, b: str) -> bool:
    return (a == "rest") == (b == "rest")


def _close_quietly(exo: Any) -> None:
    if exo is None:
        return
    try:
        exo.close()
    except Exception as exc:  # one broken session must not stop the others closing
        logger.warning("closing %r failed: %s", exo, exc)


def process_tree_rss(pid: int | None = None) -> int | None:
    """Resident memory in bytes of the process ``pid`` (default: this one) and its descendants, from
    ``/proc`` (``None`` where there is no ``/proc``)."""
    root = os.getpid() if pid is None else pid
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    total, seen, todo = 0, set(), [root]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            with open(f"/proc/{current}/statm", encoding="ascii") as statm:
                total += int(statm.read().split()[1]) * page
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as children:
                    todo.extend(int(child) for child in children.read().split())
        except (OSError, ValueError):
            if current == root:
                return None
    return total


# --- one tenant's call ------------------------------------------------------------------------------


class _Stopped(PswrapError):
    """The run was stopped while this tenant's call was streaming."""


@dataclass(frozen=True)
class CallSpec:
    """What to run on every tenant (a picklable description: it travels to Ray actors)."""

    command: str
    arguments: tuple[Any, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    input: Sequence[Any] | None = None
    timeout: float | None = None

    def invocation(self) -> Invocation:
        return Invocation(
            self.command,
            parameters=dict(self.parameters),
            arguments=tuple(self.arguments),
            input=None if self.input is None else list(self.input),
            timeout=self.timeout,
        )

    @property
    def is_read(self) -> bool:
        return is_read_only(self.command, self.parameters)


def run_tenant(
    pool: SessionPool,
    tenant: str,
    settings: Settings | BaseException,
    spec: CallSpec,
    rule: TransportRule,
    emit: Callable[[FleetItem], bool],
    stopped: threading.Event,
) -> TenantReport:
    """Run ``spec`` on one tenant, handing each object to ``emit`` (``False``: stop); never raises."""
    started = time.monotonic()
    objects = errors = retries = 0
    transport: str | None = None
    error: BaseException | None = None
    try:
        if isinstance(settings, BaseException):
            raise settings
        transport = rule(spec.invocation(), settings)
        for attempt in itertools.count():
            with pool.lease(tenant, transport) as warm:
                before = warm.retries
                try:
                    result = warm.exo.invoke(
                        spec.command,
                        *spec.arguments,
                        input=spec.input,
                        timeout=spec.timeout,
                        **dict(spec.parameters),
                    )
                    interrupted = False
                    for value in result.stream():
                        if stopped.is_set() or not emit(FleetItem(tenant, value)):
                            interrupted = True
                            break
                        objects += 1
                    if interrupted:
                        result.stop()
                        with contextlib.suppress(PswrapError):
                            result.wait()  # let PowerShell end the pipeline before the session is reused
                        raise _Stopped("stopped")
                    errors += len(result.errors)
                except TransportError:
                    pool.discard(tenant, transport)
                    if attempt == 0 and objects == 0 and spec.is_read and not stopped.is_set():
                        retries += 1  # the session broke before anything arrived: a fresh one, once
                        logger.info("%s: the session broke; running %s again", tenant, spec.command)
                        continue
                    raise
                finally:
                    retries += warm.retries - before
            break
    except Exception as exc:  # a tenant's failure is its own: reported, never raised
        error = exc
    return TenantReport(
        tenant=tenant,
        transport=transport,
        objects=objects,
        errors=errors,
        retries=retries,
        duration=time.monotonic() - started,
        error=None if error is None else str(error),
        error_type=None if error is None else type(error).__name__,
    )


# --- the fleet ------------------------------------------------------------------------------------


class Fleet:
    """Many tenants, one call at a time on all of them (see the module docs).

    ``tenants``: a mapping of names to :class:`Settings` (or to the error that stopped a profile
    loading, reported as that tenant's failure), or an iterable of settings (named by their profile,
    else organization, else tenant). ``tenants=`` in :meth:`invoke` selects some of them.
    ``session_options`` go to every :class:`pswrap.ExchangeOnline` (``pwsh``, ``command_names``…).
    ``on_record(tenant, record)`` sees the other streams' records as they arrive;
    ``on_report(report)`` each tenant's :class:`TenantReport` as it finishes. ``backend="ray"`` with
    ``actors`` runs the tenants in Ray actors (:mod:`pswrap._fleet_ray`).
    """

    def __init__(
        self,
        tenants: Mapping[str, Settings | BaseException] | Iterable[Settings],
        *,
        concurrency: int = 16,
        max_sessions: int = 8,
        max_rest_sessions: int = 256,
        memory_budget: int | None = None,
        transport: str | TransportRule | None = None,
        buffer: int = 1000,
        on_record: Callable[[str, Record], None] | None = None,
        on_report: Callable[[TenantReport], None] | None = None,
        backend: str = "local",
        actors: int | None = None,
        **session_options: Any,
    ) -> None:
        self.tenants: dict[str, Settings | BaseException] = _named(tenants)
        if concurrency < 1 or buffer < 1:
            raise ConfigError("concurrency and buffer must be at least 1")
        self.concurrency = concurrency
        self.buffer = buffer
        self.on_record = on_record
        self.on_report = on_report
        self.session_options = session_options
        if transport is None:
            self.rule: TransportRule = choose_transport
        elif isinstance(transport, str):
            name = transport
            self.rule = lambda _invocation, _settings: name
        else:
            self.rule = transport
        self.pool = SessionPool(
            self._session,
            max_sessions=max_sessions,
            max_rest_sessions=max_rest_sessions,
            memory_budget=memory_budget,
        )
        self.backend = backend
        self._ray: Any = None
        if backend == "ray":
            from pswrap._fleet_ray import RayBackend

            self._ray = RayBackend(
                self,
                actors=actors,
                max_sessions=max_sessions,
                max_rest_sessions=max_rest_sessions,
                memory_budget=memory_budget,
                transport=transport if isinstance(transport, str) else None,
            )
        elif backend != "local":
            raise ConfigError(f"unknown fleet backend {backend!r}: choose 'local' or 'ray'")
        self._closed = False
        self._runs: weakref.WeakSet[FleetRun] = weakref.WeakSet()

    @classmethod
    def from_profiles(
        cls,
        profiles: Iterable[str] | None = None,
        *,
        config_path: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Fleet:
        """A fleet of the config file's profiles (all of them, or those named). A profile that cannot
        be loaded (a missing variable, a bad value) becomes that tenant's reported failure; a name
        the file does not have is an error at once."""
        config = ConfigFile.read(config_path, environ)
        names = list(config.profile_names) if profiles is None else list(profiles)
        unknown = [name for name in names if name not in config.profile_names]
        if unknown:
            raise ConfigError(
                f"no profile {', '.join(map(repr, unknown))} in {config.path} "
                f"(profiles: {', '.join(config.profile_names) or 'none'})"
            )
        if not names:
            raise ConfigError(f"no profiles in {config.path}")
        tenants: dict[str, Settings | BaseException] = {}
        for name in names:
            try:
                tenants[name] = config.settings(name, environ)
            except ConfigError as exc:
                tenants[name] = exc
        return cls(tenants, **options)

    def _session(self, tenant: str, transport: str, on_retry: Callable[[Any], None]) -> Any:
        from pswrap.exchange import ExchangeOnline

        settings = self.tenants[tenant]
        assert isinstance(settings, Settings)
        options = dict(self.session_options)
        if transport == "rest":
            options = {k: v for k, v in options.items() if k not in ("pwsh",)}
            options["on_retry"] = on_retry
        if self.on_record is not None:
            callback = self.on_record
            options["on_record"] = lambda record: callback(tenant, record)
        return ExchangeOnline(settings, transport=transport, **options)

    def invoke(
        self,
        command: str,
        /,
        *arguments: Any,
        tenants: Iterable[str] | None = None,
        input: Iterable[Any] | None = None,
        timeout: float | None = None,
        **parameters: Any,
    ) -> FleetRun:
        """Start ``command`` on every tenant (or those in ``tenants``); iterate the run for
        ``(tenant, object)`` as they arrive, then read its :attr:`FleetRun.summary`."""
        if self._closed:
            raise PswrapError("this fleet is closed")
        chosen = list(self.tenants) if tenants is None else list(tenants)
        unknown = [name for name in chosen if name not in self.tenants]
        if unknown:
            raise ConfigError(f"no tenant {', '.join(map(repr, unknown))} in this fleet")
        spec = CallSpec(
            command,
            tuple(arguments),
            parameters,
            None if input is None else list(input),
            timeout,
        )
        run = FleetRun(chosen, self.buffer, self.on_report)
        self._runs.add(run)
        if self._ray is not None:
            self._ray.start(run, chosen, spec)
        else:
            self._start_local(run, chosen, spec)
        return run

    def _start_local(self, run: FleetRun, chosen: list[str], spec: CallSpec) -> None:
        """Run the tenants on daemon threads (an abandoned run must not keep the interpreter alive)."""
        todo: queue.SimpleQueue[str] = queue.SimpleQueue()
        for tenant in chosen:
            todo.put(tenant)

        def work() -> None:
            while True:
                try:
                    tenant = todo.get_nowait()
                except queue.Empty:
                    return
                if run.stopped.is_set():
                    report = TenantReport(
                        tenant, None, error="stopped before it started", error_type="Stopped"
                    )
                else:
                    report = run_tenant(
                        self.pool, tenant, self.tenants[tenant], spec, self.rule, run.put, run.stopped
                    )
                run.report(report)

        for number in range(min(self.concurrency, len(chosen))):
            threading.Thread(target=work, name=f"pswrap-fleet-{number}", daemon=True).start()

    def close(self) -> None:
        """Stop what is running and close (disconnect) every warm session (and the Ray actors)."""
        self._closed = True
        for run in list(self._runs):
            run.stop()
        if self._ray is not None:
            self._ray.close()
        self.pool.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Fleet {len(self.tenants)} tenants, {self.backend}, {len(self.pool.warm)} warm sessions>"


def _named(tenants: Mapping[str, Settings | BaseException] | Iterable[Settings]) -> dict[str, Any]:
    if isinstance(tenants, Mapping):
        return dict(tenants)
    named: dict[str, Settings | BaseException] = {}
    for settings in tenants:
        name = settings.origin.profile or settings.organization or settings.tenant or ""
        if not name:
            raise ConfigError(f"{settings!r} names no tenant: give the fleet a mapping of names to settings")
        if name in named:
            raise ConfigError(
                f"two tenants are named {name!r}: give the fleet a mapping of names to settings"
            )
        named[name] = settings
    return named


_END = object()


class FleetRun:
    """One call running on many tenants: iterate for :class:`FleetItem` s as they arrive."""

    def __init__(
        self, tenants: Sequence[str], buffer: int, on_report: Callable[[TenantReport], None] | None
    ) -> None:
        self.tenants = list(tenants)
        self.stopped = threading.Event()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=buffer)
        self._on_report = on_report
        self._lock = threading.Lock()
        self._pending = set(self.tenants)
        self._summary = FleetSummary()
        self._finished = threading.Event()
        self._started = time.monotonic()
        self._consumed = False
        if not self.tenants:
            self._finish()

    # --- the producers' side ---

    def put(self, item: FleetItem) -> bool:
        """Hand an object to the reader, waiting while the buffer is full (``False``: stopped)."""
        while not self.stopped.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def report(self, report: TenantReport) -> None:
        """A tenant finished."""
        with self._lock:
            if report.tenant not in self._pending:
                return
            self._pending.discard(report.tenant)
            self._summary.reports[report.tenant] = report
            last = not self._pending
        if report.error is not None:
            logger.warning("%s: %s", report.tenant, report.error)
        if self._on_report is not None:
            self._on_report(report)
        if last:
            self._finish()

    def _finish(self) -> None:
        self._summary.duration = time.monotonic() - self._started
        self._finished.set()
        while True:  # the end marker must get in even when the reader has gone
            try:
                self._queue.put(_END, timeout=0.2)
                return
            except queue.Full:
                if self.stopped.is_set():
                    self._drop_buffered()

    def _drop_buffered(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()

    # --- the reader's side ---

    def __iter__(self) -> Iterator[FleetItem]:
        if self._consumed:
            raise PswrapError("a fleet run's results can be read once")
        self._consumed = True
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    return
                yield item
        finally:
            if not self._finished.is_set():
                self.stop()

    def stop(self) -> None:
        """Stop every tenant's call (what arrived stays with the reader); tenants not started never run."""
        self.stopped.set()
        self._drop_buffered()

    def wait(self, timeout: float | None = None) -> FleetSummary:
        """Wait for every tenant to finish (objects nobody reads are dropped) and return the summary."""
        if not self._consumed:
            for _ in self:
                pass
        if not self._finished.wait(timeout):
            raise PswrapError(f"the fleet run did not finish within {timeout} s")
        return self._summary

    @property
    def summary(self) -> FleetSummary:
        """The summary, once every tenant finished (reading it first reads the rest of the results)."""
        return self.wait()

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def __enter__(self) -> FleetRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._finished.is_set():
            self.stop()
            self._finished.wait(60)

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"<FleetRun {len(self.tenants)} tenants: {state}>"
