"""Hooks: "tell me when the next request (or trade update) matching X arrives", for tests
that must act at an exact point of the daemon's work (``POST /sim/hooks``).

A hook matches a REST request by method, path (a regular expression) and the
``client_order_id`` of the order it carries or names (a substring), or a trade-update frame
by event and ``client_order_id``. When it matches it is *hit*: its ``faults`` are applied
(before the core handles the request, or once the answer is ready, per ``when``), waiters
are woken, and a request may be *held* there for up to ``hold_seconds`` wall seconds (until
released), so a harness can SIGKILL the client while the request is in flight. A
trade-update hook is hit as its frame is written to the socket (just before the write, so
a callback that kills the client lands before the client can act on the frame).

Hooks are one-shot by default (``times``); they never change how the exchange judges an
order, only when the faults the test asked for begin.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from magellan_sim.exchange.faults import Faults

WHEN = frozenset({"before", "after"})
KINDS = frozenset({"request", "trade_update"})
MAX_HOLD_SECONDS = 60.0


@dataclass(eq=False)
class Hook:
    """One armed hook and what it has seen."""

    name: str
    kind: str = "request"  # "request" or "trade_update"
    method: str | None = None  # request: GET, POST, PATCH, DELETE (None: any)
    path: str | None = None  # request: regular expression searched in the path
    client_order_id: str | None = None  # substring of the order's client_order_id
    event: str | None = None  # trade_update: regular expression matched on the event
    when: str = "before"  # request: hit before the core handles it, or after
    hold_seconds: float = 0.0  # request: hold it this long after the hit unless released
    faults: dict[str, Any] = field(default_factory=dict)  # applied when hit
    times: int = 1  # hits before the hook disarms
    hits: int = 0
    seen: list[dict[str, Any]] = field(default_factory=list)  # what each hit matched
    holding: bool = False  # a request is held at the hook right now

    def __post_init__(self) -> None:
        self._hit = asyncio.Event()
        self._release = asyncio.Event()
        self.callback: Callable[[Hook], None] | None = None

    @property
    def armed(self) -> bool:
        """Whether the hook still waits for a hit."""
        return self.hits < self.times

    async def wait_hit(self) -> None:
        """Return once the hook has been hit (at once if it already was)."""
        await self._hit.wait()

    def release(self) -> None:
        """Let the held request go on (and any later one: the hold is over)."""
        self._release.set()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "name": self.name,
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "client_order_id": self.client_order_id,
            "event": self.event,
            "when": self.when,
            "hold_seconds": self.hold_seconds,
            "faults": self.faults,
            "times": self.times,
            "hits": self.hits,
            "holding": self.holding,
            "seen": self.seen,
        }


FIELDS = frozenset(
    {
        "name",
        "kind",
        "method",
        "path",
        "client_order_id",
        "event",
        "when",
        "hold_seconds",
        "faults",
        "times",
    }
)


def hook_from_json(body: dict[str, Any]) -> Hook:
    """A hook from ``POST /sim/hooks``'s body (ValueError naming what is wrong)."""
    unknown = set(body) - FIELDS
    if unknown:
        raise ValueError(f"unknown hook field: {sorted(unknown)[0]}")
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("name must be a non-empty string")
    kind = _one_of(body, "kind", "request", KINDS)
    when = _one_of(body, "when", "before", WHEN)
    _check_texts(body)
    hold = body.get("hold_seconds", 0.0)
    if isinstance(hold, bool) or not isinstance(hold, int | float):
        raise ValueError("hold_seconds must be a number")
    if not 0.0 <= float(hold) <= MAX_HOLD_SECONDS:
        raise ValueError(f"hold_seconds must be between 0 and {MAX_HOLD_SECONDS:g}")
    times = body.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ValueError("times must be a positive integer")
    faults = body.get("faults", {})
    if not isinstance(faults, dict):
        raise ValueError("faults must be an object of fault fields")
    Faults().update(**faults)  # the same validation as POST /sim/faults
    method = body.get("method")
    return Hook(
        name=name,
        kind=kind,
        method=method.upper() if method else None,
        path=body.get("path"),
        client_order_id=body.get("client_order_id"),
        event=body.get("event"),
        when=when,
        hold_seconds=float(hold),
        faults=faults,
        times=times,
    )


