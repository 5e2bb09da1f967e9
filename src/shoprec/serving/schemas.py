"""What the HTTP API accepts and returns: the one contract between the pipeline and the routes.

The pipeline builds these response models directly, so what a route returns is exactly what the pipeline computed,
and the OpenAPI page documents the same fields the tests assert on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SkipValidation, StrictBool

from shoprec.privacy.dp import PrivacyGuarantee
from shoprec.types import EventType


class Strict(BaseModel):
    """Requests reject unknown fields, so a typo in a field name is a 422 naming it, not a silent default."""

    model_config = ConfigDict(extra="forbid")


# ---- requests -------------------------------------------------------------------------------------------------

LAST_TIMESTAMP = datetime(2200, 1, 1, tzinfo=UTC).timestamp()  # later is a mistake: milliseconds, or a sentinel


def _readable_id(value: str) -> str:
    """An id is read back as one URL path segment, so refuse on write what no read could reach: a "/" splits the
    segment (an encoded %2F is decoded by the server before routing), and clients resolve "." and ".." away."""
    if not value.strip():
        raise ValueError("must not be blank")
    if "/" in value:
        raise ValueError('must not contain "/": ids are read back in URL paths')
    if value in (".", ".."):
        raise ValueError(f'must not be "{value}": ids are read back in URL paths')
    return value


def _before_2200(value: float) -> float:
    if value >= LAST_TIMESTAMP:
        raise ValueError(
            f"must be seconds since 1970 before the year 2200 (under {LAST_TIMESTAMP:.0f}); milliseconds are 1,000 "
            "times too large"
        )
    return value


# The validators give the messages; the schema states the same rules, so the docs and a schema fuzzer know them.
# strict: a JSON true is not the number 1; allow_inf_nan: Infinity, NaN and 1e999 (which parses as infinity) are
# not numbers anyone means.
WrittenId = Annotated[
    str,
    Field(min_length=1, max_length=256, json_schema_extra={"pattern": r"^(?!\s*$)(?!\.\.?$)[^/]*$"}),
    AfterValidator(_readable_id),
]
Timestamp = Annotated[
    float,
    Field(ge=0, strict=True, allow_inf_nan=False, json_schema_extra={"exclusiveMaximum": LAST_TIMESTAMP}),
    AfterValidator(_before_2200),
]
Price = Annotated[float, Field(ge=0, strict=True, allow_inf_nan=False)]


class EventIn(Strict):
    user_id: WrittenId  # the caller's id; pseudonymised before it is stored
    item_id: WrittenId
    type: EventType = EventType.VIEW
    timestamp: Timestamp | None = None  # seconds since the epoch; default: time of receipt


class ItemIn(Strict):
    item_id: WrittenId
    title: str | None = Field(default=None, max_length=2_000)
    description: str | None = Field(default=None, max_length=20_000)
    category: str | None = Field(default=None, max_length=1_000)  # a path: "Beauty > Makeup > Nails"
    brand: str | None = Field(default=None, max_length=256)
    price: Price | None = None
    tags: list[str] = Field(default_factory=list, max_length=100)
    available: StrictBool = True  # False: out of stock or delisted: kept, but no list shows it until it is back


# ---- responses ------------------------------------------------------------------------------------------------

ReasonKind = Literal["history", "query", "attribute", "similar", "popular"]


class Reason(BaseModel):
    """One thing that drove a result, with its share of the score.

    ``history``: one of the user's recent items (``item_id``/``title``); ``query``: a query term; ``attribute``: a
    catalog attribute that matched (category, price bound); ``similar``: the item a similar-items list started
    from; ``popular``: no personal evidence, the item is popular.
    """

    kind: ReasonKind
    contribution: float  # share of the score this reason accounts for; a list's contributions sum to about 1
    item_id: str | None = None
    title: str | None = None
    detail: str | None = None  # the query term, attribute, or how the contribution was measured


class Recommended(BaseModel):
    item_id: str
    title: str | None
    category: str | None
    price: float | None
    score: float
    reasons: list[Reason]


class RecommendationList(BaseModel):
    user_id: str  # as the caller sent it
    model_version: str
    cold_start: bool  # True when the user had no usable history and the list is not personal
    items: list[Recommended]
    notes: list[str] = Field(default_factory=list)  # what a re-ranking knob could not honour, in words


class SimilarList(BaseModel):
    item_id: str
    model_version: str
    items: list[Recommended]


class ParsedQuery(BaseModel):
    """What the search understood: free text for the encoder, and the constraints it enforces."""

    text: str  # the query without its constraint phrases
    min_price: float | None = None
    max_price: float | None = None
    categories: list[str] = Field(default_factory=list)  # catalog category names the query mentioned


class SearchResults(BaseModel):
    query: str
    rewritten: str | None = None  # the LLM's rewrite into the catalog's language that was searched, when there was one
    parsed: ParsedQuery
    personalised: bool
    model_version: str
    items: list[Recommended]
    notes: list[str] = Field(default_factory=list)  # what the answer could not honour, in words


class Explanation(BaseModel):
    user_id: str
    item_id: str
    title: str | None
    score: float
    rank: int | None  # 1-based rank among all items the user could be shown; None when the item is excluded
    method: str  # how contributions were measured
    reasons: list[Reason]


class EventError(BaseModel):
    index: int  # position in the posted batch
    field: str
    message: str


class EventsAccepted(BaseModel):
    stored: int  # durably written before this response was sent
    rejected: list[EventError]
    withheld: int = 0  # valid events not stored: their user has not consented and the shop keeps no such events


class ConsentIn(Strict):
    """``PUT /v1/users/{user_id}/consent``."""

    personalised: StrictBool = Field(description="May this user's behaviour personalise what they are shown?")


class ConsentOut(BaseModel):
    user_id: str
    personalised: bool  # what now applies: the recorded answer, or the shop's default when there is none
    recorded: bool  # False: the user never answered, so the shop's default applies


class Forgotten(BaseModel):
    """``DELETE /v1/users/{user_id}``: what was erased, and whether the served model must be retrained."""

    user_id: str
    events: int
    chat_turns: int
    compacted: bool  # the store's file was rewritten so the deleted bytes are gone (SQLite)
    retrain_needed: bool  # the served model was trained on this user: `shoprec retrain` it


class ItemsAccepted(BaseModel):
    stored: int
    new: int  # items the model had not been trained on (placed by their text)


class Health(BaseModel):
    status: Literal["ok"]
    model_version: str
    model: str
    items: int
    events: int
    store: str  # backend and location, password masked
    llm: str  # the assistant's model, or "unavailable: <why>"
    forgotten_since_training: int = 0  # users the served model learnt from who were forgotten since: retrain it
    privacy: PrivacyGuarantee | None = None  # the served model's differential-privacy budget; None: not DP-trained


# ---- request envelopes ----------------------------------------------------------------------------------------


class EventBatch(Strict):
    """``POST /v1/events``. Events are documented as ``EventIn`` but validated one by one in the route, so that one
    bad event is reported by its index instead of sinking the whole batch."""

    events: list[SkipValidation[EventIn]]


class ItemBatch(Strict):
    """``POST /v1/items``; items are validated one by one in the route, like events."""

    items: list[SkipValidation[ItemIn]]


class ReloadRequest(Strict):
    model_dir: Path | None = None  # default: the directory being served now


class ReloadScheduled(BaseModel):
    """The 202 answer of a reload with several workers: they restart one by one onto ``model_dir``."""

    status: Literal["restarting"] = "restarting"
    workers: int
    model_dir: Path


# ---- the assistant (LLM) ----------------------------------------------------------------------------------------

MESSAGE_CHARS = 1_000  # a shopper's message or question; longer is a 422 (it would only crowd the model's context)


class ChatIn(Strict):
    message: str = Field(min_length=1, max_length=MESSAGE_CHARS, description="What the shopper says, zh or en.")
    user_id: str | None = Field(
        default=None, min_length=1, max_length=256, description="Personalise with this user's history (optional)."
    )
    session_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Continue this conversation: a follow-up ('cheaper', '换个牌子') refines its last turn.",
    )
    stream: bool = Field(default=False, description="Answer as server-sent events: 'delta' pieces, then 'turn'.")


class ShownItem(BaseModel):
    item_id: str
    title: str | None
    price: float | None
    reason: str  # from the ranking's reasons and the item's own fields


class GroundingCounts(BaseModel):
    """What the checks took out of the model's remark: sentences naming an id outside the items shown, making a
    claim their fields do not support, not in the shopper's language, or only repeating the prompt or message."""

    dropped_ids: int
    unsupported_claims: int
    wrong_language: int
    echoed: int  # sentences that only recited an item's line or the shopper's message


