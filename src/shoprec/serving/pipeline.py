"""What the routes call: one loaded model's rankers over the live catalog and the event store.

Every answer is ranked by ``shoprec.ranking`` from the user's whole stored history, read at request time, so an
event posted a moment ago already shapes the next feed; each call reads one catalog snapshot throughout. This
module only reads histories, builds ranking requests and maps ranked item indices to the API's response models.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from shoprec.encoders.text import EncoderConfig
from shoprec.llm.assistant import History, Shop
from shoprec.models.artifact import Manifest, load_artifact
from shoprec.ranking.explain import popular
from shoprec.ranking.items import ItemIndex
from shoprec.ranking.recommend import Rankers, rankers_for
from shoprec.ranking.types import Knobs, Ranked, Reason, Request
from shoprec.serving.catalog import Catalog, cached_encoder, shared_encoder
from shoprec.serving.query import search_request
from shoprec.serving.schemas import (
    EventError,
    EventIn,
    EventsAccepted,
    Explanation,
    ItemIn,
    ItemsAccepted,
    RecommendationList,
    Recommended,
    SearchResults,
    SimilarList,
)
from shoprec.serving.schemas import Reason as ReasonOut
from shoprec.storage.store import CatalogItem, Store, StoredEvent

OCCLUSION = "occlusion: score drop when the history item is left out"


@dataclass(frozen=True)
class FeedRequest:
    """One home-feed request; ``user_id`` is pseudonymised, ``raw_user_id`` is echoed back as the caller sent it."""

    user_id: str
    raw_user_id: str
    k: int
    category: str | None = None
    exclude_seen: bool = True
    knobs: Knobs = field(default_factory=Knobs)  # the re-ranking knobs the request set (the rest stay 0, off)


class Pipeline:
    """Feed, similar items, search, explanations, event ingest and catalog writes for one served model."""

    def __init__(self, manifest: Manifest, store: Store, catalog: Catalog, rankers: Rankers) -> None:
        self.model_name = manifest.model
        self.model_version = f"{manifest.model}-{manifest.data_fingerprint[:12]}"
        self.privacy = manifest.privacy
        self.store = store
        self.catalog = catalog
        self.rankers = rankers
        self._shop: Shop | None = None

    @classmethod
    def load(
        cls, model_dir: Path, store: Store, *, search_encoder: str = "e5", cache_dir: Path = Path("runs/cache")
    ) -> Pipeline:
        """Model, then the catalog of every vocabulary item plus every stored item. Item text goes through the
        on-disk encoder cache, so a restart encodes nothing it has seen before. Requests run single-threaded, but
        only once the catalog is encoded: a cold cache then encodes on every core.
        """
        model, vocabulary, manifest = load_artifact(model_dir)
        search = EncoderConfig.model_validate({"name": search_encoder})
        model_text = (
            None if manifest.encoder is None else (cached_encoder(manifest.encoder, cache_dir), manifest.encoder)
        )
        catalog = Catalog(model, vocabulary, store, (cached_encoder(search, cache_dir), search), model_text)
        serve_single_threaded()
        # Queries skip the disk cache: they are one short text each, and user text should not pile up on disk.
        queries = shared_encoder(search)
        rankers = rankers_for(model, lambda text: queries.encode([text], "query")[0])
        return cls(manifest, store, catalog, rankers)

    def shop(self) -> Shop:
        """The assistant's view of the live catalog: one snapshot, its rankers and its names for query rules
        (built once per catalog revision: reading the names of 12k items takes tens of milliseconds)."""
        items = self.catalog.snapshot()
        shop = self._shop
        if shop is None or shop.items is not items:
            shop = self._shop = Shop.of(items, self.rankers)
        return shop

    def assistant_history(self, shop: Shop, user_id: str | None) -> History:
        """The user's stored history as the assistant reads it: item indices with event times and types (times
        only when every event has one), oldest first; items the catalog lacks are dropped."""
        if user_id is None:
            return History.empty()
        known = [e for e in self.store.history(user_id) if e.item_id in shop.items.positions]
        stamps = [e.timestamp for e in known]
        return History(
            np.array([shop.items.positions[e.item_id] for e in known], dtype=np.int64),
            None if any(t is None for t in stamps) else np.array(stamps, dtype=np.float64),
            tuple(str(e.type) for e in known),
        )

    def n_items(self) -> int:
        """Servable catalog items (padding excluded)."""
        return len(self.catalog.snapshot()) - 1

    def recommend_many(self, requests: Sequence[FeedRequest]) -> list[RecommendationList]:
        """Home feeds for requests that arrived together, from one catalog snapshot and ONE model forward."""
        items = self.catalog.snapshot()
        stored = self.store.histories([r.user_id for r in requests])
        asked = [
            Request(
                _indices(items, stored[r.user_id]),
                r.k,
                r.exclude_seen,
                category=r.category,
                **r.knobs,
            )
            for r in requests
        ]
        return [
            RecommendationList(
                user_id=request.raw_user_id,
                model_version=self.model_version,
                cold_start=not ranked.personal,
                items=_recommended(items, ranked),
                notes=list(ranked.notes),
            )
            for request, ranked in zip(requests, self.rankers.feed.rank(asked, items), strict=True)
        ]

    def recommend(
        self, user_id: str, raw_user_id: str, k: int, category: str | None = None, exclude_seen: bool = True
    ) -> RecommendationList:
        """One home feed (the routes batch theirs through ``recommend_many``)."""
        return self.recommend_many([FeedRequest(user_id, raw_user_id, k, category, exclude_seen)])[0]

    def similar(self, item_id: str, k: int, user_id: str | None = None) -> SimilarList:
        """Items like ``item_id`` in the model's space and by text, blended with the user's feed when given.
        KeyError when the catalog does not hold ``item_id``."""
        items = self.catalog.snapshot()
        request = Request(self._history(items, user_id), k, exclude_seen=False, seed=items.index(item_id))
        ranked = self.rankers.similar.rank([request], items)[0]
        return SimilarList(item_id=item_id, model_version=self.model_version, items=_recommended(items, ranked))

    def search(self, query: str, k: int, user_id: str | None = None, rewritten: str | None = None) -> SearchResults:
        """Text relevance within the query's price and category constraints, personalised with a user; with
        ``rewritten`` (the query put into the catalog's language), that text is what is read and searched."""
        items = self.catalog.snapshot()
        searched = query if rewritten is None else rewritten
        request, parsed = search_request(searched, k, items, self._history(items, user_id))
        ranked = self.rankers.search.rank([request], items)[0]
        return SearchResults(
            query=query,
            rewritten=rewritten,
            parsed=parsed,
            personalised=ranked.personal,
            model_version=self.model_version,
            items=_recommended(items, ranked),
            notes=list(ranked.notes),
        )

    def explain(self, user_id: str, raw_user_id: str, item_id: str) -> Explanation:
        """Exact attribution by occlusion over every history item the model reads; KeyError for an unknown item."""
        items = self.catalog.snapshot()
        target = items.index(item_id)
        request = Request(self._history(items, user_id), k=1)
        occluded, rank, personal = self.rankers.explain(request, items, target)
        return Explanation(
            user_id=raw_user_id,
            item_id=item_id,
            title=items.title(target),
            score=occluded.score,
            rank=rank,
            method=OCCLUSION if personal else "popularity: the user has no usable history",
            reasons=_reasons(items, occluded.reasons if personal else (popular(),)),
        )

    def ingest(self, events: Sequence[tuple[int, EventIn]], pseudonymize: Callable[[str], str]) -> EventsAccepted:
        """Store every event whose item the catalog holds, in one transaction; report the others by batch
        position. Events of users without consent are left out (counted) unless the shop's policy keeps them.
        Returns only after the store has made the accepted events durable."""
        items = self.catalog.snapshot()
        pseudonym = functools.cache(pseudonymize)  # a batch usually repeats a few users
        now = time.time()
        accepted: list[StoredEvent] = []
        rejected: list[EventError] = []
        for position, event in events:
            if event.item_id not in items.positions:
                message = f"unknown item {event.item_id!r}: add it to the catalog first"
                rejected.append(EventError(index=position, field="item_id", message=message))
                continue
            timestamp = now if event.timestamp is None else event.timestamp
            accepted.append(StoredEvent(pseudonym(event.user_id), event.item_id, event.type, timestamp))
        policy = self.store.consent
        withheld = 0
        if accepted and not policy.keep_events_without_consent:
            recorded = self.store.consents({e.user_id for e in accepted})
            kept = [e for e in accepted if policy.allows(recorded.get(e.user_id))]
            withheld, accepted = len(accepted) - len(kept), kept
        return EventsAccepted(stored=self.store.add_events(accepted), rejected=rejected, withheld=withheld)

    def upsert_items(self, items: Sequence[ItemIn]) -> ItemsAccepted:
        """Durable in the store, then servable at once; items the model knows keep their trained vector."""
        records = [
            CatalogItem(
                item_id=item.item_id,
                title=item.title,
                description=item.description,
                category=item.category,
                brand=item.brand,
                price=item.price,
                tags=tuple(item.tags),
                available=item.available,
            )
            for item in items
        ]
        new = self.catalog.write(records)
        return ItemsAccepted(stored=len({record.item_id for record in records}), new=new)

    def _history(self, items: ItemIndex, user_id: str | None) -> np.ndarray:
        """The user's whole stored history as item indices, oldest first (none without a user)."""
        return _indices(items, [] if user_id is None else self.store.histories([user_id])[user_id])


def _indices(items: ItemIndex, stored: Sequence[str]) -> np.ndarray:
    """Stored item ids as the catalog's item indices, in order; items the catalog lacks are dropped."""
    return np.array([i for item in stored if (i := items.positions.get(item)) is not None], dtype=np.int64)


def serve_single_threaded() -> None:
    """One request is one small forward pass and one matrix-vector product: more threads only add contention.
    NumPy's BLAS pool matters as much as torch's: its threads and torch's contending for the same cores made a
    feed over 12k items several times slower (3.4 ms instead of 0.7 ms for the model part on two cores).
    """
    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")


def _reasons(items: ItemIndex, reasons: Sequence[Reason]) -> list[ReasonOut]:
    """``reasons`` as the API shows them: each item a reason names by its id and title."""
    return _shown(items, (reasons,))[0]


def _shown(items: ItemIndex, lists: Sequence[Sequence[Reason]]) -> list[list[ReasonOut]]:
    """Several items' reasons at once: a feed's thirty reasons name the same few history items, looked up once."""
    named = {r.item for reasons in lists for r in reasons if r.item is not None}
    names: dict[int | None, tuple[str | None, str | None]] = {i: (items.ids[i], items.title(i)) for i in named}
    names[None] = (None, None)
    return [
        [
            ReasonOut(kind=r.kind, contribution=r.share, item_id=item_id, title=title, detail=r.detail)
            for r in reasons
            for item_id, title in [names[r.item]]
        ]
        for reasons in lists
    ]


def _recommended(items: ItemIndex, ranked: Ranked) -> list[Recommended]:
    return [
        Recommended(
            item_id=items.ids[i],
            title=items.title(i),
            category=items.category(i),
            price=items.price(i),
            score=float(score),
            reasons=reasons,
        )
        for i, score, reasons in zip(
            ranked.items.tolist(), ranked.scores.tolist(), _shown(items, ranked.reasons), strict=True
        )
    ]
