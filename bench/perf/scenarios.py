"""The measured scenarios of ``make bench``: fan-out (REST or GraphQL subscribers, open-loop writes) and connects.

Latency is measured from just before a write's HTTP ``PATCH`` is sent to the frame's arrival at the client (so it
includes the write and its commit). Each write sets the product's ``stock`` to a unique marker; a frame carries the
marker of the row state it shows, so a frame that shows a later write's state is counted as such (``own_state``).
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.perf.clients import Worker, Writer

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REST_SUBSCRIBE = {"type": "subscribe", "collection": "products", "query": {"fields": ["id", "stock"]}, "uid": "b"}
GRAPHQL_SUBSCRIPTION = "subscription { products_mutated { key event data { id stock } } }"
DRAIN_QUIET_SECONDS = 3.0  # after the last write: frames stopped arriving for this long
DRAIN_MAX_SECONDS = 20.0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(len(values) * fraction))]


@dataclass
class Target:
    """What the fan-out workers connect to: socket URLs (spread over the server processes) and the pids to measure."""

    rest_urls: list[str]
    graphql_urls: list[str]
    pids: list[int]
    http: str  # where the writer writes
    token: str
    key: int  # the product written to
    # Each Likha process's HTTP address: its event counters (/server/info, as the admin) tell how each event's
    # frames were read (``committed_reads``: from the rows as committed, ``rereads``: from the database).
    counters: list[str] = field(default_factory=list)


def event_counters(target: Target) -> dict[str, int]:
    """The sum of the processes' ``committed_reads`` and ``rereads`` (empty for a baseline)."""
    totals = {"committed_reads": 0, "rereads": 0}
    for http in target.counters:
        request = urllib.request.Request(http + "/server/info", headers={"Authorization": f"Bearer {target.token}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            events = json.loads(response.read())["data"]["events"]
        for name in totals:
            totals[name] += int(events[name])
    return totals if target.counters else {}


def spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if n < total % parts else 0) for n in range(parts)]


class Subscribers:
    """``subscribers`` sockets of ``kind`` (rest | graphql) over the target's processes, subscribed and warmed up
    (every socket has had an event frame); ``measure`` runs rounds of writes on them; ``results`` tallies each
    round once the workers have stopped (their records are read at the end)."""

    def __init__(self, target: Target, markers: Iterator[int], *, kind: str, subscribers: int, workers: int = 4):
        self.target, self.markers, self.kind, self.subscribers = target, markers, kind, subscribers
        self.pool: list[Worker] = []
        self.writer = Writer(target.counters or [target.http], target.token)  # Likha: writes spread over its processes
        self.rounds: list[dict[str, Any]] = []
        self.rss_idle = [rss_kib(pid) for pid in target.pids]
        try:
            started = time.monotonic()
            ready = subscribe(self.pool, target, kind, subscribers, workers)
            self.connect_seconds = time.monotonic() - started
            self.rss_subscribed = [rss_kib(pid) for pid in target.pids]
            self.warmup = _warm_up(target, self.writer, markers, self.pool, ready)
            _drain(self.pool)  # the warm-up's frames are in: none of them is counted in a round
        except BaseException:
            self.close()
            raise

    def measure(self, rate: float, seconds: float) -> None:
        measured = list(itertools.islice(self.markers, max(1, round(rate * seconds))))
        counted = event_counters(self.target)
        cpu_before = [cpu_seconds(pid) for pid in self.target.pids]
        started = time.monotonic()
        schedule_seconds = self.writer.run(self.target.key, measured, rate)
        drained_after = _drain(self.pool)
        elapsed = time.monotonic() - started
        cpu = sum(cpu_seconds(pid) for pid in self.target.pids) - sum(cpu_before)
        counted = {name: value - counted[name] for name, value in event_counters(self.target).items()}
        self.rounds.append(
            {
                "rate": rate,
                "seconds": seconds,
                "measured": measured,
                "schedule_seconds": schedule_seconds,
                "drained_after": drained_after,
                "elapsed": elapsed,
                "cpu": cpu,
                "counted": counted,
            }
        )

    def results(self) -> list[dict[str, Any]]:
        """Stops the workers and tallies every round."""
        done = [worker.stop() for worker in self.pool]
        records: list[tuple[float, float]] = [record for worker in self.pool for record in worker.records()]
        self.close()
        common = {
            "connect_seconds": self.connect_seconds,
            "warmup": self.warmup,
            "done": done,
            "rss_idle": self.rss_idle,
            "rss_subscribed": self.rss_subscribed,
        }
        return [
            _tally(kind=self.kind, subscribers=self.subscribers, writer=self.writer, records=records, **common, **run)
            for run in self.rounds
        ]

    def close(self) -> None:
        self.writer.close()
        for worker in self.pool:
            worker.close()


