"""`curate --help` and `curate COMMAND --help` stay instant: no torch, no faiss at start-up."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from curate.cli import COMMANDS, cli


def test_importing_the_cli_loads_neither_torch_nor_faiss():
    code = "import curate.cli, sys; assert 'torch' not in sys.modules and 'faiss' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_help_loads_neither_torch_nor_faiss(name):
    code = (f"import sys\nfrom curate.cli import main\ntry:\n    main([{name!r}, '--help'])\nexcept SystemExit:\n"
            "    pass\nassert 'torch' not in sys.modules and 'faiss' not in sys.modules, 'heavy import'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Usage: curate" in done.stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_listed_one_line_help_is_the_commands_own(name):
    command = cli.get_command(None, name)
    assert command.help.strip().splitlines()[0] == COMMANDS[name][1]


def test_group_help_lists_every_command():
    out = CliRunner().invoke(cli, ["--help"]).output
    assert all(f"  {name} " in out for name in COMMANDS)
