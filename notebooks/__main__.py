"""python -m notebooks [NAME ...]: run the lesson notebooks (all, or those whose file names contain a
NAME) top to bottom and write their outputs back into the files, as committed. The tests run them the
same way, without writing."""

import time

from train.cli import ArgumentParser, UserError, run as run_cli

from . import NOTEBOOKS


def build_parser():
    p = ArgumentParser(prog="python -m notebooks", description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", metavar="NAME", help="e.g. 01 or microgpt (default: every notebook)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    chosen = [path for path in NOTEBOOKS if not args.names or any(n in path.name for n in args.names)]
    if not chosen:
        raise UserError(f"no notebook matches {' '.join(args.names)}; there are "
                        + ", ".join(path.name for path in NOTEBOOKS))
    try:
        import nbformat

        from .run import execute
    except ImportError as e:
        raise UserError(f"running the notebooks needs Jupyter's packages ({e.name} is missing): "
                        "pip install -e '.[notebooks]'") from None
    for path in chosen:
        start = time.perf_counter()
        nb = execute(path)
        nbformat.write(nb, path)
        print(f"{path.name}: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    run_cli(main)
