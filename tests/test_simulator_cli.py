"""`strava-simulator serve` as its own process."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx


def test_serve_prints_urls_and_answers() -> None:
    command = [
        sys.executable, "-m", "strava_simulator.cli", "serve", "--port", "0",
        "--seed", "1", "--athletes", "1", "--activities", "5", "--sim-clock",
        "--client-secret", "s3cret",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert info["client_id"] == 12345
        assert info["client_secret"] == "s3cret"
        assert info["api_url"] == info["base_url"] + "/api/v3"
        state = httpx.get(info["control_url"] + "/state", timeout=10).json()
        assert state["clock"]["mode"] == "simulated"
        assert len(httpx.get(info["control_url"] + "/activities").json()) == 5
    finally:
        process.terminate()
        process.wait(timeout=10)