def subscribe(
    pool: list[Worker], target: Target, kind: str, subscribers: int, workers: int, *, every: bool = True
) -> list[dict[str, Any]]:
    """Opens ``subscribers`` sockets of ``kind`` over ``workers`` load-generator processes (appended to ``pool``),
    each subscribed; the workers' ``ready`` lines. Raises unless every one subscribed (or, not ``every``, none)."""
    offset = 0
    for count in spread(subscribers, workers):
        config: dict[str, Any] = {"mode": "subscribe", "kind": kind, "count": count, "offset": offset}
        if kind == "rest":
            config.update(urls=target.rest_urls, subscribe=REST_SUBSCRIBE)
        else:
            config.update(urls=target.graphql_urls, token=target.token, query=GRAPHQL_SUBSCRIPTION)
            config["field"] = "products_mutated"
        pool.append(Worker(config))
        offset += count
    ready = [worker.wait_for("ready", 900) for worker in pool]
    opened = sum(line["ready"] for line in ready)
    if opened < (subscribers if every else 1):
        raise RuntimeError(f"only {opened} of {subscribers} subscribed: {[line['errors'] for line in ready]}")
    return ready


def idle_memory(target: Target, subscribers: int, workers: int = 4) -> dict[str, Any]:
    """RSS per idle subscribed REST socket: every server process's RSS before ``subscribers`` sockets connect and
    once they are subscribed (no event sent), per socket that subscribed, for the baselines' floor beside Likha's
    figure. (Baseline (a)'s channel layer refuses a few of 10,000 connects at once: its Redis pool is the default.)"""
    pool: list[Worker] = []
    try:
        idle = [rss_kib(pid) for pid in target.pids]
        ready = subscribe(pool, target, "rest", subscribers, workers, every=False)
        opened = sum(line["ready"] for line in ready)
        subscribed = [rss_kib(pid) for pid in target.pids]
    finally:
        for worker in pool:
            worker.close()
    return {
        "subscribers": subscribers,
        "subscribed": opened,
        "rss_kib_idle": idle,
        "rss_kib_subscribed": subscribed,
        "rss_kib_per_connection": round((sum(subscribed) - sum(idle)) / opened, 2),
    }


def fanout(
    target: Target,
    markers: Iterator[int],
    *,
    kind: str,
    subscribers: int,
    rate: float,
    seconds: float,
    rounds: int = 1,
) -> list[dict[str, Any]]:
    """``rounds`` rounds of ``rate`` writes/s for ``seconds`` on ``subscribers`` sockets of ``kind``."""
    clients = Subscribers(target, markers, kind=kind, subscribers=subscribers)
    for _ in range(rounds):
        clients.measure(rate, seconds)
    return clients.results()


def _warm_up(
    target: Target, writer: Writer, markers: Iterator[int], pool: list[Worker], ready: list[dict[str, Any]]
) -> int:
    """Writes (not measured) until every socket has had an event frame: every subscription is live."""
    deadline = time.monotonic() + 120
    writes = 0
    while time.monotonic() < deadline:
        writer.run(target.key, [next(markers)], 1.0)
        writes += 1
        heard = [worker.status()["heard"] for worker in pool]
        if all(h >= line["ready"] for h, line in zip(heard, ready, strict=True)):
            return writes
    raise RuntimeError("warm-up: some subscriptions never received an event within 120 s")


def _drain(pool: list[Worker]) -> float:
    """After the last write: until no frame arrived for DRAIN_QUIET_SECONDS (at most DRAIN_MAX_SECONDS)."""
    started = time.monotonic()
    last_total, last_change = -1, started
    while time.monotonic() - started < DRAIN_MAX_SECONDS:
        total = sum(worker.status()["frames"] for worker in pool)
        now = time.monotonic()
        if total != last_total:
            last_total, last_change = total, now
        elif now - last_change >= DRAIN_QUIET_SECONDS:
            break
        time.sleep(0.25)  # polling the workers' counters, not synchronising on a guess
    return last_change - started


