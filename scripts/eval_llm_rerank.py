"""LLM re-ranking (shoprec.llm.rerank) measured on a leave-one-out split: does fusing LlamaRec-style letter scores
with the base ranker's scores beat the base order?

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python scripts/eval_llm_rerank.py --data data/amazon_beauty \\
        --config configs/demo/sasrec.toml --base runs/rerank/sasrec_loo --model qwen2.5-coder-0.5b \\
        --valid-users 100 --test-users 100 --out docs/results/llm/rerank-qwen0.5b.json

1. Base: the config's model fitted on the split's training rows and selected on its validation targets (trained
   and saved to --base the first time; a model that saw more, such as `shoprec train` output, is refused).
2. The base ranking's top N for every validation and test user, through the ranking pipeline.
3. Re-ranking the top N can change only users whose target is in it; a seeded sample of those per split.
4. Validation: the model answers the forward and the reversed listing per user, and the content-free prompt once;
   every variant (forward or both orders, calibrated or not) at every weight is scored from those answers by the
   stage's own ``order``. The best variant and weight above 0 by NDCG@10 is the LLM configuration; the stage
   stays off (weight 0) unless it beats the base order on validation.
5. Test: the base order and the LLM configuration on the test sample, each recorded once in the test-read ledger,
   with a paired bootstrap CI of the difference and the implied full-ranking figure (the base figure on all
   users + the share of users with the target in the top N × the mean change on them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shoprec.data.benchmark import read_benchmark
from shoprec.data.dataset import Dataset
from shoprec.data.split import EvalSet, Split, leave_one_out
from shoprec.evaluation.ledger import Ledger
from shoprec.evaluation.metrics import hits_matrix, n_relevant, per_user_metrics
from shoprec.evaluation.protocol import rank
from shoprec.evaluation.provenance import git_commit, machine, utc_now
from shoprec.llm.backends import open_backend
from shoprec.llm.rerank import Letters, LLMRerankConfig, LLMReRanker, LoopAsk, background_ask, llm_scores
from shoprec.llm.settings import LLMSettings
from shoprec.models.artifact import Manifest, load_artifact, save_artifact
from shoprec.models.base import Recommender
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.ranking.items import ItemIndex, catalog_records, model_items
from shoprec.ranking.recommend import OfflineRanking, Ranker
from shoprec.ranking.stages import model_scorer
from shoprec.ranking.types import Request
from shoprec.training.config import RunConfig
from shoprec.training.experiment import text_vectors
from shoprec.training.select import fit_and_select

METRICS = ("NDCG@10", "HR@10")
VARIANTS: dict[str, tuple[Literal["forward", "both"], bool]] = {  # name -> (orders, calibrate)
    "forward": ("forward", False),
    "forward+calibrated": ("forward", True),
    "both orders": ("both", False),
    "both orders+calibrated": ("both", True),
}
WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
BOOTSTRAP = 10_000


def train_fingerprint(dataset: Dataset, split: Split) -> str:
    """The fingerprint of the data the base model may have seen: the split's training rows only."""
    return dataclasses.replace(dataset, sequences=split.train).fingerprint()


def base_model(dataset: Dataset, split: Split, config: Path, model_dir: Path) -> tuple[Recommender, Manifest]:
    """The base ranker fitted on the split's training rows and selected on its validation targets, trained and
    saved to ``model_dir`` the first time. A model trained on more (``shoprec train`` fits on everything but the
    last item, so it has seen the validation targets and was selected on the test targets) is refused."""
    fingerprint = train_fingerprint(dataset, split)
    if not model_dir.exists():
        run = RunConfig.from_toml(config)
        selection = fit_and_select(
            run, split.train, split.valid, dataset.items.size, None, text_vectors(dataset, run, None)
        )
        uses_text = selection.model.uses_item_text
        manifest = Manifest(
            model=run.model,
            options=selection.model.config.model_dump(mode="json"),
            run=run.model_dump(mode="json"),
            data_name=f"{dataset.name} (leave-one-out training rows)",
            data_fingerprint=fingerprint,
            n_items=dataset.n_items,
            metrics=selection.best.valid.metrics,
            fit_seconds=selection.best.fit_seconds,
            encoder=run.encoder if uses_text else None,
            encoder_name=None,
        )
        save_artifact(model_dir, selection.model, dataset.items, manifest, dataset.users.ids)
    model, items, manifest = load_artifact(model_dir)
    if manifest.data_fingerprint != fingerprint or items.ids != dataset.items.ids:
        raise ValueError(
            f"{model_dir} was not trained on the leave-one-out training rows of {dataset.name} (data fingerprint "
            f"{manifest.data_fingerprint[:12]}, expected {fingerprint[:12]}): its validation or test targets may "
            "have been in its training data. Give a new --base directory and this script trains one."
        )
    return model, manifest


