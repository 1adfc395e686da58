"""Commands the WinRM host adds to the PowerShell stand-in's table, for what only a server can show.

``Wait-Rendezvous -Name n -Parties 3`` returns once ``Parties`` pipelines have called it with the same
name (or fails after ``TimeoutSeconds``): proof that pipelines run at the same time, without timing
anything. The host runs its PowerShell in the test's process, so one barrier is visible to all.
"""

from __future__ import annotations

import threading
from typing import Any

from tests.standins.powershell.commands import CommandContext, CommandTable, Parameter

_lock = threading.Lock()
_barriers: dict[str, threading.Barrier] = {}


def wait_rendezvous(ctx: CommandContext, Name: str, Parties: int, TimeoutSeconds: float | None) -> None:
    with _lock:
        barrier = _barriers.get(Name)
        if barrier is None or barrier.parties != Parties or barrier.broken:
            barrier = _barriers[Name] = threading.Barrier(Parties)
    try:
        arrival = barrier.wait(timeout=TimeoutSeconds or 20.0)
    except threading.BrokenBarrierError:
        ctx.throw(
            ctx.error_record(
                f"only {barrier.n_waiting} of {Parties} pipelines reached rendezvous {Name!r}",
                error_id="RendezvousMissed",
            )
        )
        return
    ctx.write_output(arrival)


def register(table: CommandTable) -> None:
    parameters: list[Any] = [
        Parameter("Name", position=0, mandatory=True, type="System.String"),
        Parameter("Parties", mandatory=True, type="System.Int32"),
        Parameter("TimeoutSeconds", type="System.Double"),
    ]
    table.register("Wait-Rendezvous", parameters=parameters, cmdlet_type="Standin.WaitRendezvousCommand")(
        wait_rendezvous
    )
