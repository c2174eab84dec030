"""Benchmarks: measuring (measure, load) apart from what was measured (results) and how it is
reported (report: markdown, chart, JSON under bench/results/)."""

#: Client connection counts of the load runs, unless --concurrency says otherwise.
DEFAULT_CONCURRENCY = (1, 4, 16)
#: The parts `invoke bench` runs, in order, unless --parts says otherwise.
PARTS = ("image", "startup", "checks", "report", "load", "rollout")