@dataclasses.dataclass(frozen=True)
class Sample:
    """The sampled users of one split whose target is in the base top N, with their base lists and scores."""

    name: str
    rows: np.ndarray  # (S,) rows of the split's EvalSet
    requests: list[Request]
    heads: list[np.ndarray]  # (N,) base top N, best first
    base: list[np.ndarray]  # (N,) their base scores
    targets: EvalSet  # the sampled rows
    eligible_share: float  # of all users of the split, those with the target in the base top N
    full: dict[str, float]  # the base order's metrics over all users of the split (full ranking)


def sample(name: str, ranker: Ranker, items: ItemIndex, users: EvalSet, n: int, depth: int, seed: int) -> Sample:
    top = rank(OfflineRanking(ranker, items), users.histories, depth)  # (U, N) every user of the split
    per_user = per_user_metrics(hits_matrix(top, users.targets), n_relevant(users.targets), (10, depth))
    eligible = np.flatnonzero(per_user[f"HR@{depth}"] > 0)
    rows = np.sort(np.random.default_rng(seed).choice(eligible, size=min(n, len(eligible)), replace=False))
    requests = [Request(users.histories.row(int(row)), k=depth) for row in rows]
    lists = ranker.rank(requests, items)
    return Sample(
        name=name,
        rows=rows,
        requests=requests,
        heads=[ranked.items for ranked in lists],
        base=[ranked.scores for ranked in lists],
        targets=EvalSet(users.histories.take(rows), users.targets.take(rows)),
        eligible_share=len(eligible) / len(users),
        full={metric: float(per_user[metric].mean()) for metric in METRICS},
    )


def metrics(lists: list[np.ndarray], targets: EvalSet) -> dict[str, np.ndarray]:
    """Per-user NDCG@10 and HR@10 of reordered top-N lists."""
    hits = hits_matrix(np.stack(lists), targets.targets)
    per_user = per_user_metrics(hits, n_relevant(targets.targets), (10,))
    return {metric: per_user[metric] for metric in METRICS}


def ask_all(stage: LLMReRanker, items: ItemIndex, users: Sample) -> tuple[list[Letters], np.ndarray]:
    """The model's answers for every sampled user, and the seconds each user took (the prompts of one user wait
    for each other: the server answers one at a time)."""
    answers, seconds = [], []
    for i, (request, head) in enumerate(zip(users.requests, users.heads, strict=True), start=1):
        started = time.perf_counter()
        answers.append(stage.letters(request, items, head))
        seconds.append(time.perf_counter() - started)
        if i % 10 == 0 or i == len(users.requests):
            print(f"{users.name}: {i}/{len(users.requests)} users, {np.mean(seconds):.1f} s each", file=sys.stderr)
    return answers, np.array(seconds)


def reordered(config: LLMRerankConfig, ask: LoopAsk, users: Sample, answers: list[Letters]) -> list[np.ndarray]:
    stage = LLMReRanker(ask, config)
    return [
        head[stage.order(base, letters)] for head, base, letters in zip(users.heads, users.base, answers, strict=True)
    ]


def top_pick(answers: list[Letters], orders: Literal["forward", "both"], calibrate: bool, depth: int) -> list[int]:
    """Histogram over users of the position (in the forward listing) of the candidate the LLM scores highest."""
    picks = [int(np.argmax(llm_scores(letters, orders, calibrate))) for letters in answers]
    return np.bincount(picks, minlength=depth).tolist()


def paired_bootstrap(delta: np.ndarray, seed: int) -> tuple[float, float]:
    """95% percentile interval of the mean of per-user differences, users resampled with replacement."""
    draws = np.random.default_rng(seed).integers(0, len(delta), size=(BOOTSTRAP, len(delta)))
    means = delta[draws].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def cost(answers: list[Letters], seconds: np.ndarray) -> dict[str, float]:
    """Per user: prompt tokens (cached prefix included) and wall seconds; the first user also waited for the
    content-free prompt when calibrating, so the median is the steadier figure."""
    tokens = np.array([letters.prompt_tokens for letters in answers])
    return {
        "users": len(answers),
        "prompt_tokens_mean": float(tokens.mean()),
        "seconds_mean": float(seconds.mean()),
        "seconds_median": float(np.median(seconds)),
        "seconds_p90": float(np.quantile(seconds, 0.9)),
        "seconds_total": round(float(seconds.sum()), 1),
    }


