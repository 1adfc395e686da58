"""The fleet on a Ray cluster: ``Fleet(…, backend="ray")`` (``pip install pswrap[ray]``).

Each tenant belongs to one actor (round robin over ``actors``, spread over the cluster's nodes); the
actor owns that tenant's warm sessions in its own :class:`pswrap.fleet.SessionPool` and runs calls
with the same code as the local fleet. A call goes to every actor holding a selected tenant; each
streams its results back in batches, which the driver merges into one :class:`pswrap.fleet.FleetRun`.
A dead actor is restarted by Ray (``max_restarts=-1``); its tenants reconnect on their next call, and
a read that had handed out nothing yet when the actor died runs again on the restarted actor.

Secrets: Ray keeps what it is given — actor constructor arguments in the GCS, task arguments in its
object store, and either may show up in its logs. So settings never travel as they are (a
:class:`pswrap.Secret` refuses to be pickled anyway): each actor makes an X25519 key pair when it
starts and hands out only the public half; the driver seals each tenant's secrets (client secret,
certificate password, secrets in extra tables) to that key with a one-time key of its own
(X25519 → HKDF-SHA256 → AES-256-GCM, the tenant's name as associated data). What Ray stores is
ciphertext that only the live actor can open; a restarted actor has a new key, and the driver seals
again. Access tokens are fetched inside the actor and never leave it. Certificate files are read
where the actor runs: their paths must exist on every node.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pswrap.config import Origin, Settings
from pswrap.errors import ConfigError, PswrapError
from pswrap.fleet import CallSpec, FleetItem, FleetRun, SessionPool, TenantReport, TransportRule, run_tenant
from pswrap.objects import Record
from pswrap.secret import Secret, get_logger

if TYPE_CHECKING:
    from pswrap.fleet import Fleet

__all__ = ["RayBackend", "SealedSettings", "seal", "unseal"]

logger = get_logger("pswrap.fleet")

_BATCH = 256  # objects per streamed batch
_INFO = b"pswrap fleet settings v1"
_SECRET_FIELDS = ("client_secret", "certificate_password")
_PLAIN_FIELDS = (
    "tenant",
    "client_id",
    "certificate",
    "certificate_send_chain",
    "managed_identity",
    "organization",
    "environment",
    "authority",
    "scope",
    "ca_bundle",
    "refresh_margin",
    "timeout",
    "transport",
)


# --- sealing settings to one actor -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Slot:
    """Where a secret was in ``extra``: its index in the sealed list and its name."""

    index: int
    name: str


@dataclasses.dataclass(frozen=True)
class SealedSettings:
    """A tenant's :class:`Settings` with every secret encrypted to one actor's key (safe to pickle)."""

    tenant: str
    values: Mapping[str, Any]
    origin: Mapping[str, Any]
    ephemeral: bytes
    nonce: bytes
    ciphertext: bytes

    def __repr__(self) -> str:
        return f"SealedSettings({self.tenant!r}, {len(self.ciphertext)} bytes sealed)"


def _key(private: X25519PrivateKey, public: X25519PublicKey, tenant: str) -> AESGCM:
    shared = private.exchange(public)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO + tenant.encode()).derive(shared)
    return AESGCM(key)


def seal(tenant: str, settings: Settings, actor_key: bytes) -> SealedSettings:
    """``settings`` for ``tenant`` with its secrets sealed to the actor's X25519 public key."""
    secrets: list[str] = []

    def strip(value: Any, name: str) -> Any:
        if isinstance(value, Secret):
            secrets.append(value.reveal())
            return _Slot(len(secrets) - 1, value.name)
        if isinstance(value, Mapping):
            return {k: strip(v, k) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [strip(v, name) for v in value]
        return value

    values: dict[str, Any] = {}
    for name in _PLAIN_FIELDS:
        value = getattr(settings, name)
        values[name] = str(value) if isinstance(value, Path) else value
    for name in _SECRET_FIELDS:
        values[name] = strip(getattr(settings, name), name)
    values["extra"] = strip(dict(settings.extra), "extra")
    origin = settings.origin
    origin_values = {
        "description": origin.description,
        "labels": dict(origin.labels),
        "secret_variables": sorted(origin.secret_variables),
        "profile": origin.profile,
        "base_dir": None if origin.base_dir is None else str(origin.base_dir),
    }
    ephemeral = X25519PrivateKey.generate()
    nonce = os.urandom(12)
    sealed = _key(ephemeral, X25519PublicKey.from_public_bytes(actor_key), tenant).encrypt(
        nonce, json.dumps(secrets).encode("utf-8"), tenant.encode("utf-8")
    )
    public = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SealedSettings(tenant, values, origin_values, public, nonce, sealed)


def unseal(sealed: SealedSettings, private: X25519PrivateKey) -> Settings:
    """The settings back, secrets as :class:`Secret` (raises when sealed to another key)."""
    try:
        plain = _key(private, X25519PublicKey.from_public_bytes(sealed.ephemeral), sealed.tenant).decrypt(
            sealed.nonce, sealed.ciphertext, sealed.tenant.encode("utf-8")
        )
    except Exception as exc:
        raise _WrongKey(f"the settings of {sealed.tenant} were sealed to another actor key") from exc
    secrets = json.loads(plain)

    def restore(value: Any) -> Any:
        if isinstance(value, _Slot):
            return Secret(secrets[value.index], value.name)
        if isinstance(value, Mapping):
            return {k: restore(v) for k, v in value.items()}
        if isinstance(value, list):
            return [restore(v) for v in value]
        return value

    values = {name: restore(value) for name, value in sealed.values.items()}
    raw = sealed.origin
    origin = Origin(
        description=raw["description"],
        labels=raw["labels"],
        secret_variables=frozenset(raw["secret_variables"]),
        profile=raw["profile"],
        base_dir=None if raw["base_dir"] is None else Path(raw["base_dir"]),
    )
    return Settings(**values, origin=origin)


class _WrongKey(PswrapError):
    """Settings sealed to a key this actor does not hold (it was restarted in between)."""


# --- the actor ---------------------------------------------------------------------------------------


class TenantActor:
    """A Ray actor's state: its key pair, its tenants' settings and warm sessions, its running calls."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self._private = X25519PrivateKey.generate()
        #: Changes when the actor restarts, so the driver can tell (and reseal).
        self.incarnation = uuid.uuid4().hex
        self._settings: dict[str, Settings] = {}
        self._session_options = dict(options.get("session_options", {}))
        self._concurrency = int(options.get("concurrency", 16))
        self.pool = SessionPool(
            self._session,
            max_sessions=int(options.get("max_sessions", 8)),
            max_rest_sessions=int(options.get("max_rest_sessions", 256)),
            memory_budget=options.get("memory_budget"),
        )
        self._runs: dict[str, threading.Event] = {}
        #: Where each tenant's records go during the call now running on it.
        self._record_sinks: dict[str, Callable[[Record], None]] = {}

    def public_key(self) -> tuple[str, bytes]:
        """This incarnation's id and public key (the private half never leaves the actor)."""
        public = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return self.incarnation, public

    def _session(self, tenant: str, transport: str, on_retry: Any) -> Any:
        from pswrap.exchange import ExchangeOnline

        options = dict(self._session_options)
        if transport == "rest":
            options.pop("pwsh", None)
            options["on_retry"] = on_retry

        def on_record(record: Record) -> None:
            sink = self._record_sinks.get(tenant)
            if sink is not None:
                sink(record)

        return ExchangeOnline(self._settings[tenant], transport=transport, on_record=on_record, **options)

    def run(
        self, run_id: str, spec: CallSpec, sealed: Mapping[str, SealedSettings], rule: TransportRule
    ) -> Iterator[list[tuple[str, Any]]]:
        """Run ``spec`` on the tenants; yields batches of ``("item", FleetItem)``,
        ``("record", (tenant, Record))`` and ``("report", TenantReport)``."""
        stopped = threading.Event()
        self._runs[run_id] = stopped
        results: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=4 * _BATCH)
        settings: dict[str, Settings | BaseException] = {}
        for tenant, packed in sealed.items():
            try:
                settings[tenant] = self._settings[tenant] = unseal(packed, self._private)
            except _WrongKey:
                raise
            except Exception as exc:
                settings[tenant] = exc

        def emit(item: FleetItem) -> bool:
            while not stopped.is_set():
                try:
                    results.put(("item", item), timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False

        def one(tenant: str) -> None:
            self._record_sinks[tenant] = lambda record: results.put(("record", (tenant, record)))
            try:
                report = run_tenant(self.pool, tenant, settings[tenant], spec, rule, emit, stopped)
            finally:
                self._record_sinks.pop(tenant, None)
            results.put(("report", report))

        try:
            with ThreadPoolExecutor(max_workers=max(1, min(self._concurrency, len(settings)))) as workers:
                for tenant in settings:
                    workers.submit(one, tenant)
                remaining = len(settings)
                while remaining:
                    batch = [results.get()]
                    with contextlib.suppress(queue.Empty):
                        while len(batch) < _BATCH:
                            batch.append(results.get_nowait())
                    remaining -= sum(1 for kind, _ in batch if kind == "report")
                    yield batch
        finally:
            stopped.set()
            self._runs.pop(run_id, None)

    def stop(self, run_id: str) -> None:
        event = self._runs.get(run_id)
        if event is not None:
            event.set()

    def close(self) -> None:
        self.pool.close()


# --- the driver --------------------------------------------------------------------------------------


class RayBackend:
    """Places a fleet's tenants in Ray actors and merges their streamed results."""

    def __init__(
        self,
        fleet: Fleet,
        *,
        actors: int | None,
        max_sessions: int,
        max_rest_sessions: int,
        memory_budget: int | None,
        transport: str | None,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray backend needs Ray: pip install 'pswrap[ray]'") from None
        self._ray: Any = ray
        if not ray.is_initialized():
            ray.init()  # RAY_ADDRESS or a local instance
        self.fleet = fleet
        cpus = self._ray.cluster_resources().get("CPU", 1)
        count = actors or max(1, min(len(fleet.tenants), int(cpus)))
        options = {
            "session_options": fleet.session_options,
            "concurrency": fleet.concurrency,
            "max_sessions": max_sessions,
            "max_rest_sessions": max_rest_sessions,
            "memory_budget": memory_budget,
        }
        remote = ray.remote(TenantActor).options(
            max_restarts=-1, max_concurrency=8, num_cpus=0, scheduling_strategy="SPREAD"
        )
        self.actors: list[Any] = [remote.remote(options) for _ in range(count)]
        #: Which actor holds each tenant (index into :attr:`actors`).
        self.placement = {tenant: index % count for index, tenant in enumerate(fleet.tenants)}
        self._threads: list[threading.Thread] = []
        #: Seconds to wait for a restarting actor before its tenants are reported failed.
        self.restart_timeout = 120.0

    def start(self, run: FleetRun, chosen: list[str], spec: CallSpec) -> None:
        run_id = uuid.uuid4().hex
        groups: dict[int, list[str]] = {}
        for tenant in chosen:
            groups.setdefault(self.placement[tenant], []).append(tenant)
        for index, tenants in groups.items():
            thread = threading.Thread(
                target=self._drive, args=(run, run_id, index, tenants, spec), daemon=True, name="pswrap-ray"
            )
            thread.start()
            self._threads.append(thread)

    def _drive(self, run: FleetRun, run_id: str, index: int, tenants: list[str], spec: CallSpec) -> None:
        """Stream one actor's share of the call into ``run`` (on a thread of the driver)."""
        ray = self._ray
        actor = self.actors[index]
        remaining: list[str] = []
        for tenant in tenants:
            settings = self.fleet.tenants[tenant]
            if isinstance(settings, BaseException):
                run.report(
                    TenantReport(tenant, None, error=str(settings), error_type=type(settings).__name__)
                )
            else:
                remaining.append(tenant)
        produced: dict[str, int] = dict.fromkeys(remaining, 0)
        retried: set[str] = set()
        stop_sent = False
        for _attempt in range(3):
            if not remaining:
                return
            try:
                for kind, payload in self._stream(actor, run_id, remaining, spec):
                    if kind == "item":
                        produced[payload.tenant] += 1
                        if not run.put(payload) and not stop_sent:
                            actor.stop.remote(run_id)  # the tenants end and report; their items are dropped
                            stop_sent = True
                    elif kind == "record":
                        if self.fleet.on_record is not None:
                            self.fleet.on_record(*payload)
                    else:
                        if payload.tenant in retried:
                            payload = dataclasses.replace(payload, retries=payload.retries + 1)
                        remaining.remove(payload.tenant)
                        run.report(payload)
            except _WrongKey:
                continue  # the actor restarted between sealing and running: seal again
            except ray.exceptions.RayActorError as exc:
                again = [t for t in remaining if produced[t] == 0 and spec.is_read and not retried]
                for tenant in remaining:
                    if tenant not in again:
                        run.report(
                            TenantReport(
                                tenant,
                                None,
                                objects=produced[tenant],
                                error=f"the Ray actor holding this tenant died ({type(exc).__name__})",
                                error_type="ActorDiedError",
                            )
                        )
                logger.warning("a Ray actor died; running %d of its tenants again on its restart", len(again))
                remaining = again
                retried.update(again)
                continue
            break
        for tenant in remaining:  # every attempt failed to reach the actor
            run.report(
                TenantReport(tenant, None, error="the Ray actor could not be reached", error_type="RayError")
            )

    def _stream(
        self, actor: Any, run_id: str, tenants: list[str], spec: CallSpec
    ) -> Iterator[tuple[str, Any]]:
        ray = self._ray
        _incarnation, key = self._public_key(actor)
        sealed = {tenant: seal(tenant, self.fleet.tenants[tenant], key) for tenant in tenants}  # type: ignore[arg-type]
        generator = actor.run.options(num_returns="streaming", _generator_backpressure_num_objects=4).remote(
            run_id, spec, sealed, self.fleet.rule
        )
        for ref in generator:
            try:
                batch = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.as_instanceof_cause()
                if isinstance(cause, _WrongKey):
                    raise _WrongKey(str(cause)) from None
                raise
            yield from batch

    def _public_key(self, actor: Any) -> tuple[str, bytes]:
        """The actor's current key, waiting (up to ``restart_timeout``) while Ray restarts it."""
        ray = self._ray
        deadline = time.monotonic() + self.restart_timeout
        while True:
            try:
                found: tuple[str, bytes] = ray.get(actor.public_key.remote(), timeout=self.restart_timeout)
                return found
            except ray.exceptions.ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        ray = self._ray
        for thread in self._threads:
            thread.join(5)
        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.get(actor.close.remote(), timeout=60)
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        self.actors = []