def _one_of(body: dict[str, Any], name: str, default: str, allowed: frozenset[str]) -> str:
    value = body.get(name, default)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}")
    return value


def _check_texts(body: dict[str, Any]) -> None:
    for text in ("method", "path", "client_order_id", "event"):
        if body.get(text) is not None and not isinstance(body[text], str):
            raise ValueError(f"{text} must be a string")
    for pattern in ("path", "event"):
        if body.get(pattern) is not None:
            try:
                re.compile(body[pattern])
            except re.error as exc:
                raise ValueError(f"{pattern} is not a regular expression: {exc}") from exc


class Hooks:
    """The armed hooks of one server, by name (arming a name again replaces it)."""

    def __init__(self, faults: Faults, now: Callable[[], datetime]) -> None:
        self._faults = faults
        self._now = now
        self._hooks: dict[str, Hook] = {}

    def arm(self, hook: Hook) -> Hook:
        """Arm ``hook`` (replacing an armed one of its name, which is released)."""
        old = self._hooks.pop(hook.name, None)
        if old is not None:
            old.release()
        self._hooks[hook.name] = hook
        return hook

    def get(self, name: str) -> Hook | None:
        """The hook of that name, hit or not."""
        return self._hooks.get(name)

    def clear(self) -> None:
        """Release and forget every hook."""
        for hook in self._hooks.values():
            hook.release()
        self._hooks.clear()

    def all(self) -> list[Hook]:
        """Every hook, in the order they were armed."""
        return list(self._hooks.values())

    def wants_requests(self) -> bool:
        """Whether any armed hook looks at REST requests (else skip the matching work)."""
        return any(h.armed and h.kind == "request" for h in self._hooks.values())

    def wants_trade_frames(self) -> bool:
        """Whether any armed hook looks at trade-update frames."""
        return any(h.armed and h.kind == "trade_update" for h in self._hooks.values())

    def match_request(
        self, method: str, path: str, client_order_id: str | None, when: str
    ) -> Hook | None:
        """The first armed request hook for this request at this moment (hit it)."""
        for hook in self._hooks.values():
            if not hook.armed or hook.kind != "request" or hook.when != when:
                continue
            if hook.method is not None and hook.method != method:
                continue
            if hook.path is not None and re.search(hook.path, path) is None:
                continue
            if hook.client_order_id is not None and (
                client_order_id is None or hook.client_order_id not in client_order_id
            ):
                continue
            self._hit(hook, {"method": method, "path": path, "client_order_id": client_order_id})
            return hook
        return None

    def on_trade_frame_sent(self, frame: bytes) -> None:
        """A trade-update frame is being written to a socket: hit a matching hook."""
        if not self.wants_trade_frames():
            return
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return
        data = message.get("data") if isinstance(message, dict) else None
        if not isinstance(data, dict):
            return
        event = data.get("event")
        order = data.get("order") if isinstance(data.get("order"), dict) else {}
        cid = order.get("client_order_id")
        for hook in self._hooks.values():
            if not hook.armed or hook.kind != "trade_update":
                continue
            if hook.event is not None and (
                not isinstance(event, str) or re.fullmatch(hook.event, event) is None
            ):
                continue
            if hook.client_order_id is not None and (
                not isinstance(cid, str) or hook.client_order_id not in cid
            ):
                continue
            seen = {"event": event, "client_order_id": cid, "order_id": order.get("id")}
            seen["filled_qty"] = order.get("filled_qty")
            self._hit(hook, seen)
            return

    async def hold(self, hook: Hook) -> None:
        """Hold the request that hit ``hook`` until released or ``hold_seconds`` pass."""
        if hook.hold_seconds <= 0 or hook._release.is_set():
            return
        hook.holding = True
        try:
            await asyncio.wait_for(hook._release.wait(), hook.hold_seconds)
        except TimeoutError:
            pass
        finally:
            hook.holding = False

    def _hit(self, hook: Hook, seen: dict[str, Any]) -> None:
        hook.hits += 1
        hook.seen.append({**seen, "at": self._now().isoformat()})
        if hook.faults:
            self._faults.update(**hook.faults)
        hook.holding = hook.hold_seconds > 0 and not hook._release.is_set()
        hook._hit.set()
        if hook.callback is not None:
            hook.callback(hook)