def validate(
    config: LLMRerankConfig, ask: LoopAsk, users: Sample, answers: list[Letters]
) -> tuple[dict[str, Any], LLMRerankConfig]:
    """Every variant at every weight on the validation sample; the best (variant, weight > 0) by NDCG@10."""
    base = metrics(users.heads, users.targets)
    table: dict[str, Any] = {}
    best: tuple[float, LLMRerankConfig] | None = None
    for name, (orders, calibrate) in VARIANTS.items():
        rows = {}
        for weight in WEIGHTS:
            variant = config.model_copy(update={"orders": orders, "calibrate": calibrate, "weight": weight})
            measured = metrics(reordered(variant, ask, users, answers), users.targets)
            rows[str(weight)] = {metric: float(values.mean()) for metric, values in measured.items()}
            score = rows[str(weight)]["NDCG@10"]
            if weight > 0 and (best is None or score > best[0]):
                best = (score, variant)
        picks = top_pick(answers, orders, calibrate, config.candidates)
        table[name] = {"weights": rows, "top_pick_position": picks}
    assert best is not None
    targets = users.targets.targets.rows()
    target_position = [int(np.flatnonzero(np.isin(head, t))[0]) for head, t in zip(users.heads, targets, strict=True)]
    report = {
        "n_users": len(users.rows),
        "eligible_share": users.eligible_share,
        "full_ranking_base": users.full,
        "base": {metric: float(values.mean()) for metric, values in base.items()},
        "variants": table,
        "target_position": np.bincount(target_position, minlength=config.candidates).tolist(),
        "chosen": {"variant": _variant_name(best[1]), "weight": best[1].weight, "NDCG@10": best[0]},
        "beats_base": best[0] > float(base["NDCG@10"].mean()),
    }
    return report, best[1]


def _variant_name(config: LLMRerankConfig) -> str:
    return next(name for name, v in VARIANTS.items() if v == (config.orders, config.calibrate))


def test(
    chosen: LLMRerankConfig, ask: LoopAsk, items: ItemIndex, users: Sample, seed: int
) -> tuple[dict[str, Any], list[Letters], np.ndarray]:
    answers, seconds = ask_all(LLMReRanker(ask, chosen), items, users)
    base = metrics(users.heads, users.targets)
    fused = metrics(reordered(chosen, ask, users, answers), users.targets)
    report: dict[str, Any] = {"n_users": len(users.rows), "eligible_share": users.eligible_share}
    report["full_ranking_base"] = users.full
    for metric in METRICS:
        delta = fused[metric] - base[metric]
        low, high = paired_bootstrap(delta, seed)
        share = users.eligible_share
        report[metric] = {
            "base": float(base[metric].mean()),
            "llm": float(fused[metric].mean()),
            "delta": float(delta.mean()),
            "delta_ci95": [low, high],
            "implied_full_ranking": users.full[metric] + share * float(delta.mean()),
            "implied_full_ranking_ci95": [users.full[metric] + share * low, users.full[metric] + share * high],
        }
    return report, answers, seconds


def raw(users: Sample, answers: list[Letters], seconds: np.ndarray) -> list[dict[str, Any]]:
    """Per user: split row, base top N, target, and the letter log-probabilities as answered."""
    return [
        {
            "row": int(row),
            "head": head.tolist(),
            "target": users.targets.targets.row(i).tolist(),
            "forward": np.round(letters.forward.values, 4).tolist(),
            "reverse": None if letters.reverse is None else np.round(letters.reverse.values, 4).tolist(),
            "prompt_tokens": letters.prompt_tokens,
            "seconds": round(float(spent), 2),
        }
        for i, (row, head, letters, spent) in enumerate(zip(users.rows, users.heads, answers, seconds, strict=True))
    ]


