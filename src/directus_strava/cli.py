"""The `directus-strava` command: thin commands over the service's parts."""

from __future__ import annotations

import functools
import http.server
import logging
import os
import pathlib
import signal
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import uvicorn
from tqdm import tqdm

from directus_strava import backfill
from directus_strava import settings as settings_module
from directus_strava.archive import count_activities
from directus_strava.directus import DirectusClient
from directus_strava.errors import ConfigError, DirectusStravaError, OAuthError
from directus_strava.importer import (
    ArchiveReport,
    import_archive,
    import_state,
    refresh_places,
)
from directus_strava.jobs import INTERACTIVE, SYNC
from directus_strava.oauth import Connection
from directus_strava.schema import setup as setup_schema
from directus_strava.service import Service
from directus_strava.web import create_app
from directus_strava.worker import sync_payload

F = TypeVar("F", bound=Callable[..., Any])


def _service() -> Service:
    return Service.build(settings_module.load())


def _reported(command: F) -> F:
    """Turn our errors into one plain line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except DirectusStravaError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log every activity (DEBUG).")
def cli(verbose: bool) -> None:
    """Keep your Strava activities in your own Directus."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # httpx logs every request URL at INFO; ours are enough.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@cli.command()
@click.option(
    "--admin-token",
    envvar="DIRECTUS_ADMIN_TOKEN",
    required=True,
    help="A Directus admin token (or DIRECTUS_ADMIN_TOKEN).",
)
@click.option(
    "--service-user",
    is_flag=True,
    help="Also create a least-privilege user for the service and print "
    "its token (set it as DIRECTUS_TOKEN).",
)
@click.option("--directus-url", envvar="DIRECTUS_URL", required=True)
@click.option(
    "--collection",
    envvar="DIRECTUS_COLLECTION",
    default="strava_activities",
    show_default=True,
)
@_reported
def setup(
    admin_token: str, service_user: bool, directus_url: str, collection: str
) -> None:
    """Create the activities collection, folders and map view in Directus."""
    directus = DirectusClient(directus_url, admin_token)
    report = setup_schema(directus, collection, service_user=service_user)
    kind = "PostGIS geometry" if report.spatial else "GeoJSON (map interface)"
    click.echo(f"collection: {report.collection} (routes as {kind})")
    click.echo(f"fields added: {len(report.created_fields)}")
    if report.service_token:
        click.echo("service user token (set DIRECTUS_TOKEN to it; shown once):")
        click.echo(report.service_token)


