"""Fleet: one cmdlet on many tenants, against the identity-provider, admin-API and pwsh stand-ins."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pswrap.config import Settings
from pswrap.errors import ConfigError
from pswrap.fleet import Fleet, SessionPool, choose_transport
from pswrap.transports.base import Invocation
from tests.fixtures.fleet import Tenants


def test_every_tenant_streams_its_objects_tagged_and_the_summary_says_what_ran_where(
    many_tenants: Callable[..., Tenants], idp: Any
) -> None:
    tenants = many_tenants(5, mailboxes=7)
    with Fleet(tenants.settings, concurrency=3) as fleet:
        run = fleet.invoke("Get-Mailbox", ResultSize="Unlimited")
        items = list(run)
        summary = run.summary
        again = list(fleet.invoke("Get-Mailbox", ResultSize=2))

    by_tenant = collections.Counter(tenant for tenant, _ in items)
    assert by_tenant == {name: 7 for name in tenants.settings}
    for tenant, mailbox in items:  # each object came from its own tenant's mailboxes
        assert str(mailbox.PrimarySmtpAddress).endswith(f"@{tenant}.onmicrosoft.com")
    assert summary.ok and summary.objects == 35 and len(summary) == 5
    for name in tenants.settings:
        report = summary[name]
        assert (report.transport, report.objects, report.errors, report.error) == ("rest", 7, 0, None)
        assert report.duration > 0
    assert "5 tenants, 35 objects, 0 failed" in str(summary)
    assert len(again) == 10
    assert idp.count("token") == 5  # one token per identity, reused by the second call


def test_a_tenant_that_fails_is_reported_and_the_others_finish(
    many_tenants: Callable[..., Tenants], adminapi: Any
) -> None:
    tenants = many_tenants(4)
    broken = dict(tenants.settings)
    broken["t001"] = broken["t001"].replace(client_secret="Zq8Q~wrong-secret-for-this-tenant-000000")
    broken["t002"] = ConfigError(
        "profile 't002': client_secret refers to environment variable X, which is not set"
    )
    unreachable = {"rest": {"base_url": "https://127.0.0.1:1", "retries": 1, "initial_delay": 0.01}}
    broken["t003"] = broken["t003"].replace(extra=unreachable)
    seen: list[str] = []
    with Fleet(broken, concurrency=4, on_report=lambda report: seen.append(report.tenant)) as fleet:
        run = fleet.invoke("Get-Mailbox")
        items = list(run)
        summary = run.summary

    assert {tenant for tenant, _ in items} == {"t000"}
    assert summary.failed == sorted(summary.failed, key=list(summary.reports).index)
    assert set(summary.failed) == {"t001", "t002", "t003"}
    assert summary["t000"].ok and summary["t000"].objects == 5
    assert summary["t001"].error_type is not None and "AADSTS7000215" in (summary["t001"].error or "")
    assert summary["t002"].error_type == "ConfigError" and "not set" in (summary["t002"].error or "")
    assert summary["t003"].error_type == "AdminApiConnectionError"
    assert sorted(seen) == ["t000", "t001", "t002", "t003"]
    assert "Zq8Q~wrong" not in str(summary)


def test_throttled_reads_are_retried_and_counted(many_tenants: Callable[..., Tenants], adminapi: Any) -> None:
    tenants = many_tenants(2)
    adminapi.fail_next(503, times=1)
    with Fleet(tenants.settings, concurrency=1) as fleet:
        run = fleet.invoke("Get-Mailbox")
        assert len(list(run)) == 10
    assert run.summary.ok
    assert sum(r.retries for r in run.summary.reports.values()) == 1


def test_least_recently_used_sessions_are_closed_beyond_the_limit(
    many_tenants: Callable[..., Tenants],
) -> None:
    tenants = many_tenants(4)
    with Fleet(tenants.settings, concurrency=1, max_rest_sessions=2) as fleet:
        assert fleet.invoke("Get-Mailbox", tenants=["t000", "t001", "t002"]).summary.ok
        assert fleet.pool.warm == [("t001", "rest"), ("t002", "rest")]
        assert fleet.pool.evicted == [("t000", "rest")]
        assert fleet.invoke("Get-Mailbox", tenants=["t001", "t003"]).summary.ok
        assert fleet.pool.warm == [("t001", "rest"), ("t003", "rest")]
        assert fleet.pool.evicted == [("t000", "rest"), ("t002", "rest")]


def test_a_memory_budget_closes_idle_sessions_before_opening_more(
    many_tenants: Callable[..., Tenants],
) -> None:
    tenants = many_tenants(3)
    with Fleet(tenants.settings, concurrency=1, memory_budget=1) as fleet:  # always over budget
        run = fleet.invoke("Get-Mailbox")
        assert len(list(run)) == 15 and run.summary.ok
        assert len(fleet.pool.warm) == 1 and len(fleet.pool.evicted) == 2


def test_pwsh_sessions_are_bounded_and_an_evicted_one_disconnects(
    many_tenants: Callable[..., Tenants], exchange_standin: Any
) -> None:
    tenants = many_tenants(3)
    tenants.serve_pwsh(exchange_standin)
    exchange_standin.configure(mailboxes=4)
    with Fleet(tenants.settings, concurrency=3, max_sessions=2, transport="local") as fleet:
        run = fleet.invoke("Get-Mailbox")
        counts = collections.Counter(tenant for tenant, _ in run)
        assert counts == {"t000": 4, "t001": 4, "t002": 4}
        assert {r.transport for r in run.summary.reports.values()} == {"local"}
        assert len(fleet.pool.warm) == 2 and len(fleet.pool.evicted) == 1
        assert len(exchange_standin.events("disconnect")) == 1  # the evicted session disconnected
    connects = [e for e in exchange_standin.events("connect") if e["ok"]]
    assert sorted(e["organization"] for e in connects) == [f"t00{i}.onmicrosoft.com" for i in range(3)]
    assert len(exchange_standin.events("disconnect")) == 3  # closing the fleet disconnects the rest


def test_the_transport_rule_is_rest_where_the_admin_api_can_carry_the_call() -> None:
    plain = Settings(tenant="contoso.onmicrosoft.com")
    assert choose_transport(Invocation("Get-Mailbox", parameters={"ResultSize": 5}), plain) == "rest"
    assert choose_transport(Invocation("Get-Mailbox", arguments=("bob",)), plain) == "local"
    assert choose_transport(Invocation("Set-Mailbox", input=[{"Identity": "bob"}]), plain) == "local"
    assert choose_transport(Invocation("1..3 | % { $_ }", is_script=True), plain) == "local"
    pinned = plain.replace(transport="oneshot")
    assert choose_transport(Invocation("Get-Mailbox"), pinned) == "oneshot"


def test_the_rule_can_be_overridden(many_tenants: Callable[..., Tenants], exchange_standin: Any) -> None:
    tenants = many_tenants(2)
    tenants.serve_pwsh(exchange_standin)
    chosen: list[str] = []

    def rule(invocation: Invocation, settings: Settings) -> str:
        chosen.append(invocation.command)
        return "local" if settings.tenant == "t001.onmicrosoft.com" else "rest"

    with Fleet(tenants.settings, transport=rule) as fleet:
        summary = fleet.invoke("Get-Mailbox", ResultSize=1).summary
    assert {n: r.transport for n, r in summary.reports.items()} == {"t000": "rest", "t001": "local"}
    assert chosen == ["Get-Mailbox", "Get-Mailbox"]


def test_stopping_a_run_stops_every_tenant_and_keeps_what_arrived(
    many_tenants: Callable[..., Tenants],
) -> None:
    tenants = many_tenants(6, mailboxes=30)
    with Fleet(tenants.settings, concurrency=2, buffer=1) as fleet:
        run = fleet.invoke("Get-Mailbox", ResultSize="Unlimited")
        received = []
        for item in run:
            received.append(item)
            if len(received) == 3:
                run.stop()
        summary = run.wait(timeout=60)
        assert len(received) >= 3
        assert summary.objects < 6 * 30
        stopped = [r for r in summary.reports.values() if r.error is not None]
        assert stopped and all("stop" in (r.error or "") for r in stopped)
        assert fleet.invoke("Get-Mailbox", ResultSize=1).summary.ok  # the sessions still work


def test_fleet_from_profiles_loads_each_profile_and_reports_one_that_cannot_load(
    many_tenants: Callable[..., Tenants], tmp_path: Path
) -> None:
    tenants = many_tenants(3)
    environ: dict[str, str] = {}
    config = tenants.profiles(tmp_path / "config.toml", environ)
    del environ["SECRET_T002"]
    with Fleet.from_profiles(config_path=config, environ=environ) as fleet:
        summary = fleet.invoke("Get-Mailbox").summary
    assert summary.failed == ["t002"] and "SECRET_T002" in (summary["t002"].error or "")
    assert summary["t000"].objects == 5
    with pytest.raises(ConfigError, match="no profile 'nope'"):
        Fleet.from_profiles(["t000", "nope"], config_path=config, environ=environ)
    with Fleet.from_profiles(["t001"], config_path=config, environ=environ) as fleet:
        assert list(fleet.tenants) == ["t001"]


def test_pool_limits_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        SessionPool(lambda *a: None, max_sessions=0)


def test_no_tenant_secret_reaches_a_pwsh_child(
    many_tenants: Callable[..., Tenants],
    exchange_standin: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenants = many_tenants(2)
    tenants.serve_pwsh(exchange_standin)
    environ: dict[str, str] = {}
    config = tenants.profiles(tmp_path / "config.toml", environ)
    for name, value in environ.items():  # the profiles' env: references, as a shell would have them
        monkeypatch.setenv(name, value)
    with Fleet.from_profiles(config_path=config, transport="local") as fleet:
        assert fleet.invoke("Get-Mailbox", ResultSize=1).summary.ok
    processes = exchange_standin.pwsh.processes()
    assert len(processes) == 2
    for process in processes:
        for secret in environ.values():
            assert secret not in str(process.env) and secret not in " ".join(process.argv)


def test_the_secret_variables_of_a_single_session_stay_out_of_its_pwsh_too(
    exchange_standin: Any, idp_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in idp_environ.items():
        monkeypatch.setenv(name, value)
    from pswrap.exchange import ExchangeOnline

    with ExchangeOnline.from_env() as exo:
        assert len(exo.invoke("Get-Mailbox", ResultSize=1).output) == 1
    [process] = exchange_standin.pwsh.processes()
    assert "PSWRAP_CLIENT_SECRET" not in process.env
    assert idp_environ["PSWRAP_CLIENT_SECRET"] not in str(process.env)
    assert process.env.get("PSWRAP_TENANT") == idp_environ["PSWRAP_TENANT"]  # the rest is inherited


def test_settings_sealed_for_an_actor_pickle_without_their_secrets_and_open_only_with_its_key() -> None:
    import pickle

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from pswrap._fleet_ray import seal, unseal
    from pswrap.secret import Secret

    canary, password = "Zq8Q~sealed" + "x" * 24, "runner-password-canary"
    settings = Settings(
        tenant="contoso.onmicrosoft.com",
        client_id="0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        client_secret=canary,
        extra={"winrm": {"host": "runner01", "password": Secret(password, "password")}},
    )
    actor, other = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    public = actor.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    sealed = seal("contoso", settings, public)
    data = pickle.dumps(sealed)
    assert canary.encode() not in data and password.encode() not in data
    assert canary not in repr(sealed)
    opened = unseal(pickle.loads(data), actor)
    assert opened.client_secret == Secret(canary) and opened.tenant == settings.tenant
    assert (
        opened.extra["winrm"]["password"] == Secret(password) and opened.extra["winrm"]["host"] == "runner01"
    )
    with pytest.raises(Exception, match="sealed to another actor key"):
        unseal(sealed, other)
