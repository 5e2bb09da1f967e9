"""`make bench-serve`: load test of a real `shoprec serve` process over loopback.

Starts the server on a free port with a fresh store seeded from the Beauty data, then measures
  feed, closed loop: N keep-alive connections, each sending its next request as soon as the last one answered;
  feed, open loop:   requests on a fixed timetable (--rate), latency from the SCHEDULED send time, so time spent
                     queued behind a slow server counts (no coordinated omission);
  re-ranking:        the feed open loop at --rerank-rate (a rate the server keeps up with), without knobs and then
                     with each of --rerank's knob sets: the difference in server CPU per feed is what they cost;
  ingest:            POST /v1/events, 1,000 events a batch, acknowledged only after the durable commit; the store
                     must then hold exactly the acknowledged number of new events;
  with --llm local:  search, open loop (--search-rate), then feed and search open loops again while one client
                     keeps the assistant busy (POST /v1/chat, zh and en, one after another): the chat must not
                     slow the feed or search down. Chat turns are measured too.
The client is one asyncio thread speaking minimal HTTP/1.1 (Content-Length bodies only), cheap enough not to be
the bottleneck; it still shares the machine's cores with the server, which the report says (--pin both: measured
both unpinned and with the server, all its worker processes, on CPU 0 and the client on CPU 1).

    .venv/bin/python scripts/bench_serve.py [--duration 20] [--pin both] [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import os
import random
import secrets
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from shoprec.evaluation import provenance

BIN = Path(sys.executable).parent
Check = Callable[[int, bytes], tuple[bool, int]]  # (status, body) -> (as expected, units acknowledged)


# ---- a minimal HTTP/1.1 client -------------------------------------------------------------------------------


class Connection:
    """One keep-alive connection, one request at a time; reconnects after an error or `Connection: close`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        try:
            writer.write(raw)
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            start = head.index(b"\r\ncontent-length:") + 17
            body = await reader.readexactly(int(head[start : head.index(b"\r\n", start)]))
        except BaseException:
            self.close()
            raise
        if b"\r\nconnection: close" in head:
            self.close()
        return int(head[9:12]), body

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


def get(path: str, port: int) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


def post(path: str, port: int, body: bytes, key: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-API-Key: {key}\r\n\r\n"
    )
    return head.encode() + body


# ---- load loops ----------------------------------------------------------------------------------------------


@dataclass
class Run:
    """Each request as (reference time, completion time, as expected, units acknowledged); the reference is the
    send time (closed loop) or the due time (open loop). ``expected``: requests sent (closed) or due (open) in the
    window."""

    begin: float
    end: float
    records: list[tuple[float, float, bool, int]]
    server_cpu: float = 0.0  # CPU seconds over the window / window length: 1.0 is one core busy
    client_cpu: float = 0.0
    expected: int = 0
    transport_errors: int = 0


async def send(connection: Connection, raw: bytes, check: Check, run: Run, reference: float) -> None:
    try:
        ok, units = check(*await connection.request(raw))
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        ok, units = False, 0
        run.transport_errors += 1
    run.records.append((reference, time.perf_counter(), ok, units))


async def measure_cpu(run: Run, server_pid: int) -> None:
    """Server (all threads) and client CPU time over exactly the measured window."""
    await asyncio.sleep(max(0.0, run.begin - time.perf_counter()))
    server, client = process_cpu(server_pid), time.process_time()
    await asyncio.sleep(max(0.0, run.end - time.perf_counter()))
    run.server_cpu = (process_cpu(server_pid) - server) / (run.end - run.begin)
    run.client_cpu = (time.process_time() - client) / (run.end - run.begin)


async def closed_loop(
    port: int,
    server_pid: int,
    requests: Callable[[], bytes],
    check: Check,
    connections: int,
    warmup: float,
    duration: float,
) -> Run:
    """Each connection sends again as soon as it has its answer; requests SENT in the window are measured."""
    begin = time.perf_counter() + warmup
    run = Run(begin, begin + duration, [])

    async def client() -> None:
        connection = Connection(port)
        while (now := time.perf_counter()) < run.end:
            await send(connection, requests(), check, run, now)
        connection.close()

    await asyncio.gather(measure_cpu(run, server_pid), *(client() for _ in range(connections)))
    run.expected = sum(begin <= sent < run.end for sent, *_ in run.records)
    return run