@cli.command()
@click.option(
    "--port",
    default=8765,
    show_default=True,
    help="Local port for Strava's redirect back to this machine.",
)
@click.option("--timeout", default=600, show_default=True, help="Seconds to wait.")
@_reported
def connect(port: int, timeout: int) -> None:
    """Connect a Strava athlete from the terminal (no web pages needed)."""
    service = _service()
    result: dict[str, Any] = {}
    server = _callback_server(port, service, result)
    redirect = f"http://127.0.0.1:{server.server_address[1]}/callback"
    url = service.tokens.begin(redirect)
    click.echo("Open this address in a browser on this machine and authorize:")
    click.echo(url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    done = result.setdefault("done", threading.Event())
    finished = done.wait(timeout)
    server.shutdown()
    if not finished:
        raise OAuthError("No answer from Strava in time: run `connect` again.")
    if "error" in result:
        raise result["error"]
    connection: Connection = result["connection"]
    click.echo(f"Connected athlete {connection.athlete_id} ({connection.name}).")
    click.echo(connection.advice())


def _callback_server(
    port: int, service: Service, result: dict[str, Any]
) -> http.server.HTTPServer:
    done = result.setdefault("done", threading.Event())

    class Callback(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urllib.parse.urlparse(self.path).query
            params = dict(urllib.parse.parse_qsl(query))
            try:
                result["connection"], _ = service.tokens.finish(params)
                message = "Connected. You can close this tab."
            except DirectusStravaError as exc:
                result["error"] = exc
                message = str(exc)
            body = f"<!doctype html><title>directus-strava</title><p>{message}"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body.encode())
            done.set()

        def log_message(self, format: str, *args: Any) -> None:
            # The default handler logs the query string, which holds the code.
            return

    return http.server.HTTPServer(("127.0.0.1", port), Callback)


@cli.command()
@click.option("--athlete", type=int, help="Only this athlete.")
@click.option("--page", default=1, show_default=True)
@click.option("--per-page", default=30, show_default=True)
@_reported
def recent(athlete: int | None, page: int, per_page: int) -> None:
    """List recent activities with their import state."""
    service = _service()
    for athlete_id in _athletes(service, athlete):
        service.queue.put(
            "list",
            athlete_id=athlete_id,
            priority=INTERACTIVE,
            payload={"page": page, "per_page": per_page},
            key=f"list:{athlete_id}:{page}:{per_page}",
        )
    service.worker.drain()
    rows = service.store.db.execute(
        "SELECT * FROM ledger WHERE start_date IS NOT NULL "
        "ORDER BY start_date DESC LIMIT ? OFFSET ?",
        (per_page, (page - 1) * per_page),
    )
    for row in rows:
        state = import_state(row)
        km = (row["distance"] or 0) / 1000
        click.echo(
            f"{row['activity_id']:>12}  {row['start_date'][:10]}  "
            f"{row['sport_type'] or '':<14} {km:7.1f} km  {state:<11} "
            f"{row['name']}"
        )


@cli.command(name="import")
@click.argument("activity_ids", nargs=-1, type=int, required=True)
@click.option("--athlete", type=int, help="The athlete owning them.")
@_reported
def import_(activity_ids: tuple[int, ...], athlete: int | None) -> None:
    """Import (or re-import) activities by their Strava id."""
    service = _service()
    owner = _athletes(service, athlete)[0]
    for activity_id in activity_ids:
        service.queue.put(
            "import", athlete_id=owner, object_id=activity_id, priority=INTERACTIVE
        )
    service.worker.drain()
    _report_failures(service)


@cli.command()
@click.option("--athlete", type=int, help="Only this athlete.")
@_reported
def sync(athlete: int | None) -> None:
    """Import everything new or changed since the last sync, in batches."""
    service = _service()
    for athlete_id in _athletes(service, athlete):
        row = service.store.db.execute(
            "SELECT last_sync_at FROM athletes WHERE id = ?", (athlete_id,)
        ).fetchone()
        payload = sync_payload(row["last_sync_at"], service.clock.now())
        service.queue.put(
            "sync",
            athlete_id=athlete_id,
            priority=SYNC,
            payload=payload,
            key=f"sync:{athlete_id}:1",
        )
    done = service.worker.drain()
    click.echo(f"sync finished: {done} jobs run")
    _report_failures(service)


@cli.command()
@click.option(
    "--scheduler/--no-scheduler",
    default=True,
    show_default=True,
    help="Also enqueue polling, reconciliation and subscription checks.",
)
@click.option("--exit-with", type=int, hidden=True, help="Stop when this pid ends.")
@_reported
def work(scheduler: bool, exit_with: int | None) -> None:
    """Run the worker (and scheduler) alone until interrupted or terminated."""
    service = _service()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads = service.start_background(stop, scheduler=scheduler)
    try:
        while not stop.wait(1.0):
            # `serve` starts us with its pid: once it is gone, even killed,
            # we are re-parented, and a worker nobody will stop must not stay.
            if exit_with and os.getppid() != exit_with:
                logging.getLogger("directus_strava.serve").warning(
                    "event=worker_orphaned parent=%s", exit_with
                )
                stop.set()
    except KeyboardInterrupt:
        stop.set()
    for thread in threads:
        thread.join(30)


@cli.command()
@click.option("--retry", "retry", is_flag=True, help="Retry every failed job.")
@_reported
def status(retry: bool) -> None:
    """Show athletes, the queue and the rate budget."""
    service = _service()
    if retry:
        click.echo(f"retrying {service.queue.retry_failed()} failed jobs")
    for athlete in service.tokens.connected():
        click.echo(
            f"athlete {athlete['id']} {athlete['name']}: "
            f"scopes={athlete['scopes']} token={athlete['token_status']}"
        )
    counts = service.queue.counts()
    click.echo("queue: " + " ".join(f"{k}={v}" for k, v in counts.items()))
    for job in service.queue.listing("failed", 20):
        click.echo(
            f"  failed job {job['id']} {job['kind']} {job['object_id']}: "
            f"{job['last_error']}"
        )
    click.echo(f"budget: {service.budget.snapshot()}")


def _athletes(service: Service, athlete: int | None) -> list[int]:
    ids = [
        row["id"] for row in service.tokens.connected() if row["token_status"] == "ok"
    ]
    if athlete is not None:
        ids = [athlete] if athlete in ids else []
    if not ids:
        raise OAuthError("No connected athlete: run `directus-strava connect` first.")
    return ids


def _report_failures(service: Service) -> None:
    failed = service.queue.listing("failed", 20)
    for job in failed:
        click.secho(
            f"failed: {job['kind']} {job['object_id']}: {job['last_error']}",
            fg="yellow",
            err=True,
        )


@cli.group()
def subscription() -> None:
    """Strava's webhook subscription for this app (one per app)."""


@subscription.command(name="create")
@click.option(
    "--replace", is_flag=True, help="Delete a subscription pointing elsewhere first."
)
@_reported
def subscription_create(replace: bool) -> None:
    """Subscribe this service to Strava's events.

    Strava calls the callback while this runs, so the service (web server)
    must already be running and reachable at SERVICE_PUBLIC_URL.
    """
    service = _service()
    subscription_id = service.subscriptions.create(replace=replace)
    click.echo(f"subscription {subscription_id} sends events to this service")


@subscription.command(name="show")
@_reported
def subscription_show() -> None:
    """Show the app's subscription as Strava lists it."""
    found = _service().subscriptions.show()
    if found is None:
        click.echo("no subscription")
        return
    for key in ("id", "callback_url", "created_at"):
        click.echo(f"{key}: {found.get(key)}")


@subscription.command(name="delete")
@_reported
def subscription_delete() -> None:
    """Delete the app's subscription (events stop; polling takes over)."""
    deleted = _service().subscriptions.delete()
    click.echo(f"deleted subscription {deleted}" if deleted else "no subscription")


@subscription.command(name="check")
@_reported
def subscription_check() -> None:
    """Say whether Strava's events can reach the running service."""
    status = _service().subscriptions.check()
    click.echo(status.sentence)
    if not status.ok:
        sys.exit(1)


@cli.command()
@click.option(
    "--worker",
    type=click.Choice(["process", "thread"]),
    default="process",
    show_default=True,
    help="Run imports in a child process (webhook answers never wait for them) "
    "or in a thread of the web process.",
)
@_reported
def serve(worker: str) -> None:
    """Serve the web pages, with the worker, until interrupted."""
    settings = settings_module.load()
    service = Service.build(settings)
    log = logging.getLogger("directus_strava.serve")
    log.info(
        "event=serve host=%s port=%s public_url=%s worker=%s",
        settings.service_host,
        settings.service_port,
        settings.public(),
        worker,
    )
    child = WorkerProcess() if worker == "process" else None
    # uvicorn stops gracefully on SIGTERM, then raises it again; exiting
    # through Python then, not the default handler, lets `finally` stop the
    # worker process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(
            create_app(service, background=child is None),
            host=settings.service_host,
            port=settings.service_port,
            log_level="warning",
            access_log=False,
            proxy_headers=True,
        )
    finally:
        if child:
            child.stop()
        service.close()


