"""Benchmarks of deepinfra-magic against baselines measured in the same run.

Run them all with ``python -m bench.run`` from the repository root.
"""
