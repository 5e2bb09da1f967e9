"""Prompt templates: each renders from real data into the messages recorded in tests/llm/golden, and a template whose
text changes without a new version fails here.

A golden file records the template's name and version with the messages. Regenerate after bumping a version with
SHOPREC_UPDATE_GOLDEN=1; it refuses to overwrite a golden file of the same version with different text.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from shoprec.data.dataset import Dataset
from shoprec.llm.intent import Intent, parse
from shoprec.llm.prompts import LIMITS, TEMPLATES, Prompts, Rendered, clip
from shoprec.llm.prompts.build import (
    events_of,
    item_facts,
    reason_facts,
    recent,
    rerank_context,
    similar_context,
)
from shoprec.llm.prompts.context import (
    AskContext,
    ChatContext,
    Context,
    ExplainContext,
    HistoryWindow,
    IntentContext,
    RerankContext,
    RewriteContext,
    SimilarContext,
)
from shoprec.llm.terms import CatalogTerms
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.ranking.explain import MODEL_SPACE, attribute
from shoprec.ranking.types import Reason

from .conftest import rees46_dataset

GOLDEN = Path(__file__).parent / "golden"
USER = 62  # row of the beauty slice used throughout: a user with 28 purchases, 13 of them hair care
VIEWED = 23  # the position of the item that user is viewing (a conditioner)


def serialise(rendered: Rendered) -> str:
    head = f"template: {rendered.name}\nversion: {rendered.version}\nallowed: {', '.join(rendered.allowed) or '-'}\n"
    return head + "".join(f"\n=== {m['role']} ===\n{m['content']}\n" for m in rendered.messages)


def _version(text: str) -> int | None:
    found = re.search(r"^version: (\d+)$", text, re.MULTILINE)
    return int(found.group(1)) if found else None


def golden_problem(name: str, text: str, golden: str | None) -> str | None:
    """Why ``text`` (a rendering) does not match the golden file's ``golden`` text; None when it does."""
    if golden is None:
        return f"{name}: no golden file; write it with SHOPREC_UPDATE_GOLDEN=1"
    if text == golden:
        return None
    if _version(text) == _version(golden):
        return (
            f"{name}: the prompt changed but its version ({_version(text)}) did not: bump the version on the "
            f"template's first line, then regenerate with SHOPREC_UPDATE_GOLDEN=1"
        )
    return f"{name}: version {_version(golden)} -> {_version(text)}; regenerate with SHOPREC_UPDATE_GOLDEN=1"


def check_golden(name: str, rendered: Rendered) -> None:
    path = GOLDEN / f"{name}.txt"
    text = serialise(rendered)
    golden = path.read_text(encoding="utf-8") if path.is_file() else None
    problem = golden_problem(name, text, golden)
    if problem and os.environ.get("SHOPREC_UPDATE_GOLDEN") == "1" and _version(text) != _version(golden or ""):
        path.write_text(text, encoding="utf-8")
        pytest.skip(f"{path} written; review the diff")
    assert problem is None, problem


# ---- contexts from a real slice -------------------------------------------------------------------------------


def _same_category(dataset: Dataset, index: int, n: int) -> list[int]:
    """The first ``n`` other items of ``index``'s category path: candidates as a category filter would give."""
    path = dataset.catalog.at[index, "category"]
    same = dataset.catalog.index[dataset.catalog["category"] == path]
    return [int(i) for i in same if i != index][:n]


def _similar(beauty: Dataset) -> SimilarContext:
    viewed = int(beauty.sequences.row(USER)[VIEWED])
    return similar_context(beauty, USER, VIEWED, _same_category(beauty, viewed, 8), k=5)


def _reasons(beauty: Dataset) -> tuple[Reason, ...]:
    """Reasons as the feed explainer gives them, naming real history items of the user."""
    history = beauty.sequences.row(USER)[:VIEWED]
    viewed = int(beauty.sequences.row(USER)[VIEWED])
    return (
        Reason(kind="history", share=0.62, item=int(history[-1]), detail=MODEL_SPACE),
        Reason(kind="history", share=0.38, item=int(history[-3]), detail=MODEL_SPACE),
        attribute(f"same category: {beauty.catalog.at[viewed, 'category']}"),
    )


def _chat(beauty: Dataset, terms: CatalogTerms) -> ChatContext:
    viewed = int(beauty.sequences.row(USER)[VIEWED])
    found = _same_category(beauty, viewed, 3)
    return ChatContext(
        message="有没有更便宜的护发素？不要太油的",
        language="zh",
        intent=parse("conditioner under $15, no shampoos", terms),
        items=tuple(item_facts(beauty, i) for i in found),
        notes=("no item here has a price, so the price bound was not applied",),
    )


@pytest.fixture(scope="module")
def beauty_terms(beauty: Dataset) -> CatalogTerms:
    return CatalogTerms.of_dataset(beauty)


@pytest.fixture(scope="module")
def contexts(beauty: Dataset, beauty_terms: CatalogTerms) -> dict[str, Context]:
    viewed = int(beauty.sequences.row(USER)[VIEWED])
    return {
        "similar": _similar(beauty),
        "intent": IntentContext(
            query="OPI nail polish under $20, not Essie",
            categories=beauty_terms.categories[:12],
            brands=("OPI", "Essie"),
        ),
        "chat": _chat(beauty, beauty_terms),
        "explain": ExplainContext(item_facts(beauty, viewed), reason_facts(_reasons(beauty), beauty.title), "en"),
        "ask": AskContext(item_facts(beauty, viewed), "这个适合卷发吗？", "zh"),
        "rerank": rerank_context(beauty, USER, VIEWED, [*_same_category(beauty, viewed, 3)[:2], viewed]),
        "rewrite": RewriteContext("适合干性皮肤的保湿面霜 200元以下"),
    }


