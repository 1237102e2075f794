"""What every entry point shares: one-line errors for bad input instead of tracebacks."""

import os
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


def enable_compilation_cache():
    """Turn on JAX's persistent compilation cache, so a second run skips compiling: in
    ~/.cache/microjax/jax unless JAX_COMPILATION_CACHE_DIR names another place."""
    import jax

    from .data import cache_dir

    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax"))
    if not os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
