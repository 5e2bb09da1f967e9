"""Prompt templates (versioned Jinja2 files beside this module) rendered from typed contexts into chat messages.

Each template starts with ``{#- version: N -#}`` and holds one block per message role (``system``, ``user``).
A rendering carries the template's name and version, so a logged prompt or a cached answer says which wording made
it, and the ids (or letters) an answer may name, so the caller can reject an answer that names anything else.
Item text is cut to ``LIMITS`` characters (the prompts say so): a catalog title can run to hundreds.
"""

from __future__ import annotations

import dataclasses
import json
import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypedDict

import jinja2

from shoprec.encoders.item_text import cap_text
from shoprec.llm.intent import Intent, intent_schema
from shoprec.llm.prompts.context import Context

TEMPLATES = Path(__file__).resolve().parent
Role = Literal["system", "user"]
ROLES: tuple[Role, ...] = ("system", "user")
LIMITS = {"title": 120, "category": 80, "description": 600, "message": 1000}  # characters
LANGUAGES = {"en": "English", "zh": "Chinese (简体中文)"}
_VERSION = re.compile(r"\A\{#-?\s*version:\s*(\d+)\s*-?#\}")


class ChatMessage(TypedDict):
    role: Role
    content: str


@dataclass(frozen=True)
class Rendered:
    name: str
    version: int
    messages: tuple[ChatMessage, ...]
    allowed: tuple[str, ...]  # item ids or letters an answer may name; empty when it names none

    def chat(self) -> list[dict[str, str]]:
        """The messages as an OpenAI-style chat request takes them."""
        return [{"role": message["role"], "content": message["content"]} for message in self.messages]


def clip(text: str | None, limit: int) -> str:
    """``text`` cut to ``limit`` characters at a word boundary, with "…" when something was cut."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else cap_text(text, limit) + "…"


def money(price: float, currency: str | None = None) -> str:
    return f"{price:.2f}" + (f" {currency}" if currency else "")


def day(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def as_json(value: object) -> str:
    """JSON as a model reads it best: characters as they are (Jinja's ``tojson`` escapes quotes for HTML)."""
    return json.dumps(value, ensure_ascii=False)


def constraints(intent: Intent) -> list[str]:
    """An intent's stated slots as short English lines, for the model to read."""
    lines = [f"{name.replace('_', ' ')}: {value}" for name, value in (("product type", intent.category),
             ("brand", intent.brand)) if value]  # fmt: skip
    unit = f" {intent.currency}" if intent.currency else ""
    if intent.min_price is not None:
        lines.append(f"price at least {intent.min_price:g}{unit}")
    if intent.max_price is not None:
        lines.append(f"price at most {intent.max_price:g}{unit}")
    if intent.sort:
        lines.append("cheapest first" if intent.sort == "price_asc" else "most expensive first")
    lines += [f"wanted: {attribute}" for attribute in intent.attributes]
    lines += [f"not the brand {brand}" for brand in intent.exclude_brands]
    lines += [f"not the product type {category}" for category in intent.exclude_categories]
    return lines


class Prompts:
    """The templates of one directory (the shipped ones by default)."""

    def __init__(self, directory: Path = TEMPLATES) -> None:
        self.directory = directory
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(directory),
            undefined=jinja2.StrictUndefined,  # a missing field is an error, never an empty string in a prompt
            autoescape=False,  # plain text for a model, not HTML
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(clip=clip, money=money, day=day, constraints=constraints, json=as_json)
        self.env.globals.update(
            limits=LIMITS, languages=LANGUAGES, intent_schema=intent_schema, letters=string.ascii_uppercase
        )

    def version(self, name: str) -> int:
        """The version a template declares on its first line; a template without one is an error."""
        source = (self.directory / f"{name}.j2").read_text(encoding="utf-8")
        found = _VERSION.match(source)
        if found is None:
            raise ValueError(f"{self.directory / f'{name}.j2'} must start with {{#- version: N -#}}")
        return int(found.group(1))

    def render(self, context: Context) -> Rendered:
        name = context.TEMPLATE
        template = self.env.get_template(f"{name}.j2")
        values: dict[str, Any] = {field.name: getattr(context, field.name) for field in dataclasses.fields(context)}
        variables = template.new_context(values)
        messages = tuple(
            ChatMessage(role=role, content="".join(template.blocks[role](variables)).strip())
            for role in ROLES
            if role in template.blocks
        )
        return Rendered(name, self.version(name), messages, context.allowed())
