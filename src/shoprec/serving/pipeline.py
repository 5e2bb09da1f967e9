"""What the HTTP routes call: a trained embedding model, the catalog index and the event store, behind six methods.

Every answer is computed from the user's stored history at request time (one indexed query), read through the
model's item table, so an event posted a moment ago already shapes the next feed. Each method takes one snapshot
of the catalog index and works on it throughout, so a concurrent item upsert never mixes two versions.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from shoprec.models.artifact import Manifest, load_artifact
from shoprec.models.base import EmbeddingModel
from shoprec.models.registry import MODELS
from shoprec.serving.catalog import Catalog, ItemIndex, cached_encoder, shared_encoder
from shoprec.serving.query import parse_query
from shoprec.serving.schemas import (
    EventError,
    EventIn,
    EventsAccepted,
    Explanation,
    ItemIn,
    ItemsAccepted,
    ParsedQuery,
    Reason,
    RecommendationList,
    Recommended,
    SearchResults,
    SimilarList,
)
from shoprec.storage.store import CatalogItem, Store, StoredEvent
from shoprec.types import Sequences

SIMILAR_PERSONAL_WEIGHT = 0.3  # weight of the user's normalised feed score in a personalised similar-items list
SEARCH_PERSONAL_WEIGHT = 0.2  # the same in personalised search
EXPLAINING_ITEMS = 10  # most recent distinct history items that may explain a recommendation
REASONS_KEPT = 3  # of those, the most similar ones shown
OCCLUDED_ITEMS = 20  # most recent distinct history items that explain() leaves out one at a time
HISTORY_DETAIL = "similarity in the model's item space"
PERSONAL_DETAIL = "fit to the user's history (normalised feed score)"
OCCLUSION = "occlusion: score drop when the history item is left out"
_STOPWORDS = frozenset({"a", "an", "and", "the", "for", "with", "of", "in", "on", "to", "or", "my"})
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class FeedRequest:
    """One home-feed request; ``user_id`` is pseudonymised, ``raw_user_id`` is echoed back as the caller sent it."""

    user_id: str
    raw_user_id: str
    k: int
    category: str | None = None
    exclude_seen: bool = True


@dataclass(frozen=True)
class _User:
    """What the model makes of one user's stored history against one index snapshot."""

    history: np.ndarray  # (h,) item indices, oldest first; items the catalog does not hold are dropped
    scores: np.ndarray | None  # (N,) user vector · item table; None when the history gives nothing to go on


