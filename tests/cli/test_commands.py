"""The commands an outside evaluator and an operator rely on, run as a user would run them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shoprec.cli import app
from shoprec.models.artifact import MANIFEST

runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_recommend_all_users_writes_one_ranked_line_per_user_in_caller_ids(
    trained: Path, beauty_dir: Path, tmp_path: Path
) -> None:
    recs = tmp_path / "recs.jsonl"
    code, output = invoke(
        "recommend", "--model-dir", trained, "--data", beauty_dir, "--all-users", "-k", "20", "--out", recs
    )
    assert code == 0, output
    histories = {line.split()[0]: line.split()[1:] for line in (beauty_dir / "sequences.txt").read_text().splitlines()}
    lines = [json.loads(line) for line in recs.read_text().splitlines()]
    assert [line["user_id"] for line in lines] == list(histories)
    for line in lines:
        assert len(line["items"]) == 20 == len(set(line["items"]))
        assert not set(line["items"]) & set(histories[line["user_id"]]), "seen items must be excluded"


def test_manifest_records_model_config_fingerprint_metrics_version(trained: Path) -> None:
    manifest = json.loads((trained / MANIFEST).read_text())
    assert manifest["model"] == "itemknn"
    assert len(manifest["data_fingerprint"]) == 64
    assert 0 < manifest["metrics"]["NDCG@10"] <= manifest["metrics"]["HR@10"] <= 1
    assert manifest["shoprec_version"] and manifest["options"]


def test_recommend_for_one_user_and_unknown_user(trained: Path, beauty_dir: Path) -> None:
    code, output = invoke("recommend", "--model-dir", trained, "--data", beauty_dir, "--user", "7", "-k", "5")
    assert code == 0, output
    assert json.loads(output.strip().splitlines()[-1])["user_id"] == "7"
    code, output = invoke("recommend", "--model-dir", trained, "--data", beauty_dir, "--user", "nobody")
    assert code == 2 and "nobody" in output


def test_unknown_model_lists_the_valid_ones(beauty_dir: Path, tmp_path: Path) -> None:
    code, output = invoke("train", "--data", beauty_dir, "--model", "nosuch", "--out", tmp_path / "m")
    assert code == 2
    assert "nosuch" in output and "itemknn" in output and "Traceback" not in output


def test_config_with_unknown_option_names_it(beauty_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('model = "itemknn"\n[options]\nneighbors_typo = 5\n')
    code, output = invoke("train", "--data", beauty_dir, "--config", config, "--out", tmp_path / "m")
    assert code == 2 and "neighbors_typo" in output


def test_missing_data_and_missing_model_dir_are_clear_errors(beauty_dir: Path, tmp_path: Path) -> None:
    code, output = invoke("train", "--data", tmp_path / "absent", "--model", "pop", "--out", tmp_path / "m")
    assert code == 2 and "absent" in output
    code, output = invoke("recommend", "--model-dir", tmp_path, "--data", beauty_dir, "--all-users")
    assert code == 2 and "not a shoprec model directory" in output


def test_evaluate_runs_the_protocol_and_writes_json(beauty_dir: Path, tmp_path: Path, ledger_path: Path) -> None:
    out = tmp_path / "pop.json"
    code, output = invoke("evaluate", "--data", beauty_dir, "--model", "pop", "--out", out)
    assert code == 0, output
    result = json.loads(out.read_text())
    assert set(result) >= {"valid", "test", "fit_seconds", "peak_rss_mb", "test_reads"}
    assert 0 <= result["test"]["metrics"]["NDCG@10"] <= result["test"]["metrics"]["HR@10"] <= 1
    assert "HR@10" in output and "read 1 time(s)" in output
    code, output = invoke("evaluate", "--data", beauty_dir, "--model", "pop")
    assert code == 0 and "read 2 time(s)" in output
    assert len(ledger_path.read_text().splitlines()) == 2


def test_bench_writes_one_json_record_per_config_and_reads_each_test_split_once(
    beauty_dir: Path, tmp_path: Path, ledger_path: Path
) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "pop.toml").write_text('model = "pop"\n')
    (configs / "itemknn.toml").write_text('model = "itemknn"\n[search]\nshrink = [10.0, 50.0]\n')
    (configs / "content.toml").write_text('model = "content"\n')  # in the folder, not asked for: not run
    results = tmp_path / "results"
    code, output = invoke(
        "bench", "--data", beauty_dir, "--models", "pop,itemknn", "--configs", configs, "--results", results
    )
    assert code == 0, output
    assert sorted(path.name for path in results.iterdir()) == ["itemknn.json", "pop.json"]
    itemknn = json.loads((results / "itemknn.json").read_text())
    assert itemknn["config"]["search"] == {"shrink": [10.0, 50.0]} and itemknn["config_path"].endswith("itemknn.toml")
    assert itemknn["command"] == f"shoprec bench --data {beauty_dir} --models pop,itemknn --configs {configs} " + (
        f"--results {results}"
    )
    assert itemknn["data"]["users"] == 2000 and len(itemknn["data"]["fingerprint"]) == 64
    assert itemknn["test_reads"] == 1 and len(itemknn["result"]["trials"]) == 2
    assert itemknn["machine"]["cores"] and itemknn["date"].endswith("Z")
    assert f"| itemknn | 2,000 | {itemknn['result']['test']['metrics']['HR@5']:.4f} |" in output
    assert len(ledger_path.read_text().splitlines()) == 2


def test_bench_names_a_missing_config(beauty_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "pop.toml").write_text('model = "pop"\n')
    code, output = invoke("bench", "--data", beauty_dir, "--models", "pop,als", "--configs", tmp_path)
    assert code == 2 and "als.toml" in output and "pop" in output


def test_evaluate_refuses_the_data_a_model_was_trained_on(trained: Path, beauty_dir: Path, ledger_path: Path) -> None:
    code, output = invoke("evaluate", "--data", beauty_dir, "--model-dir", trained)
    assert code == 2
    assert "was trained on" in output and "validation targets" in output and "Traceback" not in output
    assert not ledger_path.exists(), "a refused evaluation reads no test split"


def write_sequences(folder: Path, rows: dict[str, list[int]]) -> Path:
    folder.mkdir(parents=True)
    lines = [f"{user} " + " ".join(f"i{item}" for item in items) for user, items in rows.items()]
    (folder / "sequences.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_evaluate_a_trained_model_matches_a_hand_computation(tmp_path: Path, ledger_path: Path) -> None:
    # Training rows u1..u23: i1 .. i<n>, then i24 (the held-out validation target). Pop counts what is left:
    # i<k> occurs in rows n >= k, so its count is 24 - k: the ranking is i1, i2, ..., i23, then i24 (count 0).
    train = write_sequences(tmp_path / "train", {f"u{n}": [*range(1, n + 1), 24] for n in range(1, 24)})
    code, output = invoke("train", "--data", train, "--model", "pop", "--out", tmp_path / "pop")
    assert code == 0, output
    # New data, last item = target. The ranking skips each history:
    #   e1 saw i1 i2  -> i3 i4 ...   target i4:  rank 2
    #   e2 saw i5     -> i1 i2 ...   target i1:  rank 1
    #   e3 saw i1..i3 -> i4 i5 ...   target i15: rank 12 (missed at 10, found at 20)
    #   e4 saw i7 i3  -> ...         target i7:  a repeat, masked as seen: never found
    data = write_sequences(tmp_path / "new", {"e1": [1, 2, 4], "e2": [5, 1], "e3": [1, 2, 3, 15], "e4": [7, 3, 7]})
    out = tmp_path / "result.json"
    code, output = invoke("evaluate", "--data", data, "--model-dir", tmp_path / "pop", "--out", out)
    assert code == 0, output
    result = json.loads(out.read_text())["test"]
    expected = {
        "HR@10": 2 / 4,
        "NDCG@10": (1 / np.log2(3) + 1) / 4,
        "MRR@10": (1 / 2 + 1) / 4,
        "HR@20": 3 / 4,
        "NDCG@20": (1 / np.log2(3) + 1 + 1 / np.log2(13)) / 4,
    }
    for name, value in expected.items():
        assert result["metrics"][name] == pytest.approx(value), name
    assert result["n_users"] == 4 and result["n_repeat_targets"] == 1
    assert "repeat targets" in output and "read 1 time(s)" in output
    (entry,) = [json.loads(line) for line in ledger_path.read_text().splitlines()]
    assert entry["model"] == "pop" and entry["split"] == "last_item" and entry["n_users"] == 4


def test_no_raw_user_id_reaches_the_model_directory(tmp_path: Path) -> None:
    """Distinctive raw ids go in; none of them may appear in any file of the artifact."""
    events = tmp_path / "events.csv"
    users = [f"shopper-{n}@example.com" for n in range(30)]
    rows = ["user_id,item_id,event_type,timestamp"]
    for n, user in enumerate(users):
        rows += [f"{user},item{(n * 3 + j) % 40},view,{1_700_000_000 + 60 * j}" for j in range(5)]
    events.write_text("\n".join(rows) + "\n")
    out = tmp_path / "model"
    code, output = invoke("train", "--data", events, "--model", "userknn", "--out", out)
    assert code == 0, output
    plain = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix != ".npz")
    assert b"shopper-" not in plain
    for archive in out.rglob("*.npz"):
        with np.load(archive, allow_pickle=False) as state:
            assert all(state[name].dtype.kind in "biuf" for name in state.files), "arrays must be numeric only"


def test_evaluate_with_a_temporal_split_on_timestamped_events(tmp_path: Path) -> None:
    events = tmp_path / "events.csv"
    rows = ["user_id,item_id,event_type,timestamp"]
    for user in range(60):
        rows += [
            f"u{user},item{(user * 7 + j) % 50},view,{1_700_000_000 + 3600 * (user % 10 + 10 * j)}" for j in range(8)
        ]
    events.write_text("\n".join(rows) + "\n")
    code, output = invoke("evaluate", "--data", events, "--model", "itemknn", "--split", "temporal")
    assert code == 0, output
    assert "temporal, full ranking" in output
    code, output = invoke("evaluate", "--data", events, "--model", "pop", "--split", "sideways")
    assert code == 2 and "split" in output
