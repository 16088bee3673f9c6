"""Parts of bench/bench_pipeline.py: the anchor overlay, the Collector's telemetry, the load, the probes."""
