"""Faults on demand and per-endpoint counters, in front of every route."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from strava_simulator.errors import rate_limited

if TYPE_CHECKING:
    from strava_simulator.app import Simulator

KINDS = ("latency", "error", "rate_limit", "drop")
CONTROL_PREFIX = "/_sim"


@dataclass
class Fault:
    """A rule: which requests it hits and what it does to them."""

    id: int
    kind: str
    path: str = "*"
    count: int | None = None
    probability: float | None = None
    latency_ms: int = 0
    status: int = 500
    seed: int = 0
    fired: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def hits(self, path: str) -> bool:
        """Whether this rule fires on `path`, using up one of its count."""
        if not fnmatch.fnmatchcase(path, self.path):
            return False
        if self.count is not None:
            if self.fired >= self.count:
                return False
        elif self.probability is not None and self.rng.random() >= self.probability:
            return False
        self.fired += 1
        return True

    def describe(self) -> dict[str, Any]:
        """The rule as JSON."""
        body = asdict(self)
        body.pop("rng")
        return body


class Faults:
    """The active fault rules."""

    def __init__(self) -> None:
        self.rules: list[Fault] = []
        self._next_id = 1

    def add(self, spec: dict[str, Any], default_path: str) -> Fault:
        """A new rule from the control API's JSON."""
        kind = str(spec["kind"])
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {KINDS}")
        count = spec.get("count")
        probability = spec.get("probability")
        if count is None and probability is None:
            count = 1
        fault = Fault(
            id=self._next_id,
            kind=kind,
            path=str(spec.get("path") or default_path),
            count=None if count is None else int(count),
            probability=None if probability is None else float(probability),
            latency_ms=int(spec.get("latency_ms", 0)),
            status=int(spec.get("status", 500)),
            seed=int(spec.get("seed", 0)),
        )
        fault.rng.seed(fault.seed)
        self._next_id += 1
        self.rules.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every rule."""
        self.rules.clear()

    def pick(self, path: str) -> list[Fault]:
        """The rules that fire on this request."""
        return [rule for rule in self.rules if rule.hits(path)]


class Gate:
    """ASGI middleware: count each request by route, then apply faults."""

    def __init__(self, app: ASGIApp, sim: Simulator, routes: list[Route]) -> None:
        self.app = app
        self.sim = sim
        self.routes = routes
        self.counters: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass control requests through; count and maybe break the others."""
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        self.counters[self.endpoint(scope)] += 1
        fired = self.sim.faults.pick(path)
        delay = sum(rule.latency_ms for rule in fired if rule.kind == "latency")
        if delay:
            await asyncio.sleep(delay / 1000)
        final = next((rule for rule in fired if rule.kind != "latency"), None)
        if final is None:
            await self.app(scope, receive, send)
        elif final.kind == "drop":
            await self.drop(scope, receive)
        else:
            await self.refuse(final, send)

    def endpoint(self, scope: Scope) -> str:
        """ "METHOD /route/{template}" for counting."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return f"{scope['method']} {route.path}"
        return f"{scope['method']} (unmatched)"

    async def refuse(self, fault: Fault, send: Send) -> None:
        """Answer with a 5xx or the documented 429."""
        if fault.kind == "rate_limit":
            status, body = 429, rate_limited().body
            sim = self.sim
            extra = sim.limiter.headers(sim.config.client_id, sim.clock.now())
        else:
            status = fault.status
            phrase = HTTPStatus(status).phrase
            body = {"message": phrase, "errors": []}
            extra = {}
        payload = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json; charset=utf-8")]
        headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        headers.append((b"content-length", str(len(payload)).encode()))
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": payload})

    async def drop(self, scope: Scope, receive: Receive) -> None:
        """Close the client's connection without a byte of response."""
        client = tuple(scope.get("client") or ())
        server = self.sim.server
        connections = server.server_state.connections if server else set()
        for connection in list(connections):
            if getattr(connection, "client", None) == client:
                connection.transport.close()
        # Wait until the server notices, so it does not answer a 500 instead.
        for _ in range(50):
            message = await asyncio.wait_for(receive(), timeout=1)
            if message["type"] == "http.disconnect":
                return
