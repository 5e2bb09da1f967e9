"""Benchmark several run configs on one dataset, each in a fresh process so its wall time and peak memory are
its own, and keep for each a JSON record complete enough to publish: result, config, command, machine, commit."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoprec.data.sources import load_source
from shoprec.evaluation.ledger import Ledger
from shoprec.evaluation.provenance import git_commit, machine, utc_now
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.training.config import RunConfig
from shoprec.training.experiment import ProtocolResult, run_protocol


@dataclass(frozen=True)
class BenchEntry:
    """One row of a benchmark: a run config and the TOML it came from (None: the model's defaults)."""

    run: RunConfig
    config_path: Path | None = None

    @property
    def name(self) -> str:
        """The row's name and its JSON file's stem: the config file's stem, else the model."""
        return self.config_path.stem if self.config_path is not None else self.run.model


def bench(
    data: Path,
    entries: list[BenchEntry],
    ledger: Ledger,
    command: str,
    on_start: Callable[[BenchEntry], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the protocol for every entry, one child process each, in order; one JSON-ready record per entry."""
    records = []
    context = multiprocessing.get_context("spawn")
    for entry in entries:
        if on_start is not None:
            on_start(entry)
        started, date, host = time.perf_counter(), utc_now(), machine()  # load average before this run adds to it
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            result, data_facts = pool.submit(_bench_one, str(data), entry.run, str(ledger.path)).result()
        records.append(
            {
                "name": entry.name,
                "model": entry.run.model,
                "config_path": None if entry.config_path is None else str(entry.config_path),
                "config": entry.run.identity(),
                "command": command,
                "data": data_facts,
                "date": date,
                "git_commit": git_commit(),
                "machine": host,
                "wall_seconds": round(time.perf_counter() - started, 1),  # child start-up and data loading included
                "test_reads": result.test_reads,
                "result": result.to_dict(),
            }
        )
    return records


def _bench_one(data: str, run: RunConfig, ledger: str) -> tuple[ProtocolResult, dict[str, Any]]:
    dataset, _ = load_source(Path(data), Pseudonymizer.from_environment())
    facts = {
        "name": dataset.name,
        "path": data,
        "fingerprint": dataset.fingerprint(),
        "users": dataset.n_users,
        "items": dataset.n_items,
        "interactions": dataset.sequences.n_interactions,
    }
    return run_protocol(dataset, run, ledger=Ledger(Path(ledger))), facts
