"""The guided lessons, numbered notebooks read in order; `run.py` executes them (tests and refresh)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(Path(__file__).parent.glob("[0-9][0-9]_*.ipynb"))
