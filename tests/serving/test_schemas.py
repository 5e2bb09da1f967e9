"""What the API refuses on write, and the notes of a price-bounded search, on the models themselves; and once
through FastAPI's own JSON parser, which reads Infinity, NaN and 1e999 as floats."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from shoprec.serving.errors import install_error_handlers
from shoprec.serving.schemas import EventIn, ItemIn

EVENT = {"user_id": "u-1", "item_id": "B00ABC"}
YEAR_2199 = datetime(2199, 12, 31, tzinfo=UTC).timestamp()
YEAR_9999 = datetime(9999, 1, 1, tzinfo=UTC).timestamp()


def refusal(model: type[EventIn | ItemIn], values: dict[str, Any]) -> tuple[str, str]:
    """The field and message of the first error ``model`` finds in ``values``."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate(values)
    first = caught.value.errors()[0]
    return ".".join(map(str, first["loc"])), first["msg"]


@pytest.mark.parametrize(
    ("timestamp", "message"),
    [
        (float("inf"), "finite number"),
        (float("-inf"), "finite number"),
        (float("nan"), "finite number"),
        (True, "valid number"),
        ("1700000000", "valid number"),
        (YEAR_9999, "before the year 2200"),
        (1_700_000_000_000, "milliseconds"),
        (-1, "greater than or equal to 0"),
    ],
)
def test_impossible_timestamps_are_refused_naming_the_field(timestamp: object, message: str) -> None:
    field, text = refusal(EventIn, EVENT | {"timestamp": timestamp})
    assert field == "timestamp" and message in text


def test_plausible_timestamps_are_kept() -> None:
    for timestamp in (0, 1_700_000_000, 1_700_000_000.25, YEAR_2199):
        assert EventIn.model_validate(EVENT | {"timestamp": timestamp}).timestamp == timestamp
    assert EventIn.model_validate(EVENT).timestamp is None


@pytest.mark.parametrize("price", [float("inf"), float("nan"), True, -0.01])
def test_impossible_prices_are_refused(price: object) -> None:
    assert refusal(ItemIn, {"item_id": "x", "price": price})[0] == "price"


def test_prices_whole_or_not_are_kept() -> None:
    assert [ItemIn(item_id="x", price=price).price for price in (0, 7, 7.5)] == [0, 7, 7.5]


@pytest.mark.parametrize(
    ("value", "message"), [("a/b", '"/"'), ("/", '"/"'), ("   ", "blank"), ("", "at least 1"), ("..", '".."')]
)
def test_ids_no_read_could_reach_are_refused_on_write(value: str, message: str) -> None:
    for model, values, field in (
        (EventIn, EVENT | {"user_id": value}, "user_id"),
        (EventIn, EVENT | {"item_id": value}, "item_id"),
        (ItemIn, {"item_id": value}, "item_id"),
    ):
        refused, text = refusal(model, values)
        assert refused == field and message in text


def test_ids_with_other_punctuation_are_kept() -> None:
    for value in ("a b", "a.b", "...", "ä?#%", "-"):
        assert EventIn.model_validate(EVENT | {"item_id": value}).item_id == value


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN", "1e999", "true", "253402300800"])
def test_non_numbers_in_a_raw_body_are_422_naming_the_field(literal: str) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/event")
    def take(event: EventIn) -> dict[str, float | None]:
        return {"timestamp": event.timestamp}

    body = f'{{"user_id": "u", "item_id": "i", "timestamp": {literal}}}'
    json = {"Content-Type": "application/json"}
    with TestClient(app) as client:
        response = client.post("/event", content=body, headers=json)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == "body.timestamp"
        good = client.post("/event", content=body.replace(literal, "1700000000.5"), headers=json)
        assert good.json() == {"timestamp": 1700000000.5}