class WorkerProcess:
    """`directus-strava work` as a child process, restarted if it dies."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._process = self._spawn()
        threading.Thread(target=self._watch, daemon=True, name="watch").start()

    def stop(self) -> None:
        """Ask the worker to finish its job and wait for it."""
        self._stop.set()
        self._process.terminate()
        try:
            self._process.wait(40)
        except subprocess.TimeoutExpired:
            self._process.kill()

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = ["work", "--exit-with", str(os.getpid())]
        return subprocess.Popen([sys.executable, "-m", "directus_strava", *command])

    def _watch(self) -> None:
        while not self._stop.wait(2.0):
            if self._process.poll() is not None and not self._stop.is_set():
                logging.getLogger("directus_strava.serve").error(
                    "event=worker_exited code=%s restart=yes", self._process.returncode
                )
                self._process = self._spawn()


@cli.command(name="backfill")
@click.option("--athlete", type=int, help="Only this athlete.")
@click.option("--after", type=click.DateTime(["%Y-%m-%d"]), help="From (UTC).")
@click.option("--before", type=click.DateTime(["%Y-%m-%d"]), help="Until (UTC).")
@click.option("--pause", "action", flag_value="pause", help="Hold the backfill.")
@click.option("--resume", "action", flag_value="resume", help="Go on after --pause.")
@click.option("--status", "action", flag_value="status", help="Only show progress.")
@click.option("--no-wait", is_flag=True, help="Only enqueue; the service works it.")
@_reported
def backfill_command(
    athlete: int | None,
    after: datetime | None,
    before: datetime | None,
    action: str | None,
    no_wait: bool,
) -> None:
    """Import the whole history: summaries first, then every detail."""
    service = _service()
    if action == "status":
        _show_progress(service)
        return
    for athlete_id in _athletes(service, athlete):
        if action == "pause":
            backfill.pause(service.queue, athlete_id, service.clock.now())
        elif action == "resume":
            backfill.resume(service.queue, athlete_id)
        else:
            backfill.start(service.queue, athlete_id, _epoch(after), _epoch(before))
    if action == "pause" or no_wait:
        _show_progress(service)
        return
    _drain_with_bar(service)


def _epoch(moment: datetime | None) -> int | None:
    return int(moment.replace(tzinfo=UTC).timestamp()) if moment else None


def _show_progress(service: Service) -> None:
    progress = backfill.backfill_progress(service.store, service.budget)
    for athlete in progress["athletes"]:
        state = "paused" if athlete["paused"] else "finished" if athlete[
            "finished"] else "running"  # fmt: skip
        click.echo(
            f"athlete {athlete['athlete_id']}: {athlete['done']}/{athlete['total']} "
            f"deepened, {state}"
        )
    click.echo(f"estimated finish: {_when(progress['estimated_finish'])}")


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "unknown until Strava reports its limits"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _drain_with_bar(service: Service) -> None:
    """Work the queue in a thread while a progress bar follows the ledger."""
    stop = threading.Event()
    worker = threading.Thread(target=service.worker.drain, args=(stop,), daemon=True)
    worker.start()
    with tqdm(unit="activity", desc="backfill") as bar:
        try:
            while worker.is_alive():
                _update_bar(bar, service)
                worker.join(0.5)
        except KeyboardInterrupt:
            stop.set()
            worker.join()
        _update_bar(bar, service)
    _report_failures(service)


def _update_bar(bar: tqdm[Any], service: Service) -> None:
    progress = backfill.backfill_progress(service.store, service.budget)
    bar.total, bar.n = progress["total"], progress["done"]
    bar.set_postfix_str(f"finish {_when(progress['estimated_finish'])}")


@cli.command(name="import-archive")
@click.argument(
    "path", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path)
)
@click.option("--athlete", type=int, help="Whose archive (default: the only one).")
@_reported
def import_archive_command(path: pathlib.Path, athlete: int | None) -> None:
    """Import Strava's bulk export zip (no Strava requests at all)."""
    service = _service()
    owner = athlete or _only_athlete(service)
    total = count_activities(path)
    with tqdm(total=total, unit="activity", desc="archive") as bar:

        def shown(report: ArchiveReport) -> None:
            bar.update(report.activities - bar.n)
            bar.set_postfix(files=report.files, items=report.items)

        report = import_archive(service.importer, path, owner, shown)
    for problem in report.problems:
        click.secho(f"skipped: {problem}", fg="yellow", err=True)
    click.echo(
        f"{report.activities} activities read, {report.items} items and "
        f"{report.files} files written, {len(report.problems)} problems"
    )


def _only_athlete(service: Service) -> int:
    ids = [int(row["id"]) for row in service.tokens.connected()]
    if len(ids) != 1:
        raise ConfigError(
            "The archive does not name its athlete: pass --athlete with the "
            "Strava athlete id the activities belong to."
        )
    return ids[0]


@cli.command()
@click.option(
    "--refresh",
    is_flag=True,
    required=True,
    help="Write place names for activities that have none yet.",
)
@click.option(
    "--all", "everything", is_flag=True, help="With --refresh: recompute all."
)
@_reported
def places(refresh: bool, everything: bool) -> None:
    """Fill start and end place names offline (no Strava request)."""
    settings = settings_module.load()
    directus = DirectusClient(
        settings.directus(), settings.directus_token.get_secret_value()
    )
    done = refresh_places(directus, settings.directus_collection, everything)
    click.echo(f"place names written for {done} activities")


def main() -> None:
    """Entry point of the console script."""
    cli(prog_name="directus-strava")
