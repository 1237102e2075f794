"""python -m notebooks [NAME ...]: run the notebooks (all, or those whose file names contain NAME)
and write their outputs back into the files, as committed. The tests run them the same way."""

import sys
import time

import nbformat

from .run import NOTEBOOKS, execute


def main(argv):
    chosen = [p for p in NOTEBOOKS if not argv or any(a in p.name for a in argv)]
    if not chosen:
        sys.exit(f"error: no notebook matches {' '.join(argv)}")
    for path in chosen:
        start = time.perf_counter()
        nb = execute(path)
        nbformat.write(nb, path)
        print(f"{path.name}: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