def summary(payload: dict[str, Any]) -> str:
    """The figures of a run as markdown: validation NDCG@10 per variant and weight, the choice, test, cost."""
    valid = payload["validation"]
    lines = [f"validation, {valid['n_users']} users with the target in the base top {payload['stage']['candidates']}"]
    lines += ["| variant | " + " | ".join(f"w={w}" for w in WEIGHTS) + " | top-pick position histogram |"]
    lines += ["| --- " * (len(WEIGHTS) + 2) + "|"]
    for name, row in valid["variants"].items():
        cells = [f"{row['weights'][str(w)]['NDCG@10']:.4f}" for w in WEIGHTS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['top_pick_position']} |")
    lines.append(f"target position: {valid['target_position']}")
    lines.append(f"chosen: {json.dumps(valid['chosen'])}, beats the base order: {valid['beats_base']}")
    if "test" in payload:
        test = payload["test"]
        lines.append(f"test, {test['n_users']} users (eligible share {test['eligible_share']:.4f}):")
        lines += [f"  {metric}: {json.dumps(test[metric])}" for metric in METRICS]
    lines += [f"cost {name}: {json.dumps(figures)}" for name, figures in payload["cost"].items()]
    lines.append(f"LLM load {payload['llm_load_seconds']} s, wall {payload['wall_seconds']} s")
    return "\n".join(lines)


def record(ledger: Ledger, dataset: Dataset, model: str, config: dict[str, Any], n_users: int) -> int:
    return ledger.record(
        data_name=dataset.name,
        data_fingerprint=dataset.fingerprint(),
        model=model,
        config={"script": "scripts/eval_llm_rerank.py", **config},
        split="leave_one_out",
        n_users=n_users,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/amazon_beauty"))
    parser.add_argument("--config", type=Path, default=Path("configs/demo/sasrec.toml"))
    parser.add_argument("--base", type=Path, default=Path("runs/rerank/sasrec_loo"))
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="packaged LLM (shoprec.llm.models)")
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--valid-users", type=int, default=100)
    parser.add_argument("--test-users", type=int, default=0, help="0: validation only, the test split is not read")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    dataset, _ = read_benchmark(args.data, Pseudonymizer.from_environment())
    split = leave_one_out(dataset.sequences)
    model, manifest = base_model(dataset, split, args.config, args.base)
    items = model_items(model, dataset.items.ids, records=catalog_records(dataset, dataset.items.ids))
    ranker = Ranker(model_scorer(model))
    asked = LLMRerankConfig(weight=0.0, candidates=args.candidates, orders="both", calibrate=True)
    settings = LLMSettings(
        model=args.model, threads=args.threads, max_concurrency=1, time_budget_s=900, read_timeout_s=900
    )
    payload: dict[str, Any] = {
        "command": " ".join(["OMP_WAIT_POLICY=PASSIVE", "scripts/eval_llm_rerank.py", *sys.argv[1:]]),
        "date": utc_now(),
        "git_commit": git_commit(),
        "machine": machine(),
        "llm": args.model,
        "llm_threads": args.threads,
        "base": {"dir": str(args.base), "model": manifest.model, "valid_metrics_all_users": manifest.metrics},
        "data": {"name": dataset.name, "fingerprint": dataset.fingerprint(), "split": "leave_one_out"},
        "stage": asked.model_dump(exclude={"weight", "orders", "calibrate"}),
        "seed": args.seed,
    }
    valid = sample("validation", ranker, items, split.valid, args.valid_users, args.candidates, args.seed)
    loading = time.perf_counter()
    with background_ask(lambda: open_backend(settings)) as ask:
        payload["llm_load_seconds"] = round(time.perf_counter() - loading, 1)
        answers, seconds = ask_all(LLMReRanker(ask, asked), items, valid)
        payload["validation"], chosen = validate(asked, ask, valid, answers)
        payload["cost"] = {"both orders": cost(answers, seconds)}
        prior = answers[0].prior
        payload["validation"]["content_free_prior"] = None if prior is None else np.round(prior.values, 4).tolist()
        raws = {"validation": raw(valid, answers, seconds)}
        if args.test_users:
            test_users = sample("test", ranker, items, split.test, args.test_users, args.candidates, args.seed)
            base = {"base": manifest.data_fingerprint, "candidates": args.candidates, "seed": args.seed}
            ledger = Ledger.default()
            reads = {
                "base": record(ledger, dataset, manifest.model, base | {"n": len(test_users.rows)}, len(split.test)),
                "llm": record(
                    ledger,
                    dataset,
                    f"{manifest.model}+llm_rerank",
                    base | {"llm": args.model, "rerank": chosen.model_dump(), "n": len(test_users.rows)},
                    len(test_users.rows),
                ),
            }
            payload["test"], test_answers, test_seconds = test(chosen, ask, items, test_users, args.seed)
            payload["test"] |= {"config": chosen.model_dump(), "test_reads": reads}
            payload["cost"][_variant_name(chosen)] = cost(test_answers, test_seconds)
            raws["test"] = raw(test_users, test_answers, test_seconds)
    payload["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(summary(payload))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload | {"raw": raws}, indent=1))


if __name__ == "__main__":
    main()
