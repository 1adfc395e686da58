"""The stand-in's configuration: a JSON file named by ``PSWRAP_STANDIN_CONFIG`` (written by the fixture).

Keys (all optional)::

    {
      "record_dir": "/tmp/…/records",      # each process records argv, env, stdin and events here
      "extensions": ["tests.standins.x"],   # modules imported at start; register(table) is called if present
      "switches": {"name": value},          # free-form switches for commands (ctx.switches)
      "ack_pool_data_first": false,         # server mode: ack pool Data before its replies (pwsh may do either)
      "fragment_size": 32768,               # server mode: largest PSRP payload per Data packet
      "faults": {
        "processes": [1],                   # which started processes (1 = the first) fault; default: all
        "die_on_start": false,              # exit before answering anything
        "hang_on_start": false,             # stay alive, never answer
        "exit_after_objects": null,         # die right after writing the Nth output object (0: when a pipeline starts)
        "hang_after_objects": null,         # stop responding (stay alive) after the Nth output object
        "garbage_after_objects": null,      # write a garbage line to stdout after the Nth output object
        "garbage": "…",                     # the garbage text
        "exit_code": 1,                     # exit code for die_on_start / exit_after_objects
        "stderr": "…"                       # written to stderr just before a fault strikes
      }
    }
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

ENV_VAR = "PSWRAP_STANDIN_CONFIG"

_FAULT_KEYS = {
    "processes", "die_on_start", "hang_on_start", "exit_after_objects", "hang_after_objects",
    "garbage_after_objects", "garbage", "exit_code", "stderr",
}  # fmt: skip
_KEYS = {"record_dir", "extensions", "switches", "ack_pool_data_first", "fragment_size", "faults"}


class ConfigError(Exception):
    """The stand-in's config file is wrong (a test bug): the process exits loudly."""


@dataclass
class Faults:
    processes: list[int] | None = None
    die_on_start: bool = False
    hang_on_start: bool = False
    exit_after_objects: int | None = None
    hang_after_objects: int | None = None
    garbage_after_objects: int | None = None
    garbage: str = "this is not a PSRP packet <<garbage>>"
    exit_code: int = 1
    stderr: str | None = None

    def applies_to(self, sequence: int) -> bool:
        return self.processes is None or sequence in self.processes


@dataclass
class StandinConfig:
    record_dir: str | None = None
    extensions: list[str] = field(default_factory=list)
    switches: dict[str, Any] = field(default_factory=dict)
    ack_pool_data_first: bool = False
    fragment_size: int = 32_768
    faults: Faults = field(default_factory=Faults)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StandinConfig:
        unknown = set(raw) - _KEYS
        if unknown:
            raise ConfigError(f"unknown stand-in config keys: {sorted(unknown)}")
        faults_raw = raw.get("faults") or {}
        unknown_faults = set(faults_raw) - _FAULT_KEYS
        if unknown_faults:
            raise ConfigError(f"unknown stand-in fault switches: {sorted(unknown_faults)}")
        return cls(
            record_dir=raw.get("record_dir"),
            extensions=list(raw.get("extensions") or []),
            switches=dict(raw.get("switches") or {}),
            ack_pool_data_first=bool(raw.get("ack_pool_data_first", False)),
            fragment_size=int(raw.get("fragment_size", 32_768)),
            faults=Faults(**faults_raw),
        )


def load(environ: dict[str, str] | None = None) -> StandinConfig:
    """The config the environment names, or the defaults when none is named."""
    env = os.environ if environ is None else environ
    path = env.get(ENV_VAR)
    if not path:
        return StandinConfig()
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as problem:
        raise ConfigError(f"cannot read the stand-in config {path}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"the stand-in config {path} is not a JSON object")
    return StandinConfig.from_dict(raw)
