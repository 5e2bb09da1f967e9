"""What one home feed costs a running server when feeds come one at a time (a lightly loaded server).

    .venv/bin/python scripts/bench_lone_feeds.py PORT PID [--rate 200] [--feeds 1500] [--data data/amazon_beauty]

Sends GET /v1/users/{user}/recommendations?k=10 for random users of DATA's sequences.txt over one keep-alive
connection, on a fixed timetable (RATE a second) and never two at once, after 200 unmeasured feeds. Prints the
server's CPU per feed (user and system time of process PID, all its threads, from /proc; 1/100 s ticks, so 1,500
feeds resolve ~7 us) and the client's median latency. Start the servers to compare side by side (``shoprec serve
--workers 1`` on copies of one seeded store, ``SHOPREC_PSEUDONYM_KEY`` as the seeding used) and alternate runs
against them: each server then meets the same machine drift, which on shared cores is larger than the effects
measured. `make bench-serve` measures load; this measures the lone feed, where the batch thread's hand-over shows.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import time
from pathlib import Path


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(user, system) clock ticks of every thread of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int)
    parser.add_argument("pid", type=int, help="the server process (with --workers 1, the one that serves)")
    parser.add_argument("--rate", type=float, default=200.0, help="feeds a second, one at a time")
    parser.add_argument("--feeds", type=int, default=1500)
    parser.add_argument("--data", type=Path, default=Path("data/amazon_beauty"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    users = [line.split()[0] for line in (args.data / "sequences.txt").read_text().splitlines()]
    rng = random.Random(args.seed)
    connection = http.client.HTTPConnection("127.0.0.1", args.port)

    def feed() -> None:
        connection.request("GET", f"/v1/users/{rng.choice(users)}/recommendations?k=10")
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            raise SystemExit(f"feed answered {answer.status}")

    for _ in range(200):
        feed()
    user_before, system_before = cpu_ticks(args.pid)
    latencies = []
    start = time.perf_counter()
    for i in range(args.feeds):
        time.sleep(max(0.0, start + i / args.rate - time.perf_counter()))
        sent = time.perf_counter()
        feed()
        latencies.append(time.perf_counter() - sent)
    user_after, system_after = cpu_ticks(args.pid)
    per_feed_us = 1e6 / os.sysconf("SC_CLK_TCK") / args.feeds
    result = {
        "port": args.port,
        "rate": args.rate,
        "feeds": args.feeds,
        "user_us_per_feed": round((user_after - user_before) * per_feed_us),
        "system_us_per_feed": round((system_after - system_before) * per_feed_us),
        "p50_ms": round(sorted(latencies)[len(latencies) // 2] * 1e3, 2),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