class ChatTurn(BaseModel):
    session_id: str
    answer: str
    language: Literal["zh", "en"]
    intent: dict[str, Any]  # the constraints the items were retrieved under
    items: list[ShownItem]
    counts: GroundingCounts
    template: str
    template_version: int
    model: str
    fallback: str | None  # why the model's remark is missing, when it is (the ranked items are still shown)
    notes: list[str]
    latency_ms: float
    first_token_ms: float  # until the first text (the items with the ranking's reasons) was ready
    first_remark_ms: float | None  # until the model's first checked sentence was ready


class AskIn(Strict):
    question: str = Field(min_length=1, max_length=MESSAGE_CHARS, description="A question about the item, zh or en.")


class ItemAnswer(BaseModel):
    item_id: str
    question: str
    answer: str  # from the item's catalog fields, or "not stated" in the asker's language
    stated: bool
    language: Literal["zh", "en"]
    template: str
    template_version: int
    model: str
    latency_ms: float


class PickedItem(BaseModel):
    item_id: str
    title: str | None
    price: float | None
    reason: str
    source: Literal["llm", "ranking"]


class LLMSimilarList(BaseModel):
    """Items like ``item_id`` chosen by the LLM among the ranking's candidates (the article's prompt), filled up
    from the ranking's order when it chose fewer."""

    item_id: str
    items: list[PickedItem]
    candidates: list[str]
    note: str | None
    history_shown: int
    history_window: Literal["time", "count"]
    template: str
    template_version: int
    model: str
    fallback: str | None
    latency_ms: float
