"""The lessons in notebooks/: each runs top to bottom in a fresh kernel, and the committed copies keep
the outputs of such a run (pictures included) so that a reader sees them without running anything."""

import nbformat
import pytest

from notebooks.__main__ import main as refresh
from notebooks.run import NOTEBOOKS, ROOT, execute
from train.lib.errors import UserError


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def pictures(nb):
    return [o for c in code_cells(nb) for o in c.outputs if "image/png" in o.get("data", {})]


def test_committed_notebooks_say_how_to_run_and_keep_one_runs_outputs():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01_", "02_", "03_", "04_"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        intro = nb.cells[0]
        assert intro.cell_type == "markdown" and intro.source.startswith("# ")
        assert ("pip install -e '.[notebooks]'" in intro.source or "pip install -e '.[test]'" in intro.source) \
            and "Colab" in intro.source, path.name
        cells = code_cells(nb)
        # kept outputs come from one top-to-bottom run (python -m notebooks), not from cells run by hand
        assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), path.name
        assert not [o for c in cells for o in c.outputs if o.output_type == "error"], path.name
        assert pictures(nb), f"{path.name} shows no picture"
        for c in cells:  # no shell escapes, installs or downloads: a reader offline can run every cell
            assert not any(line.lstrip().startswith(("!", "%pip")) for line in c.source.splitlines()), path.name
            assert "http" not in c.source, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_in_a_fresh_kernel(path):
    before = path.read_bytes()
    nb = execute(path)  # raises on the first cell that fails
    assert path.read_bytes() == before  # the committed file is not rewritten by the test
    cells = code_cells(nb)
    assert all(c.execution_count for c in cells)
    assert pictures(nb)


def test_readme_learn_section_lists_every_notebook_in_order():
    readme = (ROOT / "README.md").read_text()
    learn = readme[readme.index("## Learn") : readme.index("## The main job")]
    positions = [learn.find(f"`{p.name}`") for p in NOTEBOOKS]
    assert -1 not in positions and positions == sorted(positions)
    assert "outputs kept" in learn


def test_refresh_command_refuses_a_name_that_matches_no_notebook():
    with pytest.raises(UserError, match="no notebook matches nothing; there are 01_scalar_engine.ipynb"):
        refresh(["nothing"])
