"""Benchmarks for integ-bot. `make bench` runs `python -m bench.status_latency`."""