class Pipeline:
    """Recommend, find similar items, search and explain from one model, one catalog index and one store."""

    def __init__(
        self,
        model: EmbeddingModel,
        manifest: Manifest,
        store: Store,
        catalog: Catalog,
        encode_query: Callable[[str], np.ndarray],
        history_limit: int = 200,
        revision: int = 0,
    ) -> None:
        self.model = model
        self.model_name = manifest.model
        self.model_version = f"{manifest.model}-{manifest.data_fingerprint[:12]}"
        self.store = store
        self.catalog = catalog
        self.history_limit = history_limit
        self._encode_query = encode_query  # (T,) unit vector of one query text from the search encoder
        self._writes = threading.Lock()  # the store and the index take item upserts in the same order
        self._revision = revision  # the store's catalog revision that the index holds

    @classmethod
    def load(
        cls,
        model_dir: Path,
        store: Store,
        *,
        search_encoder: str = "e5",
        cache_dir: Path = Path("runs/cache"),
        history_limit: int = 200,
    ) -> Pipeline:
        """Model, then the catalog index of every vocabulary item plus every stored item. Item text goes through
        the on-disk encoder cache, so a restart encodes nothing it has seen before. Requests run single-threaded,
        but only once the catalog is encoded: a cold cache then encodes on every core.
        """
        model, vocabulary, manifest = load_artifact(model_dir)
        if not isinstance(model, EmbeddingModel):
            servable = sorted(name for name, cls_ in MODELS.items() if issubclass(cls_, EmbeddingModel))
            raise ValueError(
                f"a {manifest.model} model cannot be served (it has no item vectors); serve one of: "
                + ", ".join(servable)
            )
        model_encoder = None
        if manifest.encoder is not None:
            model_encoder = cached_encoder(manifest.encoder.name, cache_dir)
        catalog = Catalog(model, vocabulary, model_encoder, cached_encoder(search_encoder, cache_dir), manifest.encoder)
        revision = store.catalog_revision()  # read first: a write landing meanwhile is read again at the next request
        catalog.upsert(store.items())
        serve_single_threaded()
        # Queries skip the disk cache: they are one short text each, and user text should not pile up on disk.
        queries = shared_encoder(search_encoder)
        return cls(
            model, manifest, store, catalog, lambda text: queries.encode([text], "query")[0], history_limit, revision
        )

    def n_items(self) -> int:
        """Servable catalog items (padding excluded)."""
        return len(self._index()) - 1

    def recommend(
        self, user_id: str, raw_user_id: str, k: int, category: str | None = None, exclude_seen: bool = True
    ) -> RecommendationList:
        """The home feed: the model's top ``k``, each with the recent history items most similar to it."""
        return self.recommend_many([FeedRequest(user_id, raw_user_id, k, category, exclude_seen)])[0]

    def recommend_many(self, requests: Sequence[FeedRequest]) -> list[RecommendationList]:
        """Home feeds for requests that arrived together, from one catalog snapshot and ONE model forward over all
        their histories: for short histories the forward costs about the same for one user as for several.
        """
        index = self._index()
        users = self._users(index, [request.user_id for request in requests])
        return [self._feed(index, request, user) for request, user in zip(requests, users, strict=True)]

    def _feed(self, index: ItemIndex, request: FeedRequest, user: _User) -> RecommendationList:
        allowed = _allowed(index, user.history if request.exclude_seen else None, request.category or None)
        if user.scores is None:
            top = top_k(index.popularity, allowed, request.k)
            items = [_recommended(index, i, index.popularity[i], [_popular()]) for i in top]
        else:
            top = top_k(user.scores, allowed, request.k)
            reasons = _history_reasons(index, user.history, top)
            items = [_recommended(index, i, user.scores[i], r) for i, r in zip(top, reasons, strict=True)]
        return RecommendationList(
            user_id=request.raw_user_id,
            model_version=self.model_version,
            cold_start=user.scores is None,
            items=items,
        )

    def similar(self, item_id: str, k: int, user_id: str | None = None, raw_user_id: str | None = None) -> SimilarList:
        """Half model-space cosine, half text cosine to ``item_id``; with a user, their normalised feed score
        is added. ``raw_user_id`` is accepted for symmetry with the other methods (the list does not echo it).
        KeyError when the catalog does not hold ``item_id``.
        """
        index = self._index()
        seed = index.index(item_id)
        base = 0.5 * (index.unit_table @ index.unit_table[seed]) + 0.5 * (index.search @ index.search[seed])
        allowed = index.real()
        allowed[seed] = False
        personal = self._personal(index, user_id, allowed, SIMILAR_PERSONAL_WEIGHT)
        scores = base if personal is None else base + personal
        seed_code = index.category_codes[seed]
        items = []
        for i in top_k(scores, allowed, k):
            similar_share, personal_share = _shares(base[i], 0.0 if personal is None else personal[i])
            reasons = [
                Reason(
                    kind="similar",
                    contribution=similar_share,
                    item_id=item_id,
                    title=index.title(seed),
                    detail="model-space and text similarity",
                )
            ]
            if seed_code >= 0 and index.category_codes[i] == seed_code:
                reasons.append(_attribute(f"same category: {index.category(seed)}"))
            if personal_share > 0:
                reasons.append(Reason(kind="history", contribution=personal_share, detail=PERSONAL_DETAIL))
            items.append(_recommended(index, i, scores[i], reasons))
        return SimilarList(item_id=item_id, model_version=self.model_version, items=items)

    def search(self, query: str, k: int, user_id: str | None = None) -> SearchResults:
        """Text relevance (search-encoder cosine) within the query's constraints; a query that is nothing but
        constraints ranks by popularity. With a user, relevance and their feed score, each scaled to [0, 1] over
        the allowed items, are blended 0.8 / 0.2.
        """
        index = self._index()
        parsed = parse_query(query, index.query_categories)
        allowed = index.real()
        if parsed.min_price is not None:
            allowed &= index.prices >= parsed.min_price  # NaN (unknown price) compares False: excluded
        if parsed.max_price is not None:
            allowed &= index.prices <= parsed.max_price
        if parsed.categories:
            allowed &= index.in_categories(parsed.categories)
        if parsed.text:
            relevance = index.search @ self._encode_query(parsed.text)
        else:
            relevance = min_max(index.popularity, allowed)
        personal = self._personal(index, user_id, allowed, SEARCH_PERSONAL_WEIGHT)
        if personal is not None:  # both parts on [0, 1], so the personal part is at most its weight of the score
            relevance = (1 - SEARCH_PERSONAL_WEIGHT) * min_max(relevance, allowed)
        scores = relevance if personal is None else relevance + personal
        words = [word for word in dict.fromkeys(_WORD.findall(parsed.text.lower())) if word not in _STOPWORDS]
        items = []
        for i in top_k(scores, allowed, k):
            text_share, personal_share = _shares(relevance[i], 0.0 if personal is None else personal[i])
            reasons = _query_reasons(index, i, parsed.text, words, text_share)
            if personal_share > 0:
                reasons.append(Reason(kind="history", contribution=personal_share, detail=PERSONAL_DETAIL))
            reasons += _constraint_reasons(index, i, parsed)
            items.append(_recommended(index, i, scores[i], reasons))
        return SearchResults(
            query=query,
            parsed=parsed,
            personalised=personal is not None,
            model_version=self.model_version,
            items=items,
        )

    def explain(self, user_id: str, raw_user_id: str, item_id: str) -> Explanation:
        """Exact attribution by occlusion: each recent history item's share is how much the item's score falls
        when that item is left out of the history (all variants in one batched forward pass). A drop can be
        negative (the item pulled the score down); positive contributions sum to 1.
        KeyError when the catalog does not hold ``item_id``.
        """
        index = self._index()
        target = index.index(item_id)
        user = self._user(index, user_id)
        allowed = _allowed(index, user.history, None)
        scores = index.popularity if user.scores is None else user.scores
        rank = 1 + int(np.count_nonzero(allowed & (scores > scores[target]))) if allowed[target] else None
        if user.scores is None:
            method, reasons = "popularity: the user has no usable history", [_popular()]
        else:
            method, reasons = OCCLUSION, self._occlusion(index, user.history, user.scores, target)
        return Explanation(
            user_id=raw_user_id,
            item_id=item_id,
            title=index.title(target),
            score=float(scores[target]),
            rank=rank,
            method=method,
            reasons=reasons,
        )

    def ingest(self, events: Sequence[tuple[int, EventIn]], pseudonymize: Callable[[str], str]) -> EventsAccepted:
        """Store every event whose item the catalog holds, in one transaction; report the others by batch
        position. Returns only after the store has made the accepted events durable.
        """
        index = self._index()
        pseudonym = functools.cache(pseudonymize)  # a batch usually repeats a few users
        now = time.time()
        accepted: list[StoredEvent] = []
        rejected: list[EventError] = []
        for position, event in events:
            if event.item_id not in index.positions:
                message = f"unknown item {event.item_id!r}: add it to the catalog first"
                rejected.append(EventError(index=position, field="item_id", message=message))
                continue
            timestamp = now if event.timestamp is None else event.timestamp
            accepted.append(StoredEvent(pseudonym(event.user_id), event.item_id, event.type, timestamp))
        return EventsAccepted(stored=self.store.add_events(accepted), rejected=rejected)

    def upsert_items(self, items: Sequence[ItemIn]) -> ItemsAccepted:
        """Durable in the store first, then into the index: a new item is searchable and recommendable as soon
        as this returns. Items the model knows keep their trained vector; only their metadata and text change.
        """
        records = [
            CatalogItem(
                item_id=item.item_id,
                title=item.title,
                description=item.description,
                category=item.category,
                brand=item.brand,
                price=item.price,
                tags=tuple(item.tags),
            )
            for item in items
        ]
        with self._writes:
            revision = self.store.upsert_items(records)
            new = self.catalog.upsert(records)
            if revision == self._revision + 1:  # no other process wrote in between: the index is at this revision
                self._revision = revision
        return ItemsAccepted(stored=len({record.item_id for record in records}), new=new)

    def _index(self) -> ItemIndex:
        """The catalog snapshot to serve from, first brought up to the store's catalog revision: another server
        process on the same store (``--workers``) may have added items, which must be servable here too. One
        primary-key read per request; the items themselves are read only when the revision moved.
        """
        revision = self.store.catalog_revision()
        if revision > self._revision:
            with self._writes:
                if revision > self._revision:
                    changed = self.store.items(since=self._revision)
                    if changed:
                        self.catalog.upsert(changed)
                    self._revision = revision  # later writes read here too are simply read again next time
        return self.catalog.current

    def _user(self, index: ItemIndex, user_id: str) -> _User:
        return self._users(index, [user_id])[0]

    def _users(self, index: ItemIndex, user_ids: Sequence[str]) -> list[_User]:
        histories = []
        for user_id in user_ids:
            recent = self.store.recent_items(user_id, self.history_limit)
            histories.append(
                np.array([i for item in recent if (i := index.positions.get(item)) is not None], dtype=np.int64)
            )
        vectors = self.model.user_vectors(Sequences.from_lists(np.arange(len(histories)), histories), index.table)
        scores = vectors @ index.table.T  # (users, N); a user without a usable history has a zero vector
        return [
            _User(history, row if vector.any() else None)
            for history, vector, row in zip(histories, vectors, scores, strict=True)
        ]

    def _personal(self, index: ItemIndex, user_id: str | None, allowed: np.ndarray, weight: float) -> np.ndarray | None:
        """(N,) ``weight`` × the user's feed score scaled to [0, 1] over ``allowed``; None without a usable user."""
        user = None if user_id is None else self._user(index, user_id)
        if user is None or user.scores is None:
            return None
        return weight * min_max(user.scores, allowed)

    def _occlusion(self, index: ItemIndex, history: np.ndarray, scores: np.ndarray, target: int) -> list[Reason]:
        """One reason per recent distinct history item whose removal changes the target's score, largest drop
        first; removing an item removes every occurrence of it.
        """
        recent = _recent_distinct(history, OCCLUDED_ITEMS)
        variants = Sequences.from_lists(np.arange(len(recent)), [history[history != h] for h in recent])
        score = float(scores[target])
        drops = score - self.model.user_vectors(variants, index.table) @ index.table[target]  # (len(recent),)
        positive = float(drops[drops > 0].sum())
        scale = positive if positive > 0 else float(np.abs(drops).sum()) or 1.0
        return [
            Reason(
                kind="history",
                contribution=float(drops[j] / scale),
                item_id=index.ids[recent[j]],
                title=index.title(recent[j]),
                detail=f"score {score:.4f} -> {score - drops[j]:.4f} without it",
            )
            for j in np.argsort(-drops, kind="stable")
            if drops[j] != 0
        ]


