"""Instructions one home feed costs, counted by valgrind: repeatable on cores whose speed drifts (on the 2-core
machine two timed runs of the same code differed by a fifth; two counts of it by about 1%).

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=OUT \
        .venv/bin/python scripts/count_feed_instructions.py MODEL_DIR CACHE_DIR STORE.sqlite3 [N] [WIDTH] [--direct]

Seeds STORE from data/amazon_beauty once (as `scripts/bench_feed_inprocess.py` does), starts the app's lifespan,
warms up with 30 feeds, then switches callgrind's counting on for N feeds (default 200) and off again, so OUT's
total is the N feeds alone: over HTTP in process (the test client included), WIDTH at once (default 1), or with
--direct ``Pipeline.recommend_many`` alone, one user at a time. Uses only what the code before the ranking-pipeline
refactor also has, so it counts commit ``f81d1dc`` too (run from a worktree of it with PYTHONPATH=src).
`callgrind_annotate OUT` splits the count by function (C level: the Python part shows as the interpreter).
"""

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path

import httpx

from shoprec.cli.serve import _seed
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.serving.app import create_app
from shoprec.serving.pipeline import FeedRequest
from shoprec.serving.settings import ServingSettings

os.environ.setdefault("SHOPREC_PSEUDONYM_KEY", "11" * 32)  # fixed: the seeded users stay known
args = [arg for arg in sys.argv[1:] if arg != "--direct"]
model, cache, db = args[:3]
n = int(args[3]) if len(args) > 3 else 200
width = int(args[4]) if len(args) > 4 else 1
url = f"sqlite:///{db}"
if not Path(db).exists():
    _seed(url, Path("data/amazon_beauty"))
users = [line.split()[0] for line in Path("data/amazon_beauty/sequences.txt").read_text().splitlines()]
app = create_app(ServingSettings(model_dir=Path(model), database_url=url, cache_dir=Path(cache)))


def counting(on: bool) -> None:
    subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())], check=True)


async def over_http() -> None:
    rng = random.Random(0)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:

        async def one() -> None:
            answer = await client.get(f"/v1/users/{rng.choice(users)}/recommendations?k=10")
            assert answer.status_code == 200, answer.text

        for _ in range(30):
            await one()
        counting(True)
        for _ in range(n // width):
            await asyncio.gather(*(one() for _ in range(width)))
        counting(False)


async def direct() -> None:
    pseudonymize = Pseudonymizer.from_environment()
    async with app.router.lifespan_context(app):
        pipeline = app.state.runtime.pipeline
        requests = [FeedRequest(pseudonymize(user), user, 10) for user in users[: n + 30]]
        for request in requests[:30]:
            pipeline.recommend_many([request])
        counting(True)
        for request in requests[30:]:
            pipeline.recommend_many([request])
        counting(False)


asyncio.run(direct() if "--direct" in sys.argv else over_http())
