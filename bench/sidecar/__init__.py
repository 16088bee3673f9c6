"""Support modules of bench/bench_sidecar.py: workload, PII corpus, sink, Collector config."""