def serve_single_threaded() -> None:
    """One request is one small forward pass and one matrix-vector product: more threads only add contention.
    NumPy's BLAS pool matters as much as torch's: its threads and torch's contending for the same cores made a
    feed over 12k items several times slower (3.4 ms instead of 0.7 ms for the model part on two cores).
    """
    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")


def top_k(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best allowed scores, best first, ties to the lower index; O(N) selection, then a
    sort of only the chosen few.
    """
    candidates = np.flatnonzero(allowed)
    if k <= 0:
        return candidates[:0]
    values = scores[candidates]
    if len(candidates) > k:
        kth = np.partition(values, len(values) - k)[len(values) - k]
        above = np.flatnonzero(values > kth)
        ties = np.flatnonzero(values == kth)[: k - len(above)]  # candidates ascend, so the lowest indices
        chosen = np.concatenate([above, ties])
        candidates, values = candidates[chosen], values[chosen]
    return candidates[np.lexsort((candidates, -values))]


def min_max(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``values`` scaled so that the masked ones span [0, 1]; all zeros when they are constant or none."""
    if not mask.any():
        return np.zeros_like(values)
    low, high = values[mask].min(), values[mask].max()
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def _allowed(index: ItemIndex, seen: np.ndarray | None, category: str | None) -> np.ndarray:
    allowed = index.real()
    if seen is not None:
        allowed[seen] = False
    if category:
        allowed &= index.in_categories([category])
    return allowed


def _recent_distinct(history: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` most recent distinct items of a history, newest first."""
    return np.array(list(dict.fromkeys(history[::-1].tolist()))[:n], dtype=np.int64)


def _history_reasons(index: ItemIndex, history: np.ndarray, top: np.ndarray) -> list[list[Reason]]:
    """For each recommended item, the recent history items nearest to it in the model's item space, their
    shares proportional to the (positive) cosine. One matrix product for the whole list.
    """
    recent = _recent_distinct(history, EXPLAINING_ITEMS)
    similarity = np.maximum(index.unit_table[top] @ index.unit_table[recent].T, 0.0)  # (k, h)
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :REASONS_KEPT]  # (k, kept)
    kept = np.take_along_axis(similarity, order, axis=1)
    shares = kept / np.maximum(kept.sum(axis=1, keepdims=True), np.finfo(kept.dtype).tiny)
    sources = [(index.ids[i], index.title(i)) for i in recent.tolist()]
    out = []
    for columns, row_shares in zip(order.tolist(), shares.tolist(), strict=True):
        reasons = [
            Reason(
                kind="history",
                contribution=share,
                item_id=sources[j][0],
                title=sources[j][1],
                detail=HISTORY_DETAIL,
            )
            for j, share in zip(columns, row_shares, strict=True)
            if share > 0
        ]
        # nothing in the history points at it on its own: the history as a whole does
        out.append(reasons or [Reason(kind="history", contribution=1.0, detail="the user's history as a whole")])
    return out


def _query_reasons(index: ItemIndex, i: int, text: str, words: list[str], share: float) -> list[Reason]:
    """The query words found in the item's title or category share the text part; when none is found literally
    (a paraphrase, another language) the whole query carries it. A constraints-only query ranks by popularity.
    """
    if not text:
        return [_popular(share)]
    shown = set(_WORD.findall(f"{index.title(i) or ''} {index.category(i) or ''}".lower()))
    matched = [word for word in words if word in shown]
    if not matched:
        return [Reason(kind="query", contribution=share, detail=text)]
    return [Reason(kind="query", contribution=share / len(matched), detail=word) for word in matched]


def _constraint_reasons(index: ItemIndex, i: int, parsed: ParsedQuery) -> list[Reason]:
    """The constraints the item met. They filter rather than score, so they hold no share of the score."""
    reasons = []
    if parsed.min_price is not None or parsed.max_price is not None:
        low = "" if parsed.min_price is None else f"{parsed.min_price:g} <= "
        high = "" if parsed.max_price is None else f" <= {parsed.max_price:g}"
        reasons.append(_attribute(f"price {low}{index.price(i):g}{high}"))
    code = index.category_codes[i]
    if code >= 0:
        reasons += [_attribute(f"category: {name}") for name in parsed.categories if name.lower() in index.paths[code]]
    return reasons


def _shares(primary: float, personal: float) -> tuple[float, float]:
    """Shares of a score made of a primary part and a personal part; a negative part counts as nothing."""
    primary, personal = max(float(primary), 0.0), max(float(personal), 0.0)
    total = primary + personal
    return (1.0, 0.0) if total <= 0 else (primary / total, personal / total)


def _popular(share: float = 1.0) -> Reason:
    return Reason(kind="popular", contribution=share, detail="popular in the training data")


def _attribute(detail: str) -> Reason:
    return Reason(kind="attribute", contribution=0.0, detail=detail)


def _recommended(index: ItemIndex, i: int, score: float, reasons: list[Reason]) -> Recommended:
    return Recommended(
        item_id=index.ids[i],
        title=index.title(i),
        category=index.category(i),
        price=index.price(i),
        score=float(score),
        reasons=reasons,
    )
