"""Every command answers `--help`, `-h` and `attnscope help CMD` with its own usage, exit 0
(issue 17's interface: `attnscope COMMAND --help` exits 0 and prints that command's usage)."""
import subprocess

import pytest

from rips_reference import ATTNSCOPE


def command_names():
    p = subprocess.run([ATTNSCOPE, "--help"], capture_output=True, text=True, check=True)
    lines = p.stdout.split("commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    names = [ln.split()[0] for ln in lines if ln.startswith("  ") and ln.split()]
    assert len(names) >= 20, names
    return names


@pytest.mark.parametrize("name", command_names())
@pytest.mark.parametrize("form", ["--help", "-h", "help"])
def test_command_help(name, form):
    args = ["help", name] if form == "help" else [name, form]
    p = subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)
    assert p.returncode == 0, (args, p.stderr)
    assert name in p.stdout, (args, p.stdout[:200])
    assert "usage" in p.stdout.lower(), (args, p.stdout[:200])
    assert "commands:" not in p.stdout, "printed the general usage, not the command's"


def test_help_unknown_command():
    p = subprocess.run([ATTNSCOPE, "help", "no-such-command"], capture_output=True, text=True)
    assert p.returncode == 2 and "unknown command" in p.stderr
