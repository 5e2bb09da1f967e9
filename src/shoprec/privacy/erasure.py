"""Forgetting a user: the tag that outlives them, and the model directories that learnt from them.

A forgotten user's pseudonym must not stay in the store, yet retraining must still be able to leave them out of
data files that hold them. So what is kept is a tag, a one-way hash of the pseudonym under its own label: from a
raw id (and the pseudonym key) anyone entitled can recompute it, from the tag alone nobody gets the pseudonym back.
Every model directory lists the tags of the users it was trained on, so that a forget request can flag exactly the
models that learnt from that user.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from pathlib import Path

TRAINED_USERS = "trained_users.txt"  # in a model directory: one tag per line, sorted
FORGOTTEN = "forgotten.json"  # in a model directory: tags of users forgotten since it was trained
_LABEL = b"shoprec erasure tag\x00"


def erasure_tag(pseudonym: str) -> str:
    """The tag kept for ``pseudonym`` once the user is forgotten (64 hex digits; never the pseudonym's bytes)."""
    return hashlib.sha256(_LABEL + pseudonym.encode()).hexdigest()


def write_trained_users(model_dir: Path, pseudonyms: Iterable[str]) -> None:
    """Record a freshly trained model's users; earlier flags of the directory go, since they named its old model."""
    (model_dir / TRAINED_USERS).write_text("".join(f"{tag}\n" for tag in sorted(map(erasure_tag, pseudonyms))))
    (model_dir / FORGOTTEN).unlink(missing_ok=True)


def trained_users(model_dir: Path) -> frozenset[str]:
    """Tags of the users ``model_dir`` was trained on; empty for a directory made before this was recorded."""
    path = model_dir / TRAINED_USERS
    return frozenset(path.read_text().split()) if path.is_file() else frozenset()


def forgotten_since_training(model_dir: Path) -> list[str]:
    """Tags of users this model learnt from who have since been forgotten: non-empty means "retrain it"."""
    path = model_dir / FORGOTTEN
    return list(json.loads(path.read_text())["tags"]) if path.is_file() else []


def model_dirs(roots: Iterable[Path]) -> list[Path]:
    """Every model directory at or under ``roots`` that records whom it was trained on."""
    found = {p.parent for root in roots for p in Path(root).rglob(TRAINED_USERS)}
    return sorted(found)


def flag_models(roots: Iterable[Path], tags: Iterable[str]) -> list[Path]:
    """Mark every model directory under ``roots`` trained on any of ``tags``; returns the ones flagged."""
    wanted = set(tags)
    flagged = []
    for directory in model_dirs(roots):
        hit = wanted & trained_users(directory)
        if not hit:
            continue
        known = set(forgotten_since_training(directory))
        record = {"tags": sorted(known | hit), "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (directory / FORGOTTEN).write_text(json.dumps(record, indent=2))
        flagged.append(directory)
    return flagged
