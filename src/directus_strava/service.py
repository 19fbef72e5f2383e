"""Wiring: one object that holds every part of a running service."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from directus_strava.budget import RateBudget
from directus_strava.clock import Clock, SystemClock
from directus_strava.directus import DirectusClient
from directus_strava.importer import ImportConfig, Importer
from directus_strava.jobs import Queue
from directus_strava.mapping import load_mapping
from directus_strava.oauth import StravaOAuth, Tokens
from directus_strava.scheduler import Scheduler, Timetable
from directus_strava.settings import Settings
from directus_strava.store import Store
from directus_strava.strava import PushSubscriptions, StravaClient
from directus_strava.subscription import Subscriptions
from directus_strava.vault import Vault
from directus_strava.webhooks import callback_url, verify_token
from directus_strava.worker import Worker


@dataclass
class Service:
    """The parts of directus-strava, built from one Settings object."""

    settings: Settings
    clock: Clock
    store: Store
    budget: RateBudget
    tokens: Tokens
    strava: StravaClient
    directus: DirectusClient
    importer: Importer
    queue: Queue
    worker: Worker
    subscriptions: Subscriptions
    scheduler: Scheduler

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None) -> Service:
        """Assemble the service; opens (and migrates) the local database."""
        clock = clock or SystemClock()
        store = Store(settings.service_data_dir / "directus-strava.sqlite3")
        vault = Vault(settings.service_secret_key.get_secret_value())
        _check_key(store, vault)
        oauth = StravaOAuth(
            settings.strava_client_id,
            settings.strava_client_secret.get_secret_value(),
            settings.strava_web(),
        )
        tokens = Tokens(store, vault, oauth, clock)
        budget = RateBudget(clock, store)
        strava = StravaClient(settings.strava_api(), budget, tokens.access_token)
        directus = DirectusClient(
            settings.directus(), settings.directus_token.get_secret_value()
        )
        config = ImportConfig(
            collection=settings.directus_collection,
            mapping=load_mapping(settings.mapping_function),
            on_delete=settings.on_delete,
            photos=settings.import_photos,
        )
        importer = Importer(strava, directus, store, config)
        queue = Queue(store)
        worker = Worker(queue, importer, tokens, budget, clock)
        subscriptions = _subscriptions(settings, store, clock)
        worker.handlers["subscription_check"] = lambda job: {
            "state": subscriptions.check().state
        }
        scheduler = Scheduler(queue, store, clock, Timetable.from_settings(settings))
        return cls(
            settings,
            clock,
            store,
            budget,
            tokens,
            strava,
            directus,
            importer,
            queue,
            worker,
            subscriptions,
            scheduler,
        )

    def start_background(
        self, stop: threading.Event, scheduler: bool = True
    ) -> list[threading.Thread]:
        """Run the worker (and the scheduler) in threads until `stop` is set."""
        threads = [
            threading.Thread(target=self.worker.run, args=(stop,), name="worker")
        ]
        if scheduler:
            threads.append(
                threading.Thread(
                    target=self.scheduler.run, args=(stop,), name="scheduler"
                )
            )
        for thread in threads:
            thread.daemon = True
            thread.start()
        return threads

    def close(self) -> None:
        """Release connections."""
        self.strava.close()
        self.subscriptions.api.close()
        self.directus.close()
        self.store.close()


def _check_key(store: Store, vault: Vault) -> None:
    """Refuse to start with a key that cannot open the stored tokens.

    Otherwise every job would fail one by one and mark its activity failed.
    """
    row = store.db.execute(
        "SELECT access_token FROM athletes WHERE access_token IS NOT NULL LIMIT 1"
    ).fetchone()
    if row is not None:
        vault.open(row["access_token"])


def _subscriptions(settings: Settings, store: Store, clock: Clock) -> Subscriptions:
    api = PushSubscriptions(
        settings.strava_api(),
        settings.strava_client_id,
        settings.strava_client_secret.get_secret_value(),
    )
    return Subscriptions(
        api, store, clock, callback_url(settings), verify_token(settings)
    )
