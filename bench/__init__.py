"""Benchmarks that print tables: `python -m bench`. Speed goals live here, never in timed tests."""
