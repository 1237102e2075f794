"""What every entry point shares: one-line errors for bad input instead of tracebacks."""

import sys


class UserError(Exception):
    """A problem with what the user asked for or gave us; its message is shown as one line."""


def run(main, argv=None):
    """Call main(argv); turn a UserError into `error: ...` on stderr and exit status 2."""
    try:
        return main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