async def open_loop(
    port: int,
    server_pid: int,
    requests: Callable[[], bytes],
    check: Check,
    rate: float,
    connections: int,
    warmup: float,
    duration: float,
) -> Run:
    """Request i is due at start + i / rate, whatever happened before; a free connection takes the next due request
    (waiting for its time if early), so when every connection is busy, requests queue here and the wait counts."""
    start = time.perf_counter() + 0.1
    begin = start + warmup
    run = Run(begin, begin + duration, [])
    total = int((warmup + duration) * rate)
    slots = iter(range(total))  # shared: each client takes the next due slot
    run.expected = sum(begin <= start + slot / rate < run.end for slot in range(total))

    async def client() -> None:
        connection = Connection(port)
        for slot in slots:
            due = start + slot / rate
            await asyncio.sleep(due - time.perf_counter())
            await send(connection, requests(), check, run, due)
        connection.close()

    tasks = [asyncio.ensure_future(client()) for _ in range(connections)]
    await measure_cpu(run, server_pid)
    _, late = await asyncio.wait(tasks, timeout=max(5.0, duration / 2))  # then whatever is still queued is an error
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    return run


def feed_check(status: int, _body: bytes) -> tuple[bool, int]:
    return status == 200, int(status == 200)


def chat_check(status: int, body: bytes) -> tuple[bool, int]:
    """A turn that showed items; one whose remark timed out still counts (the items are the answer)."""
    return status == 200 and bool(json.loads(body)["items"]), int(status == 200)


SEARCHES = ("red nail polish", "shampoo for dry hair", "sunscreen spf 50", "lipstick under $20", "hair dryer", "面霜")


CHAT_MESSAGES = (
    "A moisturizer for dry skin under $30",
    "适合干性皮肤的保湿霜",
    "Shampoo for curly hair",
    "有没有好用的指甲油？",
    "A gift set of perfume",
    "推荐一些防晒霜",
)


def ingest_check(batch: int) -> Check:
    def check(status: int, body: bytes) -> tuple[bool, int]:
        if status != 200:
            return False, 0
        stored = int(json.loads(body)["stored"])
        return stored == batch, stored

    return check


# ---- statistics and the report -------------------------------------------------------------------------------


@dataclass
class Row:
    phase: str
    pinned: bool
    connections: int
    target: str
    requests: int  # measured: sent (closed) or scheduled (open) in the window
    per_second: float  # expected answers completed in the window / window length (events/s for ingest)
    p50: float
    p90: float
    p99: float
    max: float
    errors: int  # non-200, wrong answers, transport errors, and requests scheduled but never answered
    server_cpu: float
    client_cpu: float
    note: str = ""


def summarise(phase: str, run: Run, pinned: bool, connections: int, target: str, units: bool = False) -> Row:
    window = [r for r in run.records if run.begin <= r[0] < run.end]
    latencies = np.array([done - ref for ref, done, ok, _ in window if ok]) * 1e3
    completed = [r for r in run.records if run.begin <= r[1] < run.end and r[2]]
    rate = sum(r[3] if units else 1 for r in completed) / (run.end - run.begin)
    stats = np.percentile(latencies, [50, 90, 99, 100]) if len(latencies) else np.full(4, np.nan)
    errors = sum(not ok for *_, ok, _ in window) + max(0, run.expected - len(window))
    p50, p90, p99, top = (float(x) for x in stats)
    cpu = run.server_cpu, run.client_cpu
    return Row(phase, pinned, connections, target, run.expected, rate, p50, p90, p99, top, errors, *cpu)


def cpu_per_request(row: Row) -> float:
    """Server CPU milliseconds per answered request: the share of one core over the window, over the rate."""
    return row.server_cpu / row.per_second * 1e3 if row.per_second else float("nan")


