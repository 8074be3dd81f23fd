"""``kvcache-bench``'s command line as a user meets it: every subcommand's ``--help`` works,
with its dependencies installed or not, and a missing dependency is one line naming the fix."""

import subprocess
import sys

import pytest

from kvbench.cli import COMMANDS

# Runs kvcache-bench with the named top-level packages made unimportable (as in a virtualenv
# that lacks them), then the command line given.
WITHOUT = """
import builtins, sys
blocked = set(sys.argv[1].split(","))
real = builtins.__import__
def fake(name, *args, **kwargs):
    if name.split(".")[0] in blocked:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name.split(".")[0])
    return real(name, *args, **kwargs)
builtins.__import__ = fake
from kvbench import cli
sys.exit(cli.main(sys.argv[2:]))
"""


def kvcache_bench(*argv, without=()):
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, ",".join(without) or "-", *argv], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("without", [(), ("scipy", "asv", "asv_runner", "matplotlib", "mlx", "mlx_lm")])
def test_every_subcommands_help_exits_0_with_or_without_its_dependencies(command, without):
    done = kvcache_bench(command, "--help", without=without)
    assert done.returncode == 0, done.stderr
    assert command in done.stdout


def test_a_missing_dependency_is_one_line_that_names_the_install_and_exit_2():
    done = kvcache_bench("p95", "--no-html", "--json", "x.json", without=("scipy",))
    assert done.returncode == 2
    assert done.stderr == "kvcache-bench p95: needs the Python package 'scipy', not installed here: pip install scipy\n"


def test_an_unknown_option_is_still_refused():
    done = kvcache_bench("gate", "a", "b", "--bogus")
    assert done.returncode == 2 and "unrecognized arguments: --bogus" in done.stderr
