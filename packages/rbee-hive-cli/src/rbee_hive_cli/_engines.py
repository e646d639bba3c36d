"""Which engines can start workers here: logged when the daemon starts, listed by ``detect``.

No silent fallback: when the default engine (``rbee``, llm-worker-rbee) is not installed the
daemon still starts (it downloads models and may run other engines) but says so with a
WARNING that names the fix; a spawn that names no engine then fails at once with the same
message. Switching engines is the operator's choice (``default_engine = "openai"``), because
the engines do not speak the same worker API.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from rbee_hive_monitor import EngineSpec, engine_availability

log = logging.getLogger("rbee_hive.daemon")


def engine_rows(engines: Sequence[EngineSpec], default_engine: str) -> list[dict[str, Any]]:
    """One row per engine: name, usable, default, detail, fix (None when usable)."""
    rows = []
    for engine in engines:
        found = engine_availability(engine)
        rows.append(
            {
                "name": engine.name,
                "usable": found.usable,
                "default": engine.name == default_engine,
                "detail": found.detail,
                "fix": found.fix,
            }
        )
    return rows


def log_engines(engines: Sequence[EngineSpec], default_engine: str) -> list[dict[str, Any]]:
    """Say at start-up which engines can start workers; a WARNING when the default cannot."""
    rows = engine_rows(engines, default_engine)
    usable = [r["name"] for r in rows if r["usable"]]
    for row in rows:
        if row["usable"]:
            log.info("engine %s: usable (%s)", row["name"], row["detail"])
        elif not row["default"]:
            log.info("engine %s: not usable: %s; fix: %s", row["name"], row["detail"], row["fix"])
    for row in rows:
        if row["default"] and not row["usable"]:
            log.warning(
                "the default engine %r cannot start workers: %s. Spawns that name no engine "
                "will be refused until this is fixed: %s. Usable engines: %s",
                row["name"],
                row["detail"],
                row["fix"],
                ", ".join(usable) or "none",
            )
    return rows
