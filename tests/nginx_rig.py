"""Debian's nginx run from the deploy example, for the proxy tests.

`render()` turns deploy/nginx.conf.example into a configuration a test can run
on loopback: its server block and proxy rules unchanged, only the addresses,
the host name and (when no certificate is given) TLS swapped out. `running()`
starts nginx in the foreground as a child process with every path it writes
in a temporary folder.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "deploy" / "nginx.conf.example"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HOST = "127.0.0.1"


def render(
    folder: Path,
    port: int,
    directus: str,
    service: str,
    certificate: tuple[Path, Path] | None = None,
) -> Path:
    """Write a runnable nginx.conf in `folder` from the example; returns it."""
    site = EXAMPLE.read_text()
    site = site.replace("server 127.0.0.1:8055;", f"server {directus};")
    site = site.replace("server 127.0.0.1:8700;", f"server {service};")
    # The plain-HTTP server only redirects to HTTPS: not needed on loopback.
    site, dropped = re.subn(r"server \{\s*listen 80;.*?\}\n", "", site, flags=re.S)
    assert dropped == 1, "the example's redirect block changed shape"
    site = site.replace("server_name cms.example.org;", f"server_name {HOST};")
    site = re.sub(r"\s*listen \[::\]:443 ssl http2;", "", site)
    if certificate is None:
        site = site.replace("listen 443 ssl http2;", f"listen {HOST}:{port};")
        site = re.sub(r"\s*ssl_certificate(_key)? .*;", "", site)
    else:
        site = site.replace("listen 443 ssl http2;", f"listen {HOST}:{port} ssl;")
        site = site.replace("/etc/letsencrypt/live/cms.example.org/fullchain.pem",
                            str(certificate[0]))  # fmt: skip
        site = site.replace("/etc/letsencrypt/live/cms.example.org/privkey.pem",
                            str(certificate[1]))  # fmt: skip
    (folder / "site.conf").write_text(site)
    config = folder / "nginx.conf"
    config.write_text(_main(folder))
    return config


def _main(folder: Path) -> str:
    temp = "\n".join(
        f"    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # Tests run as root; `user root` keeps workers able to use the temp folder.
    return f"""user root;
daemon off;
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    access_log {folder / "access.log"};
{temp}
    include {folder / "site.conf"};
}}
"""


def check(config: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on a rendered configuration."""
    return subprocess.run(
        [NGINX, "-t", "-p", str(config.parent), "-e", str(config.parent / "t.log"),
         "-c", str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@contextlib.contextmanager
def running(config: Path, port: int) -> Iterator[str]:
    """Run nginx in the foreground until the block ends; yields its base URL."""
    folder = config.parent
    log = (folder / "stderr.log").open("w")
    child = subprocess.Popen(
        [NGINX, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, child, folder)
        yield f"http://{HOST}:{port}"
    finally:
        child.terminate()
        child.wait(15)
        log.close()


def _wait_for_port(port: int, child: subprocess.Popen[bytes], folder: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"nginx exited: {(folder / 'error.log').read_text()}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError("nginx did not listen within 15 s")
