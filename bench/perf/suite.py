"""``make bench``: every issue-12 target measured against Likha (2 daphne processes on Redis and the database that
DATABASE_URL names, PostgreSQL in ``make bench``), with the baselines measured in the same run, each figure the
median of ``--rounds`` rounds (3). Prints each target with its measured value and PASS/FAIL, writes the raw figures
to a JSON file and the table to docs/BENCHMARKS.md (between its "make bench" markers); exits 1 when a target fails.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.perf.clients import ROOT, node
from bench.perf.cluster import channels_baseline, daphne_baseline, likha, websockets_baseline
from bench.perf.scenarios import Subscribers, Target, connects, idle_memory

DOC = ROOT / "docs" / "BENCHMARKS.md"
BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"
MEMORY_BASELINES = ["baseline_a_memory", "baseline_c_memory", "baseline_b_memory"]
PACKAGES = ["django", "channels", "channels-redis", "daphne", "djangorestframework-simplejwt", "websockets"]


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def median(rows: list[dict[str, Any]], key: str) -> Any:
    values = [row[key] for row in rows if row.get(key) is not None]
    return statistics.median(values) if values else None


@dataclass
class Check:
    name: str
    measured: Any
    target: str
    passed: bool

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.measured} (target {self.target})"


def at_most(value: Any, limit: float) -> bool:
    return value is not None and value <= limit


def at_least(value: Any, limit: float) -> bool:
    return value is not None and value >= limit


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.markers: Iterator[int] = itertools.count(1000)
        self.raw: dict[str, Any] = {}
        self.checks: list[Check] = []

    def log(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def fanout(self, target: Target, name: str, kind: str, subscribers: int, plans: list[tuple[str, float]]) -> None:
        """One set of sockets, then for each (label, rate) ``rounds`` rounds; raw[name][label] = the rounds."""
        self.log(f"{name}: {subscribers} {kind} subscribers")
        clients = Subscribers(target, self.markers, kind=kind, subscribers=subscribers)
        labels = []
        for label, rate in plans:
            for _ in range(self.args.rounds):
                clients.measure(rate, self.args.seconds)
                labels.append(label)
        results = clients.results()
        for label, result in zip(labels, results, strict=True):
            self.raw.setdefault(name, {}).setdefault(label, []).append(result)
            self.log(
                f"  {label}: {result['delivered_pct']} % delivered, p50 {result['p50_ms']} / p99 {result['p99_ms']} ms,"
                f" {result['frames_per_s']} frames/s, own state {result['own_state_pct']} %"
            )

    def connects(self, target: Target, name: str, *, token: bool) -> None:
        urls = [url.split("?")[0] for url in target.rest_urls]
        rounds = []
        for _ in range(self.args.rounds):
            rounds.append(connects(urls, target.token if token else None, target.pids, concurrency=200, seconds=10))
            self.log(f"{name}: {rounds[-1]['connects_per_s']} connects/s, {rounds[-1]['server_cpu_ms_per_connect']} ms")
        self.raw[name] = rounds

    def memory(self, target: Target, name: str) -> None:
        """A baseline's RSS per idle subscribed socket at the largest scale (fresh processes: nothing freed before)."""
        size = max(self.args.scale)
        self.raw[name] = result = idle_memory(target, size)
        self.log(f"{name}: {result['rss_kib_per_connection']} KiB per socket at {result['subscribed']:,}")

    def run(self) -> None:
        rate_hi = self.args.throughput_rate
        with channels_baseline() as target:
            self.connects(target, "baseline_a_bare_connects", token=False)
        with websockets_baseline() as target:
            self.fanout(target, "baseline_b", "rest", 1000, [("throughput", rate_hi)])
        with likha() as target:
            self.connects(target, "likha_auth_connects", token=True)
            self.fanout(target, "rest_1000", "rest", 1000, [("latency", 10.0), ("throughput", rate_hi)])
            self.fanout(target, "graphql_1000", "graphql", 1000, [("latency", 10.0), ("throughput", rate_hi)])
        for size in self.args.scale:
            with likha() as target:
                self.fanout(target, f"scale_{size}", "rest", size, [("1/s", 1.0)])
        # What the server underneath holds per socket, beside Likha's figure: the memory target's floor. Last, so
        # that closing their 10,000 sockets weighs on no other figure.
        for name, baseline in (
            ("baseline_a_memory", channels_baseline),
            ("baseline_c_memory", daphne_baseline),
            ("baseline_b_memory", websockets_baseline),
        ):
            with baseline() as target:
                self.memory(target, name)

    def judge(self) -> None:
        raw, check = self.raw, self.checks.append
        auth = raw["likha_auth_connects"]
        bare = median(raw["baseline_a_bare_connects"], "connects_per_s")
        rate, cpu = median(auth, "connects_per_s"), median(auth, "server_cpu_ms_per_connect")
        check(Check("auth connects/s over 2 processes", rate, ">= 400", at_least(rate, 400)))
        check(Check("server CPU per authenticated connect (ms)", cpu, "<= 4", at_most(cpu, 4)))
        share = None if not bare or rate is None else round(100 * rate / bare, 1)
        check(Check("auth connects as % of baseline (a) bare connects", share, ">= 60 %", at_least(share, 60)))

        latency = raw["rest_1000"]["latency"]
        delivered = median(latency, "delivered_pct")
        p50, p99 = median(latency, "p50_ms"), median(latency, "p99_ms")
        check(Check("1,000 REST subscribers x 10 writes/s: delivered %", delivered, "100", delivered == 100))
        check(Check("... p50 (ms)", p50, "<= 40", at_most(p50, 40)))
        check(Check("... p99 (ms)", p99, "<= 100", at_most(p99, 100)))

        throughput = raw["rest_1000"]["throughput"]
        frames, p99_hi = median(throughput, "frames_per_s"), median(throughput, "p99_ms")
        check(Check("REST delivered frames/s (1,000 x 30 writes/s)", frames, ">= 30,000", at_least(frames, 30000)))
        check(Check("... p99 (ms)", p99_hi, "<= 250", at_most(p99_hi, 250)))
        ceiling = median(raw["baseline_b"]["throughput"], "frames_per_s")
        share_b = None if not ceiling or frames is None else round(100 * frames / ceiling, 1)
        check(Check("REST frames/s as % of baseline (b)", share_b, ">= 50 %", at_least(share_b, 50)))
        own = median(throughput, "own_state_pct")
        check(Check("frames carrying their own write's state (%)", own, "100", own == 100))
        # Every subscriber runs one query that Python can apply to the committed row: no database re-read at all,
        # and one read from the committed row per event and process (one batch per distinct query).
        rereads = median(throughput, "rereads_per_event")
        check(Check("database re-reads per event (one shared query)", rereads, "0", rereads == 0))
        batches = median(throughput, "committed_reads_per_event")
        check(Check("... reads per event, over 2 processes", batches, "<= 2", at_most(batches, 2)))
        writes = median(throughput, "writes_per_s_achieved")
        offered = self.args.throughput_rate
        check(
            Check(
                "HTTP writes/s kept during fan-out", writes, f">= {0.95 * offered:g}", at_least(writes, 0.95 * offered)
            )
        )

        gql_latency, gql_throughput = raw["graphql_1000"]["latency"], raw["graphql_1000"]["throughput"]
        g_delivered, g_p99 = median(gql_latency, "delivered_pct"), median(gql_latency, "p99_ms")
        check(Check("GraphQL 1,000 x 10 writes/s: delivered %", g_delivered, "100", g_delivered == 100))
        limit = None if p99 is None else 1.5 * p99
        wanted = "<= 1.5 x REST's" if limit is None else f"<= {limit:.1f}"
        check(Check("GraphQL p99 within 1.5x REST's (ms)", g_p99, wanted, limit is not None and at_most(g_p99, limit)))
        g_frames = median(gql_throughput, "frames_per_s")
        g_share = None if not frames or g_frames is None else round(100 * g_frames / frames, 1)
        check(Check("GraphQL frames/s as % of REST's", g_share, ">= 80 %", at_least(g_share, 80)))

        for size in self.args.scale:
            rounds = raw[f"scale_{size}"]["1/s"]
            self.raw.setdefault("scale_curve", []).append(
                {
                    "subscribers": size,
                    "delivered_pct": median(rounds, "delivered_pct"),
                    "p50_ms": median(rounds, "p50_ms"),
                    "p99_ms": median(rounds, "p99_ms"),
                    "server_cpu_ms_per_frame": median(rounds, "server_cpu_ms_per_frame"),
                    "rss_kib_per_connection": median(rounds, "rss_kib_per_connection"),
                }
            )
        largest = self.raw["scale_curve"][-1]
        size = largest["subscribers"]
        check(
            Check(
                f"{size:,} subscribers x 1 write/s: delivered %",
                largest["delivered_pct"],
                "100",
                largest["delivered_pct"] == 100,
            )
        )
        check(Check("... p99 (ms)", largest["p99_ms"], "<= 500", at_most(largest["p99_ms"], 500)))
        check(
            Check(
                f"RSS per idle subscribed connection at {size:,} (KiB)",
                largest["rss_kib_per_connection"],
                "<= 15",
                at_most(largest["rss_kib_per_connection"], 15),
            )
        )

    def machine(self) -> dict[str, Any]:
        versions = {}
        for name in PACKAGES:
            try:
                versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                versions[name] = None
        version = subprocess.run([node(), "--version"], capture_output=True, text=True, check=False)  # noqa: S603
        node_version = version.stdout.strip()
        with open("/proc/loadavg") as load:
            loadavg = load.read().split()[:3]
        return {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cores": len(__import__("os").sched_getaffinity(0)),
            "python": platform.python_version(),
            "node": node_version,
            "packages": versions,
            "load_average_at_end": loadavg,
            "command": " ".join(["python -m bench.perf.suite", *sys.argv[1:]]),
        }

    def write(self) -> None:
        machine = self.machine()
        Path(self.args.json).write_text(
            json.dumps({"machine": machine, "checks": [c.__dict__ for c in self.checks], "raw": self.raw}, indent=1)
        )
        self.render(machine)

    def floor(self) -> list[str]:
        """The memory baselines' line (absent from a JSON file written before they were measured)."""
        figures = [self.raw.get(name, {}).get("rss_kib_per_connection") for name in MEMORY_BASELINES]
        if None in figures:
            return []
        a, c, b = figures
        return [
            f"RSS per idle subscribed socket at {max(self.args.scale):,}, on fresh processes: (a) bare Channels relay "
            f"{a} KiB; (c) daphne alone, the barest ASGI application, {c} KiB; (b) websockets server {b} KiB.",
            "",
        ]

    def render(self, machine: dict[str, Any]) -> None:
        """The table in docs/BENCHMARKS.md, from ``machine``, the checks and the raw figures."""
        bare = median(self.raw["baseline_a_bare_connects"], "connects_per_s")
        ceiling = median(self.raw["baseline_b"]["throughput"], "frames_per_s")
        ceiling_p99 = median(self.raw["baseline_b"]["throughput"], "p99_ms")
        lines = [
            BEGIN,
            f"Last `make bench`: {machine['date']}, {machine['cores']} cores, Python {machine['python']}, Node "
            f"{machine['node']}; medians of {self.args.rounds} rounds of {self.args.seconds:g} s; raw figures in "
            f"`{shown(Path(self.args.json))}`.",
            "",
            f"Baselines in the same run: (a) bare Channels relay, {bare} bare connects/s over 2 processes; (b) minimal "
            f"websockets server, {ceiling} frames/s (p99 {ceiling_p99} ms) for 1,000 subscribers at "
            f"{self.args.throughput_rate:g} writes/s.",
            "",
            *self.floor(),
            "| target | measured | wanted | |",
            "|---|---|---|---|",
            *(f"| {c.name} | {c.measured} | {c.target} | {'PASS' if c.passed else 'FAIL'} |" for c in self.checks),
            "",
            "Scale (REST, 1 write/s):",
            "",
            "| subscribers | delivered % | p50 ms | p99 ms | server CPU ms per frame | RSS KiB per connection |",
            "|---|---|---|---|---|---|",
            *(
                f"| {row['subscribers']:,} | {row['delivered_pct']} | {row['p50_ms']} | {row['p99_ms']} | "
                f"{row['server_cpu_ms_per_frame']} | {row['rss_kib_per_connection']} |"
                for row in self.raw.get("scale_curve", [])
            ),
            END,
        ]
        text = DOC.read_text()
        if BEGIN in text and END in text:
            text = text[: text.index(BEGIN)] + "\n".join(lines) + text[text.index(END) + len(END) :]
        else:
            text = text.rstrip() + "\n\n## `make bench` (issue 12 targets)\n\n" + "\n".join(lines) + "\n"
        DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="of writes per round")
    parser.add_argument("--throughput-rate", type=float, default=30.0, help="writes/s of the throughput rounds")
    parser.add_argument("--scale", type=int, nargs="+", default=[100, 1000, 5000, 10000])
    parser.add_argument("--json", default=str(ROOT / "docs" / "benchmarks.json"))
    parser.add_argument("--render", action="store_true", help="only rewrite the table from the JSON file")
    args = parser.parse_args()
    suite = Suite(args)
    if args.render:
        saved = json.loads(Path(args.json).read_text())
        suite.raw, suite.checks = saved["raw"], [Check(**check) for check in saved["checks"]]
        suite.render(saved["machine"])
        return
    started = time.monotonic()
    suite.run()
    suite.judge()
    suite.write()
    print()
    for check in suite.checks:
        print(check.line())
    passed = sum(check.passed for check in suite.checks)
    print(f"\nmake bench: {time.monotonic() - started:.0f} s; {passed} of {len(suite.checks)} targets pass")
    sys.exit(0 if all(check.passed for check in suite.checks) else 1)


if __name__ == "__main__":
    main()
