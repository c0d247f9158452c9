"""Benchmark of the reference notebook's methods against the pipeline's code (``python -m bench.compare``)."""
