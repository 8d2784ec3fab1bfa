"""``python -m bench.perf``: one scenario against Likha (2 daphne processes), printed as JSON (the full suite with
targets and baselines: ``make bench``)."""

from __future__ import annotations

import argparse
import itertools
import json
import sys

from bench.perf.cluster import channels_baseline, daphne_baseline, likha, websockets_baseline
from bench.perf.scenarios import connects, fanout, idle_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=["fanout", "connects", "memory"])
    parser.add_argument("--kind", choices=["rest", "graphql"], default="rest")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--server", choices=["likha", "channels", "daphne", "websockets"], default="likha")
    args = parser.parse_args()
    markers = itertools.count(1000)
    servers = {
        "likha": likha,
        "channels": channels_baseline,
        "daphne": daphne_baseline,
        "websockets": websockets_baseline,
    }[args.server]
    with servers(args.processes) as target:
        if args.scenario == "fanout":
            result: object = fanout(
                target,
                markers,
                kind=args.kind,
                subscribers=args.subscribers,
                rate=args.rate,
                seconds=args.seconds,
                rounds=args.rounds,
            )
        elif args.scenario == "memory":
            result = idle_memory(target, args.subscribers)
        else:
            urls = [url.split("?")[0] for url in target.rest_urls]
            result = connects(urls, target.token, target.pids, concurrency=args.concurrency, seconds=args.seconds)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
