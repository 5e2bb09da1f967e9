"""Pseudonyms: stable under one key, different under another, and no raw user id survives ingest."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from shoprec.data.sources import load_source
from shoprec.privacy.pseudonym import KEY_ENV, KEY_FILE_ENV, Pseudonymizer, load_or_create_key

RAW_USERS = ("alice@example.com", "bob-1234", "carol")


def test_same_key_same_pseudonym_other_key_other_pseudonym() -> None:
    first, again, other = Pseudonymizer(b"k" * 32), Pseudonymizer(b"k" * 32), Pseudonymizer(b"x" * 32)
    assert first("alice") == again("alice")
    assert first("alice") != first("bob")
    assert first("alice") != other("alice")
    assert "alice" not in first("alice")


def test_key_must_be_long_enough() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Pseudonymizer(b"short")


def test_key_file_is_created_private_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "keys" / "pseudonym.key"
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))

    key = load_or_create_key()

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key) == 32
    assert load_or_create_key() == key
    assert Pseudonymizer.from_environment()("alice") == Pseudonymizer(key)("alice")


def test_only_remembering_instances_reveal_raw_ids() -> None:
    remembering = Pseudonymizer(b"k" * 32, remember=True)
    assert remembering.reveal(remembering("alice")) == "alice"
    with pytest.raises(RuntimeError):
        Pseudonymizer(b"k" * 32).reveal("anything")


def test_loaded_dataset_holds_no_raw_user_id(tmp_path: Path, pseudonymize: Pseudonymizer) -> None:
    events = tmp_path / "events.csv"
    events.write_text("user_id,item_id\n" + "".join(f"{user},item{i}\n" for i, user in enumerate(RAW_USERS * 2)))
    dataset, _ = load_source(events, pseudonymize)

    assert set(dataset.users.ids) == {pseudonymize(user) for user in RAW_USERS}
    visible = " ".join([*dataset.users.ids, *dataset.items.ids, dataset.catalog.to_string()])
    assert not any(user in visible for user in RAW_USERS)
    assert dataset.sequences.lengths().tolist() == [2, 2, 2]  # same raw id -> same pseudonym -> one history
