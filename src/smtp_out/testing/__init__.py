"""The hermetic test network (resolver, sink MX, app and outsider clients) and its peer image,
for the Docker-backed tests and the benchmarks."""