@pytest.mark.parametrize("name", ["similar", "intent", "chat", "explain", "ask", "rerank", "rewrite"])
def test_each_template_renders_its_golden_prompt(name: str, contexts: dict[str, Context]) -> None:
    check_golden(name, Prompts().render(contexts[name]))


def test_a_history_with_timestamps_is_cut_to_the_six_months_before_the_view(
    tmp_path: Path, pseudonymize: Pseudonymizer
) -> None:
    rees46 = rees46_dataset(tmp_path, pseudonymize)
    assert rees46.sequences.timestamps is not None
    row = int(rees46.sequences.lengths().argmax())  # the busiest user of the slice
    position = int(rees46.sequences.lengths()[row]) - 1
    viewed = int(rees46.sequences.row(row)[position])
    candidates = [i for i in _same_category(rees46, viewed, 50) if i not in rees46.sequences.row(row)][:8]
    context = similar_context(rees46, row, position, candidates, k=3, currency="USD")
    assert context.timed and len(context.history) == min(position, HistoryWindow().count)  # all within minutes
    check_golden("similar_timed", Prompts().render(context))

    events = events_of(rees46, row)
    view = events[position].timestamp
    assert view is not None
    shifted = [*(replace(e, timestamp=view - 200 * 86_400) for e in events[:2]), *events[2:position]]
    everything = HistoryWindow(count=len(events))
    assert recent(shifted, view, everything) == tuple(events[2:position])  # 200 days back: outside the window
    assert recent(shifted, view, HistoryWindow(days=365, count=len(events))) == tuple(shifted)
    assert recent(events[:position], view, HistoryWindow(count=2)) == tuple(events[position - 2 : position])


def test_a_changed_template_without_a_version_bump_fails_the_golden_test(
    tmp_path: Path, contexts: dict[str, Context]
) -> None:
    for template in TEMPLATES.glob("*.j2"):
        shutil.copy(template, tmp_path / template.name)
    golden = (GOLDEN / "similar.txt").read_text(encoding="utf-8")
    edited = tmp_path / "similar.j2"
    edited.write_text(edited.read_text(encoding="utf-8").replace("short reason", "brief reason"), encoding="utf-8")
    problem = golden_problem("similar", serialise(Prompts(tmp_path).render(contexts["similar"])), golden)
    assert problem is not None and "did not: bump the version" in problem

    source = edited.read_text(encoding="utf-8")
    version = Prompts().version("similar")
    edited.write_text(source.replace(f"version: {version}", f"version: {version + 1}", 1), encoding="utf-8")
    problem = golden_problem("similar", serialise(Prompts(tmp_path).render(contexts["similar"])), golden)
    assert problem is not None and f"version {version} -> {version + 1}" in problem


def test_a_template_without_a_version_is_refused(tmp_path: Path, contexts: dict[str, Context]) -> None:
    (tmp_path / "intent.j2").write_text("{% block user %}{{ query }}{% endblock %}", encoding="utf-8")
    with pytest.raises(ValueError, match="must start with"):
        Prompts(tmp_path).render(contexts["intent"])


def test_prompts_name_only_listed_ids_and_cut_long_text(contexts: dict[str, Context]) -> None:
    rendered = Prompts().render(contexts["similar"])
    system, user = (message["content"] for message in rendered.messages)
    assert "Never name an id that is not in the" in system and f"cut to {LIMITS['title']} characters" in system
    named = re.findall(r"^\[([^\]]+)\]", user, re.MULTILINE)
    assert named == list(rendered.allowed)  # ids appear only on candidate lines
    assert "purchases" in user and "considering its category" in user
    assert clip("word " * 100, 20) == "word word word word…"
    assert len(clip("x" * 500, LIMITS["title"])) == LIMITS["title"] + 1


def test_rerank_labels_candidates_with_letters_and_refuses_more_than_26(beauty: Dataset) -> None:
    rendered = Prompts().render(rerank_context(beauty, USER, VIEWED, list(range(1, 4))))
    assert rendered.allowed == ("A", "B", "C")
    assert "(C) " in rendered.messages[-1]["content"] and "(D) " not in rendered.messages[-1]["content"]
    with pytest.raises(ValueError, match="1 to 26"):
        RerankContext(history=(), candidates=tuple(item_facts(beauty, i) for i in range(1, 28)))


def test_chat_and_ask_answer_in_the_shoppers_language(contexts: dict[str, Context]) -> None:
    prompts = Prompts()
    assert "Write in Chinese" in prompts.render(contexts["chat"]).messages[-1]["content"]
    assert "未说明" in prompts.render(contexts["ask"]).messages[0]["content"]
    english = AskContext(contexts["ask"].item, "Is it good for curly hair?", "en")  # type: ignore[union-attr]
    assert "not stated" in prompts.render(english).messages[0]["content"]


def test_the_intent_prompt_carries_the_intent_schema(contexts: dict[str, Context]) -> None:
    system = Prompts().render(contexts["intent"]).messages[0]["content"]
    for slot in Intent.model_fields:
        assert f'"{slot}"' in system


def test_the_rewrite_prompt_shows_its_examples_in_the_direction_asked(contexts: dict[str, Context]) -> None:
    prompts = Prompts()
    system = prompts.render(contexts["rewrite"]).messages[0]["content"]
    assert "into English" in system and "睫毛夹 => eyelash curler" in system
    assert "=>" not in prompts.render(RewriteContext("睫毛夹", examples=False)).messages[0]["content"]
    to_chinese = prompts.render(RewriteContext("eyelash curler", target="zh")).messages[0]["content"]
    assert "into Chinese" in to_chinese and "eyelash curler => 睫毛夹" in to_chinese
