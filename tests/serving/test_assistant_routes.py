"""The assistant's routes on a real SmolLM2 server: chat (JSON and server-sent events) with a follow-up that refines
the session's last turn, product questions, LLM-chosen similar items, and a clean 503 without an LLM."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import Translator
from shoprec.data.dataset import Dataset
from shoprec.llm.local import LocalServer
from shoprec.llm.settings import LLMSettings
from shoprec.llm.wording import phrase
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.serving.app import create_app
from shoprec.serving.guard import API_KEY_HEADER
from shoprec.serving.settings import ServingSettings

KEY = "test-key"


def app_with_llm(
    model_dir: Path, store_url: str, cache_dir: Path, llm: LLMSettings, unavailable: str | None
) -> FastAPI:
    settings = ServingSettings(
        rewrite_budget_s=60,  # shared cores: serving's 3 s is for a quiet machine
        model_dir=model_dir,
        database_url=store_url,
        api_key=KEY,
        search_encoder="hashing",
        cache_dir=cache_dir,
        llm=llm,
        llm_unavailable=unavailable,
    )
    return create_app(settings)


@pytest.fixture
def client(
    classic_dir: Callable[[str], Path],
    seeded_store_url: str,
    cache_dir: Path,
    server: LocalServer,
    llm_settings: LLMSettings,
) -> Iterator[TestClient]:
    remote = llm_settings.model_copy(update={"backend": "openai", "base_url": server.base_url, "max_tokens": 200})
    app = app_with_llm(classic_dir("itemknn"), seeded_store_url, cache_dir, remote, None)
    with TestClient(app, headers={API_KEY_HEADER: KEY}) as client:  # POSTs need the key, chat and questions too
        yield client


@pytest.fixture
def a_user(serving_data: Dataset, pseudonymize: Pseudonymizer) -> tuple[str, str]:
    """A seeded user's raw id (the routes pseudonymise it) and the last item of their history."""
    lines = (Path(__file__).resolve().parents[2] / "data/amazon_beauty/sequences.txt").read_text().splitlines()
    pseudonyms = {user: row for row, user in enumerate(serving_data.users.ids)}
    for line in lines:
        raw = line.split(maxsplit=1)[0]
        if (row := pseudonyms.get(pseudonymize(raw))) is not None:
            return raw, serving_data.items.id_of(int(serving_data.sequences.row(row)[-1]))
    raise AssertionError("no user of the slice in sequences.txt")


def test_a_chat_turn_names_only_retrieved_items_and_a_follow_up_refines_it(client: TestClient) -> None:
    first = client.post("/v1/chat", json={"message": "nail polish under $10"})
    assert first.status_code == 200, first.text
    turn = first.json()
    assert turn["language"] == "en" and turn["intent"]["max_price"] == 10.0
    assert turn["items"], "the Beauty slice has nail polish"
    assert all(item["price"] is None or item["price"] <= 10.0 for item in turn["items"])
    assert turn["template"] == "chat" and turn["model"] == "smollm2-135m"
    follow = client.post("/v1/chat", json={"message": "cheaper", "session_id": turn["session_id"]}).json()
    assert follow["session_id"] == turn["session_id"]
    shown_prices = [item["price"] for item in turn["items"] if item["price"] is not None]
    assert follow["intent"]["max_price"] is not None  # the session's bound carried over, lowered where it can be
    assert follow["intent"]["max_price"] <= min([10.0, *shown_prices])
    # another session id starts a new conversation: "cheaper" alone has no price to refine
    fresh = client.post("/v1/chat", json={"message": "cheaper", "session_id": "someone-elses"}).json()
    assert fresh["intent"]["max_price"] is None


def test_a_streamed_turn_sends_deltas_then_the_turn(client: TestClient) -> None:
    with client.stream("POST", "/v1/chat", json={"message": "a shampoo please", "stream": True}) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        body = "".join(answer.iter_text())
    events = [block.split("\n", 1) for block in body.strip().split("\n\n")]
    names = [head.removeprefix("event: ") for head, _ in events]
    assert names[-1] == "turn" and set(names[:-1]) <= {"delta"}
    turn = json.loads(events[-1][1].removeprefix("data: "))
    deltas = "".join(json.loads(data.removeprefix("data: "))["text"] for head, data in events[:-1])
    assert deltas.strip() == turn["answer"].strip()


def test_a_product_question_is_answered_from_the_item_or_not_stated(
    client: TestClient, a_user: tuple[str, str]
) -> None:
    _, item = a_user
    answer = client.post(f"/v1/items/{item}/ask", json={"question": "Is it waterproof to 300 metres?"})
    assert answer.status_code == 200, answer.text
    said = answer.json()
    assert said["item_id"] == item and said["language"] == "en" and said["template"] == "ask"
    assert not said["stated"] and said["answer"] == phrase("en", "not_stated")  # no Beauty item says so
    assert client.post("/v1/items/no-such-item/ask", json={"question": "size?"}).status_code == 404
    assert client.post(f"/v1/items/{item}/ask", json={"question": ""}).status_code == 422


def test_similar_by_llm_chooses_among_the_rankings_candidates(client: TestClient, a_user: tuple[str, str]) -> None:
    user, item = a_user
    answer = client.get(f"/v1/users/{user}/items/{item}/similar-by-llm")
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["template"] == "similar" and 0 < len(found["items"]) <= 5
    assert {picked["item_id"] for picked in found["items"]} <= set(found["candidates"])


def test_without_an_llm_the_assistant_answers_503_and_the_feed_still_works(
    classic_dir: Callable[[str], Path], seeded_store_url: str, cache_dir: Path
) -> None:
    why = "the local LLM needs xllamacpp"
    app = app_with_llm(classic_dir("itemknn"), seeded_store_url, cache_dir, LLMSettings(backend="none"), why)
    with TestClient(app, headers={API_KEY_HEADER: KEY}) as client:
        refused = client.post("/v1/chat", json={"message": "nail polish"})
        assert refused.status_code == 503
        assert why in refused.json()["error"]["message"]
        assert client.get("/v1/users/anyone/recommendations").status_code == 200
        assert client.get("/health").json()["llm"] == f"unavailable: {why}"


def test_a_chinese_search_is_searched_as_the_llm_rewrote_it_and_cached(client: TestClient) -> None:
    translator = Translator()
    client.app.state.runtime.llm = translator  # type: ignore[attr-defined]
    first = client.get("/v1/search", params={"q": "指甲油", "k": 5}).json()
    assert (first["query"], first["rewritten"], first["parsed"]["text"]) == ("指甲油", "nail polish", "nail polish")
    english = client.get("/v1/search", params={"q": "nail polish", "k": 5}).json()
    assert [i["item_id"] for i in first["items"]] == [i["item_id"] for i in english["items"]]
    assert client.get("/v1/search", params={"q": "指甲油", "k": 5}).json()["rewritten"] == "nail polish"
    assert translator.calls == 1  # the second Chinese search came from the cache; English never asked


def test_without_an_llm_a_chinese_search_is_searched_as_written(
    classic_dir: Callable[[str], Path], seeded_store_url: str, cache_dir: Path
) -> None:
    app = app_with_llm(classic_dir("itemknn"), seeded_store_url, cache_dir, LLMSettings(backend="none"), "no LLM")
    with TestClient(app) as client:
        answer = client.get("/v1/search", params={"q": "指甲油", "k": 5})
        assert answer.status_code == 200 and answer.json()["rewritten"] is None
