"""The numbers ``magellan status`` shows, as one JSON-able dict built from the ledger and
the running daemon's snapshot. Money and quantities are the ledger's exact decimal strings.

"Today" is the New York date of the daemon's virtual clock when a daemon is running (so a
simulated session reports its own day), else the New York date of the last fill in the
ledger, else the wall clock's New York date.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from magellan_daemon.cli.ops.common import parse_time
from magellan_daemon.config.loading import MagellanConfig
from magellan_daemon.ledger.control import DaemonStatus
from magellan_daemon.ledger.store import Ledger, PositionRow
from magellan_daemon.timefmt import iso, session_date


def build_report(
    config: MagellanConfig, ledger: Ledger, snapshot: DaemonStatus | None, wall_now: datetime
) -> dict[str, Any]:
    """Everything ``status`` prints, for every configured (or traded) strategy."""
    running = snapshot is not None and snapshot.fresh
    live = snapshot.data if running and snapshot is not None else {}
    day, basis = _today(live, ledger, wall_now)
    prices: dict[str, str] = live.get("prices") or {}
    strategies = {
        name: _strategy(name, config, ledger, day, prices, live)
        for name in _strategy_names(config, ledger)
    }
    return {
        "daemon": _daemon(snapshot, running),
        "config_mode": config.mode,
        "day": day.isoformat(),
        "day_basis": basis,
        "streams": live.get("streams") if running else None,
        "next_jobs": [
            {"name": j.get("name", "?"), "when": j.get("when")} for j in live.get("next_jobs", [])
        ],
        "last_fill": _last_fill(ledger),
        "strategies": strategies,
        "totals": _totals(strategies),
    }


def _daemon(snapshot: DaemonStatus | None, running: bool) -> dict[str, Any]:
    if snapshot is None:
        return {"running": False, "last_seen": None, "age_seconds": None}
    data = snapshot.data
    return {
        "running": running,
        "last_seen": iso(snapshot.written_at),
        "age_seconds": round(snapshot.age_seconds, 1),
        "mode": data.get("mode"),
        "pid": data.get("pid"),
        "ready": data.get("ready"),
        "virtual_now": data.get("virtual_now"),
        "guard": data.get("guard") or {"unprotected": [], "held_past_close": []},
    }


def _today(live: dict[str, Any], ledger: Ledger, wall_now: datetime) -> tuple[date, str]:
    virtual_now = parse_time(live.get("virtual_now"))
    if virtual_now is not None:
        return session_date(virtual_now), "daemon clock"
    last = parse_time(_last_fill(ledger))
    if last is not None:
        return session_date(last), "last fill"
    return session_date(wall_now), "wall clock"


def _last_fill(ledger: Ledger) -> str | None:
    return ledger.last_fill_time()


def _strategy_names(config: MagellanConfig, ledger: Ledger) -> list[str]:
    names = list(config.strategies)
    extra = {p.strategy for p in ledger.positions()} | {h.strategy for h in ledger.halts()}
    return names + sorted(extra - set(names))


def _strategy(
    name: str,
    config: MagellanConfig,
    ledger: Ledger,
    day: date,
    prices: dict[str, str],
    live: dict[str, Any],
) -> dict[str, Any]:
    entry = config.strategies.get(name)
    running_state = (live.get("strategies") or {}).get(name) or {}
    positions = [_position(p, prices) for p in ledger.positions(name)]
    return {
        "configured": entry is not None,
        "enabled": entry.enabled if entry else False,
        "running": running_state.get("running") if live else None,
        "account": entry.account if entry else None,
        "halted": _halt(ledger, name),
        "positions": positions,
        "unrealized_pnl": _sum_known(p["unrealized_pnl"] for p in positions),
        "pending_intents": [_intent(r) for r in ledger.intents("pending") if _of(r, name)],
        "open_orders": [_order(o) for o in ledger.orders(strategy=name, open_only=True)],
        "realized_today": str(ledger.realized_on(name, day)),
        "entries_today": _entries(ledger.fills(name, day)),
        "round_trips_today": [
            _round_trip(t) for t in ledger.closed_trades(name) if t["session_date"] == str(day)
        ],
    }


def _of(row: Any, name: str) -> bool:
    return bool(row.intent.strategy == name)


def _halt(ledger: Ledger, name: str) -> dict[str, str] | None:
    halt = ledger.halt_of(name)
    if halt is None:
        return None
    return {"reason": halt.reason, "since": iso(halt.since), "source": halt.source}


def _position(p: PositionRow, prices: dict[str, str]) -> dict[str, Any]:
    last = prices.get(p.symbol)
    unrealized = None if last is None else (Decimal(last) - p.avg_price) * p.qty
    return {
        "symbol": p.symbol,
        "account": p.account,
        "qty": str(p.qty),
        "entry_price": str(p.avg_price),
        "opened_at": None if p.opened_at is None else iso(p.opened_at),
        "last_price": last,
        "unrealized_pnl": None if unrealized is None else str(unrealized),
    }


def _intent(row: Any) -> dict[str, Any]:
    intent = row.intent
    return {
        "id": row.id,
        "symbol": intent.symbol,
        "action": intent.action,
        "leg": intent.leg,
        "signal_time": iso(intent.signal_time),
        "reason": intent.reason,
        "not_before": None if row.not_before is None else iso(row.not_before),
        "expires_at": None if row.expires_at is None else iso(row.expires_at),
    }


def _order(o: Any) -> dict[str, Any]:
    return {
        "client_order_id": o.client_order_id,
        "symbol": o.symbol,
        "side": o.side,
        "type": o.order_type,
        "qty": str(o.qty),
        "filled_qty": str(o.filled_qty),
        "stop_price": None if o.stop_price is None else str(o.stop_price),
        "status": o.status,
    }


def _entries(fills: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Today's buys, one row per order (partial fills summed, average price)."""
    by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for fill in fills:
        if fill["side"] == "buy":
            by_order[fill["client_order_id"]].append(fill)
    rows = []
    for cid, parts in by_order.items():
        qty = sum((Decimal(f["qty"]) for f in parts), Decimal(0))
        value = sum((Decimal(f["qty"]) * Decimal(f["price"]) for f in parts), Decimal(0))
        rows.append(
            {
                "client_order_id": cid,
                "symbol": parts[0]["symbol"],
                "qty": str(qty),
                "price": str(value / qty),
                "time": parts[0]["ts"],
            }
        )
    return rows


def _round_trip(t: dict[str, Any]) -> dict[str, Any]:
    keys = ("symbol", "qty", "entry_price", "exit_price", "pnl", "entry_time", "exit_time")
    return {k: t[k] for k in keys}


def _sum_known(values: Any) -> str | None:
    """The sum, or None when any term is unknown (no price for a held symbol)."""
    total = Decimal(0)
    for value in values:
        if value is None:
            return None
        total += Decimal(value)
    return str(total)


def _totals(strategies: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "realized_today": str(
            sum((Decimal(s["realized_today"]) for s in strategies.values()), Decimal(0))
        ),
        "unrealized_pnl": _sum_known(s["unrealized_pnl"] for s in strategies.values()),
        "open_positions": sum(len(s["positions"]) for s in strategies.values()),
        "pending_intents": sum(len(s["pending_intents"]) for s in strategies.values()),
    }
