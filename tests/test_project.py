"""The README's two commands are the ones CI runs."""

import re

from .conftest import ROOT


def readme_commands():
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return block.strip().splitlines()


def test_readme_opens_with_the_main_job_and_the_test_command():
    main, tests = readme_commands()
    assert main.endswith("python -m train.gpt") and "pip install" in main
    assert tests.endswith("python -m pytest -q") and "[test]" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()
