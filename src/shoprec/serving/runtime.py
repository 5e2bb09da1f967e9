"""What the routes share: the store, the pipeline being served (swapped whole on reload) and the metrics."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from shoprec.llm.backends import ChatBackend, UnavailableChat
from shoprec.llm.rewrite import REWRITE_OPTIONS, RewriteCache
from shoprec.privacy.erasure import forgotten_since_training
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.serving.metrics import Metrics
from shoprec.serving.pipeline import Pipeline
from shoprec.serving.schemas import Health, ItemIn, ItemsAccepted
from shoprec.serving.settings import ServingSettings
from shoprec.storage.store import Purged, Store

logger = logging.getLogger(__name__)


class Runtime:
    """``store``/``pipeline`` are set by ``start`` in the app's lifespan. A route reads ``self.pipeline`` once and
    uses that object to the end, so a reload never changes the model under a request in flight.
    """

    store: Store
    pipeline: Pipeline
    pseudonymize: Callable[[str], str]
    llm: ChatBackend  # set in the lifespan: an async client belongs to the event loop that serves

    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.metrics = Metrics(count_events=lambda: self.store.count_events())
        self.model_dir = settings.model_dir
        self._catalog_lock = threading.Lock()
        # Rewrites of queries in the other language than the catalog's (search and chat), kept across restarts next
        # to the encoder cache, and the decoding they are asked with: the settings' time budget.
        self.rewrites = RewriteCache(path=settings.cache_dir / "rewrites.sqlite3")
        self.rewrite_options = REWRITE_OPTIONS.model_copy(update={"time_budget_s": settings.rewrite_budget_s})

    def start(self) -> None:
        self.store = Store(self.settings.database_url, consent=self.settings.consent)
        try:
            self.pseudonymize = Pseudonymizer.from_environment()
            self.reload()
        except BaseException:
            self.store.close()
            raise

    def stop(self) -> None:
        self.metrics.close()
        self.store.close()

    def reload(self, model_dir: Path | None = None) -> Health:
        """Load ``model_dir`` (default: the current one) beside the serving pipeline, then swap the reference.

        Blocking (seconds): call it off the event loop. A bad directory raises and leaves the old model serving.
        """
        # Item upserts wait for the swap: one that reached the old pipeline after the new one had read the catalog
        # would be missing from the new one. Two reloads at once would race on which one ends up serving.
        with self._catalog_lock:
            directory = model_dir or self.model_dir
            pipeline = Pipeline.load(
                directory, self.store, search_encoder=self.settings.search_encoder, cache_dir=self.settings.cache_dir
            )
            self.pipeline, self.model_dir = pipeline, directory
            self.metrics.serve_model(pipeline.model_version, pipeline.model_name)
            _freeze_long_lived_objects()
        logger.info("serving %s %s from %s", pipeline.model_name, pipeline.model_version, directory)
        return self.health()

    def upsert_items(self, items: Sequence[ItemIn]) -> ItemsAccepted:
        with self._catalog_lock:
            return self.pipeline.upsert_items(items)

    def health(self) -> Health:
        pipeline = self.pipeline
        return Health(
            status="ok",
            model_version=pipeline.model_version,
            model=pipeline.model_name,
            items=pipeline.n_items(),
            events=self.store.count_events(),
            store=self.store.describe(),
            llm=llm_status(getattr(self, "llm", None)),
            forgotten_since_training=len(forgotten_since_training(self.model_dir)),
            privacy=pipeline.privacy,
        )

    def purge_expired(self) -> Purged | None:
        """Delete what the retention period has ended (None when the server keeps events without limit)."""
        days = self.settings.retention_days
        if days is None:
            return None
        purged = self.store.purge(time.time() - days * 86_400)
        if purged.events or purged.chat_turns:
            logger.info("retention: purged %d events and %d chat turns", purged.events, purged.chat_turns)
        return purged


def _freeze_long_lived_objects() -> None:
    """Exempt what the load created (model, catalog index, encoders) from the cyclic garbage collector, so that a
    full collection does not walk all of it while requests wait (the slowest feed under load: 205-257 ms before,
    115-119 ms after). Unfreezing first lets the previous model's objects be collected after a reload.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def llm_status(llm: ChatBackend | None) -> str:
    if llm is None:
        return "unavailable: starting"
    if isinstance(llm, UnavailableChat):
        return f"unavailable: {llm.reason}"
    return llm.model
