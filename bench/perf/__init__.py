"""``make bench``: Likha's fan-out and connects measured by a load generator that is never the bottleneck (Node
workers of their own, bench/perf/loadgen.mjs), with baselines measured in the same run."""