def table(rows: list[Row]) -> str:
    lines = [
        "| phase | pinned | conns | target | requests | achieved /s | p50 ms | p90 ms | p99 ms | max ms | errors "
        "| server CPU | client CPU | note |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.phase} | {'yes' if r.pinned else 'no'} | {r.connections} | {r.target} | {r.requests:,} "
            f"| {r.per_second:,.0f} | {r.p50:.1f} | {r.p90:.1f} | {r.p99:.1f} | {r.max:.1f} | {r.errors:,} "
            f"| {r.server_cpu:.0%} | {r.client_cpu:.0%} | {r.note} |"
        )
    return "\n".join(lines)


def machine() -> str:
    info = provenance.machine()
    load = ", ".join(f"{x:.2f}" for x in info["load_average"])
    cores = f"`nproc` {len(os.sched_getaffinity(0))} ({info['cores']} CPUs)"
    return f"{cores}, {info['cpu']}; load average at start {load}"


# ---- the server ----------------------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the uvicorn supervisor and its worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):  # a process that just ended
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for parent in frontier for child in children.get(parent, [])]
        tree += frontier
    return tree


def process_cpu(pid: int) -> float:
    """CPU seconds of the process tree so far: utime + stime of every thread of every process."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of every process of the tree (sched_setaffinity on a pid moves only that one thread)."""
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{member}/task").iterdir():
                with contextlib.suppress(ProcessLookupError):  # a thread that just ended
                    os.sched_setaffinity(int(task.name), cpus)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def health(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        return dict(json.load(response))


@contextlib.contextmanager
def serving(
    command: list[str], env: dict[str, str], port: int, log: Path, timeout: float, workers: int
) -> Iterator[int]:
    """`shoprec serve` running, healthy and every worker started (a worker still loading when the connections open
    leaves them all to the others); stopped (SIGINT, then SIGKILL) however the block ends."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise SystemExit(f"server exited with {process.returncode}; see {log}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"no /health after {timeout:.0f} s; see {log}")
            try:
                health(port)
                if log.read_bytes().count(b"Application startup complete") >= workers:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        yield process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        print(f"server stopped (exit {process.returncode}); log: {log}")


@contextlib.contextmanager
def database(url: str | None, directory: Path) -> Iterator[tuple[str, Callable[[], int]]]:
    """A fresh store: SQLite in ``directory``, or a throwaway database bench_<pid> on the PostgreSQL server of
    ``url``, dropped afterwards. Yields its URL and a count of its events read straight from the database."""
    if url is None:
        path = directory / "bench.sqlite3"

        def count_sqlite() -> int:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
                return int(connection.execute("SELECT count(*) FROM events").fetchone()[0])

        yield f"sqlite:///{path}", count_sqlite
        return
    parts = urllib.parse.urlsplit(url)
    admin = parts._replace(scheme="postgresql").geturl()  # libpq wants no driver name
    name = f"bench_{os.getpid()}"
    fresh = parts._replace(path=f"/{name}")

    def psql(target: str, sql: str) -> str:
        return subprocess.run(["psql", target, "-Atqc", sql], check=True, capture_output=True, text=True).stdout

    psql(admin, f"CREATE DATABASE {name}")
    try:
        yield (
            fresh.geturl(),
            lambda: int(psql(fresh._replace(scheme="postgresql").geturl(), "SELECT count(*) FROM events")),
        )
    finally:
        psql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# ---- the benchmark -------------------------------------------------------------------------------------------


def ensure_model(model_dir: Path, data: Path) -> None:
    if model_dir.exists():
        return
    command = [str(BIN / "shoprec"), "train", "--data", str(data), "--config", "configs/demo/sasrec.toml"]
    command += ["--out", str(model_dir)]
    print(f"{model_dir} does not exist: training it first (minutes): {shlex.join(command)}", flush=True)
    subprocess.run(command, check=True)


def seeded_ids(data: Path) -> tuple[list[str], list[str]]:
    """Raw user ids (first column) and item ids of the dataset's sequences.txt, as the server was seeded."""
    users: list[str] = []
    items: set[str] = set()
    with (data / "sequences.txt").open() as lines:
        for line in lines:
            user, *history = line.split()
            users.append(user)
            items.update(history)
    return users, sorted(items, key=lambda item: (len(item), item))


def check_personal(port: int, data: Path) -> None:
    """A seeded user must get a personal feed: a cold-start answer means the pseudonym keys differ, and the load
    test would measure the popularity fallback instead of the model."""
    user = seeded_ids(data)[0][0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/users/{user}/recommendations?k=10", timeout=30) as answer:
        if json.load(answer)["cold_start"]:
            raise SystemExit(f"seeded user {user!r} got a cold-start feed: the server does not know the seeded users")


async def phases(args: argparse.Namespace, port: int, pid: int, key: str, count: Callable[[], int]) -> list[Row]:
    users, items = seeded_ids(args.data)
    rng = random.Random(args.seed)
    feeds = [get(f"/v1/users/{user}/recommendations?k=10", port) for user in users]

    def feed() -> bytes:
        return rng.choice(feeds)

    def batch_body() -> bytes:
        events = [
            {"user_id": rng.choice(users), "item_id": rng.choice(items), "type": "view"} for _ in range(args.batch)
        ]
        return post("/v1/events", port, json.dumps({"events": events}).encode(), key)

    batches = [batch_body() for _ in range(64)]  # built ahead, so the client spends its time sending

    def batch() -> bytes:
        return rng.choice(batches)

    everywhere = os.sched_getaffinity(0)
    rows: list[Row] = []

    def place(pinned: bool) -> str:
        pin(pid, {0} if pinned else everywhere)
        os.sched_setaffinity(0, {1} if pinned else everywhere)
        return "pinned (server CPU 0, client CPU 1)" if pinned else "unpinned"

    def show(row: Row) -> None:
        rows.append(row)
        print(table([row]).splitlines()[-1], flush=True)

    modes = {"off": [False], "on": [True], "both": [False, True]}[args.pin]
    for pinned in modes:  # every feed run before any ingest, which lengthens the histories the feed reads
        label = place(pinned)
        print(f"feed, closed loop, {args.concurrency} connections, {label} ...", flush=True)
        run = await closed_loop(port, pid, feed, feed_check, args.concurrency, args.warmup, args.duration)
        show(summarise("feed closed loop", run, pinned, args.concurrency, "max"))
        print(f"feed, open loop, {args.rate:g} req/s, {label} ...", flush=True)
        run = await open_loop(port, pid, feed, feed_check, args.rate, args.open_connections, args.warmup, args.duration)
        show(summarise("feed open loop", run, pinned, args.open_connections, f"{args.rate:g}/s"))
        await rerank_costs(args, port, pid, feeds, rng, pinned, label, show)
    if args.llm != "none":
        place(False)
        await with_chat(args, port, pid, key, rng, users, feed, show)
    for pinned in modes if args.ingest_connections else []:
        label = place(pinned)
        print(f"ingest, {args.batch:,} events a batch, {args.ingest_connections} connections, {label} ...", flush=True)
        before, stored_before = health(port)["events"], count()
        check = ingest_check(args.batch)
        run = await closed_loop(port, pid, batch, check, args.ingest_connections, args.warmup, args.duration)
        acknowledged = sum(units for *_, units in run.records)
        grew, health_grew = count() - stored_before, health(port)["events"] - before
        verdict = "OK" if grew == health_grew == acknowledged and not run.transport_errors else "MISMATCH"
        row = summarise("ingest (events/s)", run, pinned, args.ingest_connections, f"{args.batch:,}/batch", True)
        row.note = f"{verdict}: acknowledged {acknowledged:,}, store +{grew:,}, /health +{health_grew:,}"
        show(row)
    return rows


async def rerank_costs(
    args: argparse.Namespace,
    port: int,
    pid: int,
    feeds: list[bytes],
    rng: random.Random,
    pinned: bool,
    label: str,
    show: Callable[[Row], None],
) -> None:
    """For each set of re-ranking knobs, the plain feed and then the same feeds with the knobs, at a rate the server
    keeps up with (a saturated server's CPU per feed says nothing): the difference in server CPU per feed between the
    two runs side by side (this machine's speed drifts over minutes) is what the knobs cost."""
    for knobs in args.rerank:
        plain: Row | None = None
        for query in ("", knobs):
            asked = [r.replace(b"?k=10", f"?k=10&{query}".encode(), 1) for r in feeds] if query else feeds
            print(f"feed ?{query or 'k=10'}, open loop, {args.rerank_rate:g} req/s, {label} ...", flush=True)
            choose = functools.partial(rng.choice, asked)
            run = await open_loop(
                port, pid, choose, feed_check, args.rerank_rate, args.open_connections, args.warmup, args.duration
            )
            phase = f"feed open loop ?{query}" if query else "feed open loop, no knobs"
            row = summarise(phase, run, pinned, args.open_connections, f"{args.rerank_rate:g}/s")
            row.note = f"server CPU {cpu_per_request(row):.2f} ms a feed"
            if plain is not None:
                row.note += f", {cpu_per_request(row) - cpu_per_request(plain):+.2f} ms against no knobs just before"
            plain = plain or row
            show(row)


async def with_chat(
    args: argparse.Namespace,
    port: int,
    pid: int,
    key: str,
    rng: random.Random,
    users: list[str],
    feed: Callable[[], bytes],
    show: Callable[[Row], None],
) -> None:
    """Feed and search open loops without, then with, one client sending chat turns back to back."""
    queries = [get(f"/v1/search?k=10&q={urllib.parse.quote(q)}", port) for q in SEARCHES]
    chats = [
        post("/v1/chat", port, json.dumps({"message": m, "user_id": rng.choice(users)}).encode(), key)
        for m in CHAT_MESSAGES
    ]
    turns = itertools.cycle(chats)

    def search() -> bytes:
        return rng.choice(queries)

    def chat() -> bytes:
        return next(turns)

    loads = (("feed", feed, args.rate), ("search", search, args.search_rate))
    print(f"search, open loop, {args.search_rate:g} req/s, alone ...", flush=True)
    run = await open_loop(port, pid, search, feed_check, args.search_rate, args.open_connections, args.warmup,
                          args.duration)  # fmt: skip
    show(summarise("search open loop", run, False, args.open_connections, f"{args.search_rate:g}/s"))
    for name, requests, rate in loads:
        print(f"{name}, open loop, {rate:g} req/s, while chat turns run ...", flush=True)
        loaded, chatted = await asyncio.gather(
            open_loop(port, pid, requests, feed_check, rate, args.open_connections, args.warmup, args.duration),
            closed_loop(port, pid, chat, chat_check, 1, args.warmup, args.duration),
        )
        show(summarise(f"{name} open loop + chat", loaded, False, args.open_connections, f"{rate:g}/s"))
        row = summarise(f"chat during {name}", chatted, False, 1, "max")
        row.note = "one client, turns back to back; latency per turn"
        show(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("runs/demo/sasrec"))
    parser.add_argument("--data", type=Path, default=Path("data/amazon_beauty"))
    parser.add_argument("--database-url", help="postgresql+psycopg://user@host:port/db: bench in a throwaway db there")
    parser.add_argument("--cache-dir", type=Path, default=Path("runs/cache"))
    parser.add_argument("--search-encoder", choices=["e5", "minilm"], default="e5")
    parser.add_argument("--workers", type=int, default=2, help="server processes (shoprec serve --workers)")
    parser.add_argument(
        "--llm", choices=["none", "local"], default="none", help="the assistant's LLM; local adds the chat phases"
    )
    parser.add_argument("--search-rate", type=float, default=50.0, help="requests/s of the search open loop")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before each measured phase")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per phase")
    parser.add_argument("--concurrency", type=int, default=8, help="connections of the closed loop")
    parser.add_argument("--rate", type=float, default=500.0, help="requests/s of the open loop")
    parser.add_argument("--open-connections", type=int, default=64, help="connections the open loop may use")
    parser.add_argument(
        "--rerank",
        nargs="*",
        default=["diversity=0.5", "calibration=0.5", "diversity=0.5&tail_share=0.3&provider_share=0.2"],
        help="query strings of re-ranking knobs: a feed open loop without them, then one with, each (none: skip)",
    )
    parser.add_argument("--rerank-rate", type=float, default=150.0, help="requests/s of the re-ranking open loops")
    parser.add_argument("--batch", type=int, default=1000, help="events per ingest request")
    parser.add_argument("--ingest-connections", type=int, default=2, help="0 skips the ingest phase")
    parser.add_argument("--pin", choices=["off", "on", "both"], default="off", help="server on CPU 0, client on CPU 1")
    parser.add_argument("--startup-timeout", type=float, default=1200.0, help="seconds (a cold E5 cache: minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/serve.md"))
    args = parser.parse_args()
    if args.pin != "off" and len(os.sched_getaffinity(0)) < 2:
        parser.error("--pin needs two CPUs")

    def interrupted(_signal: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # so that SIGTERM stops the server too

    signal.signal(signal.SIGTERM, interrupted)
    ensure_model(args.model_dir, args.data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = args.out.with_suffix(".log")
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = machine()
    port, key = free_port(), secrets.token_urlsafe(24)
    env = os.environ | {"SHOPREC_API_KEY": key, "SHOPREC_PSEUDONYM_KEY": secrets.token_hex(32)}
    env["SHOPREC_LLM_BACKEND"] = args.llm
    with (
        tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch,
        database(args.database_url, Path(scratch)) as db,
    ):
        url, count = db
        command = [str(BIN / "shoprec"), "serve", "--model-dir", str(args.model_dir), "--data", str(args.data)]
        command += ["--database-url", url, "--port", str(port), "--cache-dir", str(args.cache_dir)]
        command += ["--search-encoder", args.search_encoder, "--workers", str(args.workers)]
        print(
            f"starting {shlex.join(command)}\n  (seeds the fresh store; a cold encoder cache takes minutes)", flush=True
        )
        with serving(command, env, port, log, args.startup_timeout, args.workers) as pid:
            info = health(port)
            print(f"healthy: {info}", flush=True)
            check_personal(port, args.data)
            print("client and server share this machine's cores: the client's own CPU use is reported", flush=True)
            rows = asyncio.run(phases(args, port, pid, key, count))
    report = "\n".join(
        [
            "# shoprec serve under load (loopback)",
            "",
            f"- machine: {header}",
            f"- date: {started}",
            f"- command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`",
            f"- server: `shoprec serve --workers {args.workers}` (uvicorn, uvloop + httptools), model "
            f"{info['model_version']}, "
            f"{info['items']:,} items, fresh store {info['store']} seeded with {info['events']:,} events, "
            f"search encoder {args.search_encoder}, assistant LLM {info.get('llm', 'none')}",
            "- client: this script, one asyncio thread, keep-alive HTTP/1.1. It shares the CPUs with the server "
            "(and with anything else running); `pinned` rows put the server on CPU 0 and the client on CPU 1.",
            f"- each phase: {args.warmup:g} s warm-up, then {args.duration:g} s measured. Feed: `GET "
            "/v1/users/{id}/recommendations?k=10`, random seeded users. Closed loop: requests sent in the window; "
            "open loop: requests due in the window, latency from the due time (queueing counts). Ingest: `POST "
            f"/v1/events`, {args.batch:,} view events a batch, answered after the durable commit; latency per batch.",
            "- errors: non-200, wrong answers, transport errors, requests never answered. CPU: share of one core "
            "over the window (server: all its threads).",
            "",
            table(rows),
            "",
        ]
    )
    args.out.write_text(report)
    print(f"\n{report}\nwritten to {args.out}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted")
