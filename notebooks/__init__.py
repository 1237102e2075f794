"""The guided lessons, numbered notebooks read in order; `run.py` executes them (tests and refresh)."""
