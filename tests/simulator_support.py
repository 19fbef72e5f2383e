"""Helpers for the simulator tests: a webhook callback server and a form reader."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


@dataclass
class Callback:
    """What the callback server does and what it received."""

    url: str = ""
    challenge_mode: str = "echo"  # echo, wrong, error
    fail_first: int = 0
    delay: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)
    posts: int = 0
    checks: list[dict[str, str]] = field(default_factory=list)


def _callback_app(state: Callback) -> Starlette:
    """A tiny webhook receiver in the style Strava expects."""

    async def check(request: Request) -> Response:
        query = dict(request.query_params)
        state.checks.append(query)
        if state.challenge_mode == "error":
            return PlainTextResponse("nope", status_code=403)
        challenge = query.get("hub.challenge", "")
        if state.challenge_mode == "wrong":
            challenge = "something else"
        return JSONResponse({"hub.challenge": challenge})

    async def receive(request: Request) -> Response:
        state.posts += 1
        if state.delay:
            await asyncio.sleep(state.delay)
        if state.posts <= state.fail_first:
            return PlainTextResponse("down", status_code=503)
        state.events.append(await request.json())
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/webhook", check, methods=["GET"]),
            Route("/webhook", receive, methods=["POST"]),
        ]
    )


@contextmanager
def callback_server() -> Iterator[Callback]:
    """Serve a webhook receiver on 127.0.0.1 and a free port."""
    state = Callback()
    config = uvicorn.Config(
        _callback_app(state), host="127.0.0.1", port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}/webhook"
    try:
        yield state
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class ConsentForm(HTMLParser):
    """Reads the consent page: form action, inputs, boxes, labels, options."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.action = ""
        self.hidden: list[tuple[str, str]] = []
        self.boxes: dict[str, dict[str, str | None]] = {}
        self.labels: dict[str, str] = {}
        self.options: list[str] = []
        self.buttons: list[str] = []
        self._label_for: str | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.action = values.get("action") or ""
        elif tag == "input" and values.get("type") == "hidden":
            self.hidden.append((values["name"] or "", values.get("value") or ""))
        elif tag == "input" and values.get("type") == "checkbox":
            self.boxes[values.get("value") or ""] = values
        elif tag == "label":
            self._label_for = values.get("for")
        elif tag == "option":
            self.options.append(values.get("value") or "")
        elif tag == "button":
            self.buttons.append(values.get("value") or "")

    def handle_data(self, data: str) -> None:
        if self._label_for:
            self.labels[self._label_for] = self.labels.get(self._label_for, "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_for = None

    def submit(
        self, decision: str, untick: tuple[str, ...] = (), athlete: str | None = None
    ) -> list[tuple[str, str]]:
        """Form fields as a browser would send them."""
        fields = list(self.hidden)
        for value, box in self.boxes.items():
            if box.get("name") and "checked" in box and value not in untick:
                fields.append((box["name"] or "", value))
        fields.append(("athlete_id", athlete or self.options[0]))
        fields.append(("decision", decision))
        return fields
