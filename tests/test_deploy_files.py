"""The deployment examples in deploy/: checked as far as this machine allows.

nginx and Caddy check their own configurations (`nginx -t`, `caddy
validate`); systemd checks the unit (`systemd-analyze verify`). No container
engine runs here, so the Dockerfile and the compose file are parsed and
checked for what the service needs: the same settings names, a non-root
user, the data volume and the health check.
"""

from __future__ import annotations

import configparser
import datetime
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dockerfile_parse import DockerfileParser

import nginx_rig
from directus_strava.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SETTINGS = {name.upper() for name in Settings.model_fields}
REQUIRED = {
    name.upper() for name, field in Settings.model_fields.items() if field.is_required()
}


def _env_file() -> dict[str, str]:
    pairs = {}
    for line in (DEPLOY / "directus-strava.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def test_the_env_example_names_only_real_settings() -> None:
    names = set(_env_file())
    assert names <= SETTINGS, f"unknown settings: {names - SETTINGS}"
    assert names >= REQUIRED, f"required settings missing: {REQUIRED - names}"
    assert _env_file()["SERVICE_PATH_PREFIX"] == "/strava"
    assert _env_file()["SERVICE_PUBLIC_URL"].endswith("/strava")


# --- nginx -------------------------------------------------------------------


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate, so `nginx -t` checks the TLS lines."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _need(program: str) -> str:
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin")
    if found is None:
        pytest.fail(f"{program} is missing: ./dev test installs it (apt-get)")
    return found


def test_nginx_accepts_the_example_with_tls(tmp_path: Path) -> None:
    _need("nginx")
    config = nginx_rig.render(
        tmp_path, 8443, "127.0.0.1:8055", "127.0.0.1:8700", _certificate(tmp_path)
    )
    checked = nginx_rig.check(config)
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
    assert "ssl" in (tmp_path / "site.conf").read_text()


def test_nginx_refuses_a_broken_example(tmp_path: Path) -> None:
    # The check above can fail: the same rendering with one brace gone does.
    _need("nginx")
    config = nginx_rig.render(tmp_path, 8080, "127.0.0.1:8055", "127.0.0.1:8700")
    site = tmp_path / "site.conf"
    site.write_text(site.read_text().replace("location / {", "location / ", 1))
    assert nginx_rig.check(config).returncode != 0


def test_the_nginx_example_passes_the_webhook_and_forwarded_headers() -> None:
    text = nginx_rig.EXAMPLE.read_text()
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"):
        assert f"proxy_set_header {header}" in text
    webhook = re.search(r"location /strava/webhook/ \{(.*?)\}", text, re.S)
    assert webhook is not None
    assert "proxy_pass http://directus_strava;" in webhook.group(1)
    # The service gets the whole path, prefix included (no URI on proxy_pass).
    assert re.search(r"location /strava/ \{\s*proxy_pass http://directus_strava;", text)


# --- Caddy -------------------------------------------------------------------


def test_caddy_accepts_the_example(tmp_path: Path) -> None:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (apt-get install caddy): adapt not run")
    adapted = subprocess.run(
        [caddy, "adapt", "--adapter", "caddyfile", "--config",
         str(DEPLOY / "Caddyfile.example")],
        capture_output=True, text=True, timeout=60, check=False,
        env={"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)},
    )  # fmt: skip
    assert adapted.returncode == 0, adapted.stderr
    routes = str(adapted.stdout)
    assert "127.0.0.1:8700" in routes
    assert "127.0.0.1:8055" in routes
    assert "/strava/webhook/*" in routes


def test_the_caddy_example_routes_the_service_before_directus() -> None:
    # Checked without caddy too: blocks balanced, the service's handles come
    # before the catch-all that sends everything else to Directus.
    text = (DEPLOY / "Caddyfile.example").read_text()
    code = "\n".join(line.split("#")[0] for line in text.splitlines())
    assert code.count("{") == code.count("}")
    webhook = code.index("handle /strava/webhook/*")
    pages = code.index("handle /strava/*")
    rest = code.index("handle {")
    assert webhook < pages < rest
    assert code.count("reverse_proxy 127.0.0.1:8700") == 2
    assert "reverse_proxy 127.0.0.1:8055" in code


# --- systemd -----------------------------------------------------------------


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "directus-strava.service")
    return unit


def test_the_unit_follows_the_settings() -> None:
    unit = _unit()
    assert unit.sections() == ["Unit", "Service", "Install"]
    service = unit["Service"]
    assert service["EnvironmentFile"] == "/etc/directus-strava.env"
    assert service["ExecStart"].endswith("directus-strava serve")
    assert service["StateDirectory"] == "directus-strava"
    data_dir = service["Environment"].removeprefix("SERVICE_DATA_DIR=")
    assert data_dir == "/var/lib/" + service["StateDirectory"]
    assert data_dir == _env_file()["SERVICE_DATA_DIR"]
    assert service["User"] == "directus-strava"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"


def test_systemd_verifies_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: only the parse check ran")
    # verify wants ExecStart to exist: point it at this checkout's command.
    command = Path(_need_venv_command())
    text = (DEPLOY / "directus-strava.service").read_text()
    unit = tmp_path / "directus-strava.service"
    unit.write_text(
        text.replace("/opt/directus-strava/.venv/bin/directus-strava", str(command))
    )
    verified = _run([analyze, "verify", "--man=no", str(unit)])
    assert verified.returncode == 0, verified.stderr
    assert verified.stderr.strip() == "", verified.stderr
    security = _run([analyze, "security", "--offline=yes", str(unit)])
    exposure = re.search(r"Overall exposure level.*?: ([\d.]+)", security.stdout)
    assert exposure is not None, security.stdout + security.stderr
    assert float(exposure.group(1)) < 2.5


def _need_venv_command() -> str:
    found = shutil.which("directus-strava")
    assert found is not None, "run the tests with uv run (the venv's bin on PATH)"
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


# --- container ---------------------------------------------------------------


def _dockerfile() -> list[dict[str, Any]]:
    parser = DockerfileParser(str(DEPLOY / "Dockerfile"))
    return list(parser.structure)


def test_the_dockerfile_builds_from_the_lock_as_a_plain_user() -> None:
    steps = [step for step in _dockerfile() if step["instruction"] != "COMMENT"]
    kinds = [step["instruction"] for step in steps]
    known = {"FROM", "ENV", "RUN", "WORKDIR", "COPY", "USER", "VOLUME", "EXPOSE",
             "HEALTHCHECK", "CMD"}  # fmt: skip
    assert set(kinds) <= known, set(kinds) - known
    assert steps[0]["value"] == "python:3.11-slim"
    runs = " ".join(step["value"] for step in steps if step["instruction"] == "RUN")
    assert "uv sync --frozen --no-dev" in runs
    copies = [step["value"] for step in steps if step["instruction"] == "COPY"]
    assert any("uv.lock" in value for value in copies)
    user = kinds.index("USER")
    assert steps[user]["value"] not in ("root", "0")
    assert user < kinds.index("CMD")
    assert steps[kinds.index("CMD")]["value"] == '["directus-strava", "serve"]'
    assert "/health" in steps[kinds.index("HEALTHCHECK")]["value"]
    assert "/data" in steps[kinds.index("VOLUME")]["value"]


def test_the_dockerfile_sets_only_real_settings() -> None:
    parser = DockerfileParser(str(DEPLOY / "Dockerfile"))
    ours = {
        name
        for name in parser.envs
        if name.startswith(("SERVICE_", "DIRECTUS_", "STRAVA_"))
    }
    assert ours, "the image sets no service settings"
    assert ours <= SETTINGS, ours - SETTINGS
    assert parser.envs["SERVICE_DATA_DIR"] == "/data"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (DEPLOY / "compose.example.yaml").read_text()
    )
    return loaded


def test_compose_runs_the_service_beside_directus_and_postgis() -> None:
    services = _compose()["services"]
    assert set(services) == {"database", "directus", "directus-strava"}
    assert services["directus"]["image"] == "directus/directus:12.4.0"
    assert services["database"]["image"].startswith("postgis/postgis:")
    ours = services["directus-strava"]
    assert ours["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / ours["build"]["context"]).resolve() == DEPLOY.parent
    assert ours["env_file"] == ["directus-strava.env"]
    assert set(ours["environment"]) <= SETTINGS
    assert ours["environment"]["SERVICE_DATA_DIR"] == "/data"
    assert ours["environment"]["DIRECTUS_URL"] == "http://directus:8055"
    assert any(volume.endswith(":/data") for volume in ours["volumes"])
    assert services["directus"]["environment"]["DB_CLIENT"] == "pg"