def _tally(**run: Any) -> dict[str, Any]:
    measured: list[int] = run["measured"]
    writer: Writer = run["writer"]
    ok = {marker for marker in measured if writer.status.get(marker, 0) == 200}
    subscribers = run["subscribers"]
    counts: Counter[int] = Counter()
    latencies: list[float] = []
    first, last = float("inf"), 0.0
    for marker_value, arrived in run["records"]:
        marker = int(marker_value)
        if marker not in ok:
            continue
        counts[marker] += 1
        latencies.append(arrived - writer.sent[marker])
        first, last = min(first, arrived), max(last, arrived)
    expected = len(ok) * subscribers
    frames = sum(counts.values())
    own = sum(min(counts[marker], subscribers) for marker in ok)
    latencies.sort()
    answers = sorted(writer.answered[marker] - writer.sent[marker] for marker in ok if marker in writer.answered)
    window = max((last - first) / 1000, 1e-9) if frames else 0.0
    return {
        "kind": run["kind"],
        "subscribers": subscribers,
        "rate": run["rate"],
        "seconds": run["seconds"],
        "writes": len(measured),
        "writes_ok": len(ok),
        "writes_ok_pct": round(100 * len(ok) / len(measured), 2),
        "write_schedule_seconds": round(run["schedule_seconds"], 2),
        "frames_expected": expected,
        "frames": frames,
        "delivered_pct": round(100 * frames / expected, 2) if expected else 0.0,
        "own_state_pct": round(100 * own / expected, 2) if expected else 0.0,
        # Delivered frames per second of the write schedule (writes / rate): with every frame delivered within the
        # p99, the rate the fan-out sustained. (From the first frame to the last, the latency spread counts against
        # it: 30 writes/s to 1,000 subscribers could never reach 30,000 that way.)
        "frames_per_s": round(frames / (len(measured) / run["rate"])) if frames else 0,
        "frames_per_s_first_to_last": round(frames / window) if frames else 0,
        "p50_ms": _ms(statistics.median(latencies) if latencies else None),
        "p99_ms": _ms(percentile(latencies, 0.99)),
        "max_ms": _ms(latencies[-1] if latencies else None),
        # The HTTP write's own answer time: the part of each frame's latency before the event exists.
        "write_p50_ms": _ms(statistics.median(answers) if answers else None),
        "write_p99_ms": _ms(percentile(answers, 0.99)),
        "server_cpu_ms_per_frame": round(1000 * run["cpu"] / frames, 4) if frames else None,
        "server_cpu_pct": round(100 * run["cpu"] / run["elapsed"], 1),
        "connect_seconds": round(run["connect_seconds"], 1),
        "warmup_writes": run["warmup"],
        "drained_after_s": round(run["drained_after"], 2),
        "client_closed": sum(line.get("closed", 0) for line in run["done"]),
        "client_unexpected": sum(line.get("unexpected", 0) for line in run["done"]),
        "rss_kib_idle": run["rss_idle"],
        "rss_kib_subscribed": run["rss_subscribed"],
        "rss_kib_per_connection": round((sum(run["rss_subscribed"]) - sum(run["rss_idle"])) / max(1, subscribers), 2),
        "writes_per_s_achieved": round(len(ok) / max(run["schedule_seconds"], 1e-9), 1),
        # Per write, over all processes: batch reads made from the committed rows, and re-read from the database.
        **{f"{name}_per_event": round(value / max(1, len(measured)), 2) for name, value in run["counted"].items()},
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def connects(
    urls: list[str], token: str | None, pids: list[int], *, concurrency: int, seconds: float
) -> dict[str, Any]:
    """``concurrency`` clients connecting over and over for ``seconds`` (with ``token``: connect → auth → ok →
    close; without: connect → open → close); connects/s and server CPU per connect."""
    pool: list[Worker] = []
    try:
        cpu_before = [cpu_seconds(pid) for pid in pids]
        for n, count in enumerate(spread(concurrency, 4)):
            config: dict[str, Any] = {
                "mode": "connect" if token else "bare",
                "urls": urls,
                "token": token,
                "concurrency": count,
                "seconds": seconds,
                "offset": n,
            }
            pool.append(Worker(config))
        done = [worker.wait_for("done", seconds + 120) for worker in pool]
        cpu = sum(cpu_seconds(pid) for pid in pids) - sum(cpu_before)
    finally:
        for worker in pool:
            worker.close()
    total = sum(line["connects"] for line in done)
    latencies = sorted(value for line in done for value in line["latencies_ms"])
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        "connects": total,
        "failed": sum(line["failed"] for line in done),
        "connects_per_s": round(total / seconds, 1),  # each worker connects for exactly ``seconds``
        "server_cpu_ms_per_connect": round(1000 * cpu / total, 2) if total else None,
        "p50_ms": _ms(statistics.median(latencies) if latencies else None),
        "p99_ms": _ms(percentile(latencies, 0.99)),
    }
