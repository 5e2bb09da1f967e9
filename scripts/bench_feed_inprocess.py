"""The home feed's cost in one process, without sockets or a load generator: steadier than `make bench-serve` on
shared cores, and it runs against older commits too (it uses only `create_app`, `ServingSettings` and the CLI's
store seeding, which the code before the ranking-pipeline refactor has as well).

    PYTHONPATH=src .venv/bin/python scripts/bench_feed_inprocess.py TAG MODEL_DIR CACHE_DIR STORE.sqlite3

Seeds STORE from data/amazon_beauty once (a fixed pseudonym key), starts the app's lifespan, warms up with 200
feeds, then times 1,500 feeds one after another (each a batch of one) and 300 rounds of 8 at once (batches of up
to 8), printing one JSON line: wall and CPU (all threads) microseconds per feed. With DIRECT=1 it times
``Pipeline.recommend_many`` for single feeds instead, without the HTTP layer, and prints a cProfile of 1,000 more.
"""

import asyncio
import cProfile
import json
import os
import pstats
import random
import sys
import time
from pathlib import Path

import httpx

from shoprec.cli.serve import _seed
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.serving.app import create_app
from shoprec.serving.pipeline import FeedRequest
from shoprec.serving.settings import ServingSettings

os.environ.setdefault("SHOPREC_PSEUDONYM_KEY", "11" * 32)  # fixed: the seeded users stay known
tag, model, cache, db = sys.argv[1:5]
url = f"sqlite:///{db}"
if not Path(db).exists():
    _seed(url, Path("data/amazon_beauty"))
users = [line.split()[0] for line in Path("data/amazon_beauty/sequences.txt").read_text().splitlines()]
rng = random.Random(0)
app = create_app(ServingSettings(model_dir=Path(model), database_url=url, cache_dir=Path(cache)))


async def over_http() -> None:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def one() -> None:
                answer = await client.get(f"/v1/users/{rng.choice(users)}/recommendations?k=10")
                assert answer.status_code == 200, answer.text

            for _ in range(200):
                await one()
            out: dict[str, object] = {"tag": tag}
            for name, width, n in (("batch1", 1, 1500), ("batch8", 8, 300)):
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(n):
                    await asyncio.gather(*(one() for _ in range(width)))
                feeds = width * n
                out[name] = {
                    "wall_us": (time.perf_counter() - wall) / feeds * 1e6,
                    "cpu_us": (time.process_time() - cpu) / feeds * 1e6,
                }
            print(json.dumps(out), flush=True)


async def direct() -> None:
    pseudonymize = Pseudonymizer.from_environment()
    async with app.router.lifespan_context(app):
        pipeline = app.state.runtime.pipeline
        requests = [FeedRequest(pseudonymize(user), user, 10) for user in users[:2700]]
        for request in requests[:200]:
            pipeline.recommend_many([request])
        cpu = time.process_time()
        for request in requests[200:1700]:
            pipeline.recommend_many([request])
        print(tag, "direct recommend_many batch1 cpu_us", (time.process_time() - cpu) / 1500 * 1e6, flush=True)
        profile = cProfile.Profile()
        profile.enable()
        for request in requests[1700:2700]:
            pipeline.recommend_many([request])
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(35)


asyncio.run(direct() if os.environ.get("DIRECT") else over_http())
