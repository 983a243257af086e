"""The ``/sim/...`` control endpoints: the virtual clock, the fault settings and the hooks
(what a test or harness changes from outside; never part of Alpaca's API)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from aiohttp import web

from magellan_core.clock import Clock
from magellan_sim.errors import SimError
from magellan_sim.exchange.faults import Faults
from magellan_sim.exchange.hooks import Hook, Hooks, hook_from_json
from magellan_sim.server.injection import FaultInjector
from magellan_sim.server.params import parse_json_body, to_datetime, to_decimal
from magellan_sim.server.rest import json_response


class ControlRoutes:
    """``/sim/clock``, ``/sim/faults`` and ``/sim/hooks`` (one handler per route)."""

    def __init__(self, clock: Clock, faults: Faults, hooks: Hooks, injector: FaultInjector) -> None:
        self._clock = clock
        self._faults = faults
        self._hooks = hooks
        self._injector = injector

    def register(self, router: web.UrlDispatcher) -> None:
        """Add the control routes to ``router``."""
        router.add_get("/sim/clock", self._get_clock)
        router.add_post("/sim/clock", self._post_clock)
        router.add_get("/sim/faults", self._get_faults)
        router.add_post("/sim/faults", self._post_faults)
        router.add_get("/sim/hooks", self._get_hooks)
        router.add_post("/sim/hooks", self._post_hooks)
        router.add_delete("/sim/hooks", self._delete_hooks)
        router.add_get("/sim/hooks/{name}", self._get_hook)
        router.add_post("/sim/hooks/{name}/release", self._release_hook)

    # -- clock -------------------------------------------------------------------------------

    def _clock_state(self) -> dict[str, Any]:
        clock = self._clock
        state: dict[str, Any] = {"now": clock.now().isoformat()}
        if hasattr(clock, "anchor"):
            state.update(clock.anchor())
        else:
            state["speed"] = 1.0
        state.setdefault("speed", getattr(clock, "speed", 1.0))
        return state

    async def _get_clock(self, request: web.Request) -> web.Response:
        """GET /sim/clock: virtual now, speed and the clock's affine anchor."""
        return json_response(self._clock_state())

    async def _post_clock(self, request: web.Request) -> web.Response:
        """POST /sim/clock {"set": iso, "advance_seconds": s, "speed": x} (any subset)."""
        clock = self._clock
        if not hasattr(clock, "set_speed"):
            raise SimError(422, 42210000, "the simulator runs on a clock that cannot be set")
        body = parse_json_body(await request.read())
        target = to_datetime(body.get("set"), "set")
        advance = to_decimal(body.get("advance_seconds"), "advance_seconds", positive=False)
        speed = to_decimal(body.get("speed"), "speed", positive=False)
        try:
            if target is not None:
                clock.set(target)
            if advance is not None:
                clock.advance(float(advance))
            if speed is not None:
                clock.set_speed(float(speed))
        except (ValueError, TypeError, OverflowError) as exc:
            raise SimError(422, 40010001, str(exc)) from exc
        return json_response(self._clock_state())

    # -- faults ------------------------------------------------------------------------------

    async def _get_faults(self, request: web.Request) -> web.Response:
        """GET /sim/faults: the current fault settings."""
        return json_response(self._faults.as_dict())

    async def _post_faults(self, request: web.Request) -> web.Response:
        """POST /sim/faults {field: value, ...}: update the faults (422 names a bad field)."""
        body = _json_object(await request.read())
        try:
            self._faults.update(**body)
        except ValueError as exc:
            raise SimError(422, 40010001, str(exc)) from exc
        if "seed" in body:
            # setting the seed, even to its current value, restarts the fault sequence
            self._injector.reseed()
        await self._injector.apply_drop_faults()
        return json_response(self._faults.as_dict())

    # -- hooks -------------------------------------------------------------------------------

    async def _get_hooks(self, request: web.Request) -> web.Response:
        """GET /sim/hooks: every hook with its hits."""
        return json_response([h.as_dict() for h in self._hooks.all()])

    async def _post_hooks(self, request: web.Request) -> web.Response:
        """POST /sim/hooks {name, kind, method, path, client_order_id, event, when,
        hold_seconds, faults, times}: arm a hook (422 names a bad field)."""
        body = _json_object(await request.read())
        try:
            hook = hook_from_json(body)
        except ValueError as exc:
            raise SimError(422, 40010001, str(exc)) from exc
        return json_response(self._hooks.arm(hook).as_dict())

    async def _delete_hooks(self, request: web.Request) -> web.Response:
        """DELETE /sim/hooks: release and forget every hook."""
        self._hooks.clear()
        return json_response([])

    async def _get_hook(self, request: web.Request) -> web.Response:
        """GET /sim/hooks/{name}[?wait=SECONDS]: the hook, after waiting (wall seconds, at
        most 60) for its first hit when ``wait`` is given."""
        hook = self._named_hook(request)
        wait = to_decimal(request.query.get("wait"), "wait", positive=False)
        if wait is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hook.wait_hit(), min(float(wait), 60.0))
        return json_response(hook.as_dict())

    async def _release_hook(self, request: web.Request) -> web.Response:
        """POST /sim/hooks/{name}/release: let the request held at the hook go on."""
        hook = self._named_hook(request)
        hook.release()
        return json_response(hook.as_dict())

    def _named_hook(self, request: web.Request) -> Hook:
        hook = self._hooks.get(request.match_info["name"])
        if hook is None:
            raise SimError(404, 40410000, "hook not found")
        return hook


def _json_object(raw: bytes) -> dict[str, Any]:
    """A control request's JSON object body (400 when it is not one)."""
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise SimError(400, 40010000, "malformed request body: invalid JSON") from exc
    if not isinstance(body, dict):
        raise SimError(400, 40010000, "malformed request body: expected a JSON object")
    return body
