"""Execute the lesson notebooks top to bottom in a fresh kernel: what the tests check, and what
`python -m notebooks` uses to refresh the outputs kept in the committed files.

Each notebook runs in an empty temporary directory with this checkout first on the import path, so
whatever it writes lands outside the repository and the code it teaches is this checkout's.
"""

import os
import tempfile

import nbformat
from nbclient import NotebookClient

from . import NOTEBOOKS, ROOT  # noqa: F401  (the tests take them from here)


def execute(path, timeout=600):
    """The notebook at `path` run top to bottom (an error raises nbclient's CellExecutionError); the
    file itself is not touched."""
    nb = nbformat.read(path, as_version=4)
    kernel_env = dict(os.environ)
    kernel_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), kernel_env.get("PYTHONPATH")]))
    kernel_env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    with tempfile.TemporaryDirectory(prefix="microjax-notebook-") as cwd:
        # record_timing off: no timestamps in the kept outputs, so a refresh changes only what changed
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                                extra_arguments=["--IPKernelApp.log_level=ERROR"],  # not its TCP notice
                                resources={"metadata": {"path": cwd}})
        client.execute(env=kernel_env)
    return nb
