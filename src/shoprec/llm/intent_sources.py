"""The real catalogs the labelled query sets are written from, read into what a query may say about their items.

Chinese product types (HC tags) and brands (HP tags) of Taobao titles (``zh_product_titles``); English category
levels of Amazon Beauty, brand and leaf category of Amazon Scientific, category code, brand and USD price of REES46
events. Each catalog's names are also the vocabulary a query parser is given for it.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoprec.llm.intent import Language
from shoprec.llm.terms import CatalogTerms


@dataclass(frozen=True)
class Product:
    """What a query may say about one real item."""

    category: str | None  # the catalog's own name of its product type
    brand: str | None
    price: float | None


@dataclass(frozen=True)
class Source:
    """One catalog: its items (in file order) and the names a parser may know it by."""

    name: str
    language: Language
    products: tuple[Product, ...]
    terms: CatalogTerms


def read_zh_titles(directory: Path) -> Source:
    """Taobao titles in BIEOS (``char<TAB>tag``, a blank line between titles): each title's first product type (HC)
    and first brand (HP); every HC and HP phrase is the catalog's vocabulary."""
    products: list[Product] = []
    for split in ("train", "dev", "test"):
        for phrases in _bieos_titles(directory / f"{split}.txt.bieos"):
            types = [text.strip() for tag, text in phrases if tag == "HC" and text.strip()]
            brands = [text.strip() for tag, text in phrases if tag == "HP" and text.strip()]
            if types:
                products.append(Product(types[0], brands[0] if brands else None, None))
    return Source("zh_product_titles", "zh", tuple(products), _terms(products))


def _bieos_titles(path: Path) -> Iterator[list[tuple[str, str]]]:
    """Each title as its tagged phrases [(tag, text)]."""
    phrases: list[tuple[str, str]] = []
    current: list[str] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:  # the blank line ends the last title
        if not line.strip():
            if phrases:
                yield phrases
            phrases, current = [], []
            continue
        char, tag = line.rsplit(maxsplit=1) if "\t" not in line else line.split("\t")
        position, _, kind = tag.partition("-")
        if position in ("B", "S"):
            current = [kind, char]
        elif position in ("I", "E") and current and current[0] == kind:
            current[1] += char
        if position in ("E", "S") and current:
            phrases.append((current[0], current[1]))
            current = []
        if position == "O":
            current = []


def read_amazon_beauty(directory: Path) -> Source:
    """Beauty item records: the deepest level of the first category path (no brands, no prices in this set)."""
    products = []
    for record in _jsonl(directory / "items.jsonl.gz"):
        paths = record.get("categories") or [[]]
        path = [str(level) for level in paths[0]]
        products.append(Product(path[-1] if len(path) > 1 else None, None, None))
    records = _jsonl(directory / "items.jsonl.gz")
    levels = Counter(level for record in records for level in dict.fromkeys(record["categories"][0]))
    categories = [level for level, n in levels.items() if n <= len(products) / 2]  # not the root ("Beauty")
    return Source(directory.name, "en", tuple(products), CatalogTerms.of(categories, ()))


def read_amazon_scientific(directory: Path) -> Source:
    """UniSRec records, ``text`` = "title. categories (space-joined). brand. ": the brand is the last part. The
    category levels are joined by spaces, so a leaf is known only where its parent path is another item's whole
    path; a leaf of one or two words then names the product type ("Digital Calipers"), else the item has none."""
    parts = [_text_parts(str(record["text"])) for record in _jsonl(directory / "items.jsonl.gz")]
    paths = {path for path, _ in parts if path.startswith("Industrial & Scientific")}
    leaves: dict[str, str] = {}
    for path in paths:
        parents = [other for other in paths if path.startswith(other + " ")]
        leaf = path[len(max(parents, key=len)) + 1 :] if parents else ""
        words = leaf.split()
        if 0 < len(words) <= 2 and len(set(words)) == len(words):
            leaves[path] = leaf
    products = [Product(leaves.get(path), brand or None, None) for path, brand in parts]
    return Source(directory.name, "en", tuple(products), _terms(products))


def _text_parts(text: str) -> tuple[str, str]:
    """(category path, brand) of a UniSRec text; a title may itself hold ". ", so parts are taken from the end."""
    parts = text.strip().removesuffix(".").split(". ")
    return (parts[-2].strip(), parts[-1].strip()) if len(parts) >= 3 else ("", "")


def read_rees46(path: Path) -> Source:
    """REES46 events (``category_code`` a dotted path, ``brand``, ``price`` in USD): one product per product id, its
    first row. A category level is written as a catalog would show it ("water_heater" -> "water heater")."""
    seen: dict[str, Product] = {}
    all_levels: list[list[str]] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["product_id"] in seen:
                continue
            levels = [level.replace("_", " ") for level in row["category_code"].split(".") if level]
            all_levels.append(levels)
            price = float(row["price"]) if row["price"] else None
            seen[row["product_id"]] = Product(levels[-1] if levels else None, row["brand"] or None, price)
    counts = Counter(level for levels in all_levels for level in dict.fromkeys(levels))
    categories = [level for level, n in counts.items() if n <= len(all_levels) / 2]
    products = tuple(seen.values())
    return Source("rees46_sample", "en", products, CatalogTerms.of(categories, (p.brand for p in products if p.brand)))


def _terms(products: Sequence[Product]) -> CatalogTerms:
    return CatalogTerms.of((p.category for p in products if p.category), (p.brand for p in products if p.brand))


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        yield from map(json.loads, handle)


def load_sources(repo: Path, shared: Path | None = None) -> list[Source]:
    """The four catalogs the sets are written from: the shipped Amazon sets under ``repo/data`` and the shared
    REES46 and Chinese title sets under ``shared`` (default ``repo/../shared/data``)."""
    shared = shared or repo.parent / "shared" / "data"
    return [
        read_amazon_beauty(repo / "data" / "amazon_beauty"),
        read_amazon_scientific(repo / "data" / "amazon_scientific"),
        read_rees46(shared / "rees46_sample" / "2019-Oct-head.csv"),
        read_zh_titles(shared / "zh_product_titles"),
    ]
