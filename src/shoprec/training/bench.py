"""Benchmark several run configs on one dataset, each in a fresh process so its wall time and peak memory are
its own."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from shoprec.data.sources import load_source
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.training.config import RunConfig
from shoprec.training.experiment import ProtocolResult, run_protocol


def bench(
    data: Path, runs: list[RunConfig], on_start: Callable[[RunConfig], None] | None = None
) -> list[ProtocolResult]:
    """Run the leave-one-out protocol for every config, one child process each, in order."""
    results = []
    context = multiprocessing.get_context("spawn")
    for run in runs:
        if on_start is not None:
            on_start(run)
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            results.append(pool.submit(_bench_one, str(data), run).result())
    return results


def _bench_one(data: str, run: RunConfig) -> ProtocolResult:
    dataset, _ = load_source(Path(data), Pseudonymizer.from_environment())
    return run_protocol(dataset, run)
