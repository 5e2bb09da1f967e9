"""The DP-SGD table of docs/privacy.md: one frozen config trained at each epsilon, then its membership audit.

For each epsilon (``inf``: the same config without [privacy], the plain Trainer) this trains on Amazon Beauty
with 10% of users held out, saves the model directory under runs/privacy/, measures validation NDCG@10 (each
trained user's last item; the test split is never read) and audits membership on the held-out users, then writes
one raw JSON record per epsilon to docs/results/privacy/. Usage: python scripts/bench_privacy.py [EPS ...];
``--table`` prints docs/privacy.md's table from the records instead.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from shoprec.data.sources import load_source
from shoprec.evaluation.membership import audit_membership
from shoprec.evaluation.provenance import git_commit, machine, utc_now
from shoprec.models.artifact import load_artifact, save_artifact
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.training.config import RunConfig
from shoprec.training.experiment import train_model

DATA = Path("data/amazon_beauty")
CONFIG = Path("configs/amazon_beauty/privacy/sasrec_dp.toml")
RUNS = Path("runs/privacy")
RESULTS = Path("docs/results/privacy")
EPSILONS = ("inf", "8", "1", "4")


def run_config(epsilon: str) -> RunConfig:
    raw: dict[str, Any] = tomllib.loads(CONFIG.read_text())
    if epsilon == "inf":
        raw.pop("privacy")
    else:
        raw["privacy"]["epsilon"] = float(epsilon)
    return RunConfig.model_validate(raw)


def one(epsilon: str) -> dict[str, Any]:
    date, host, started = utc_now(), machine(), time.perf_counter()
    dataset, _ = load_source(DATA, Pseudonymizer.from_environment())
    run = run_config(epsilon)
    selection, manifest = train_model(dataset, run)
    out = RUNS / f"sasrec_dp_eps-{epsilon}"
    save_artifact(out, selection.model, dataset.items, manifest, dataset.users.ids)
    train_seconds = time.perf_counter() - started
    model, _, loaded = load_artifact(out)
    audit = audit_membership(model, loaded, dataset)
    return {
        "name": f"sasrec_dp_eps-{epsilon}",
        "epsilon_target": epsilon,
        "config_path": str(CONFIG),
        "config": run.identity(),
        "command": f"python scripts/bench_privacy.py {epsilon}",
        "data": {"name": dataset.name, "fingerprint": dataset.fingerprint(), "users": dataset.n_users},
        "date": date,
        "git_commit": git_commit(),
        "machine": host,
        "quiet": False,  # 2 cores shared with other engineers' jobs
        "split": "validation (last item of each trained user); test split read 0 times",
        "valid": manifest.metrics,
        "fit_seconds": round(manifest.fit_seconds, 1),
        "train_wall_seconds": round(train_seconds, 1),
        "privacy": None if loaded.privacy is None else loaded.privacy.model_dump(mode="json"),
        "audit": audit.to_dict(),
        "model_dir": str(out),
    }


def table() -> str:
    """The markdown table of docs/privacy.md, from the JSON records (rows by decreasing epsilon)."""
    records = [json.loads(path.read_text()) for path in RESULTS.glob("*.json")]
    records.sort(key=lambda r: -float(r["epsilon_target"]))
    lines = [
        "| target ε | ε spent (δ) | noise σ | sample rate q | steps | valid NDCG@10 | valid HR@10 | attack AUC "
        "(95% CI) | fit wall time (not quiet) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        p, a = r["privacy"], r["audit"]
        spent = "∞ (no DP)" if p is None else f"{p['epsilon']:.2f} ({p['delta']:.2e})"
        dp = ("–", "–", "–") if p is None else (f"{p['noise_multiplier']:.3f}", f"{p['sample_rate']:.4f}", p["steps"])
        lines.append(
            f"| {r['epsilon_target']} | {spent} | {dp[0]} | {dp[1]} | {dp[2]} | {r['valid']['NDCG@10']:.4f} | "
            f"{r['valid']['HR@10']:.4f} | {a['auc']:.3f} ({a['low']:.3f}–{a['high']:.3f}) | "
            f"{r['fit_seconds'] / 60:.1f} min |"
        )
    return "\n".join(lines)


def main(epsilons: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for epsilon in epsilons:
        record = one(epsilon)
        (RESULTS / f"{record['name']}.json").write_text(json.dumps(record, indent=2) + "\n")
        print(json.dumps({k: record[k] for k in ("name", "fit_seconds", "privacy")}), flush=True)
        print(f"  valid NDCG@10 {record['valid']['NDCG@10']:.4f}, audit AUC {record['audit']['auc']:.3f}", flush=True)


if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(message)s")
    logging.getLogger("shoprec").setLevel(logging.INFO)  # the Trainer's epoch lines
    if sys.argv[1:] == ["--table"]:
        print(table())
    else:
        main(sys.argv[1:] or list(EPSILONS))
