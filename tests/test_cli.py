"""``kvcache-tracker``'s and ``kvcache-bench``'s command lines as a user meets them: every
subcommand's ``--help`` works, with its dependencies installed or not, and a missing dependency
is one line naming the fix."""

import subprocess
import sys

import pytest

import kvbench.cli
import kvtracker.cli

# Runs a command line's module (argv[1]) with the named top-level packages (argv[2]) made
# unimportable, as in a virtualenv that lacks them, then the command line given.
WITHOUT = """
import builtins, sys
module, blocked = sys.argv[1], set(sys.argv[2].split(","))
real = builtins.__import__
def fake(name, *args, **kwargs):
    if name.split(".")[0] in blocked:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name.split(".")[0])
    return real(name, *args, **kwargs)
builtins.__import__ = fake
import importlib
sys.exit(importlib.import_module(module).main(sys.argv[3:]))
"""


def command_line(*argv, without=(), module="kvtracker.cli"):
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, module, ",".join(without) or "-", *argv], capture_output=True, text=True, timeout=120
    )


COMMANDS = [("kvtracker.cli", c) for c in kvtracker.cli.COMMANDS] + [("kvbench.cli", c) for c in kvbench.cli.COMMANDS]


@pytest.mark.parametrize("module, command", COMMANDS)
@pytest.mark.parametrize("without", [(), ("scipy", "asv", "asv_runner", "matplotlib", "mlx", "mlx_lm")])
def test_every_subcommands_help_exits_0_with_or_without_its_dependencies(module, command, without):
    done = command_line(command, "--help", without=without, module=module)
    assert done.returncode == 0, done.stderr
    assert command in done.stdout


def test_a_missing_dependency_is_one_line_that_names_the_install_and_exit_2():
    done = command_line("p95", "--no-html", "--json", "x.json", without=("scipy",))
    assert done.returncode == 2
    assert done.stderr == "kvcache-tracker p95: needs the Python package 'scipy', not installed here: pip install scipy\n"


def test_an_unknown_option_is_still_refused():
    done = command_line("gate", "a", "b", "--bogus")
    assert done.returncode == 2 and "unrecognized arguments: --bogus" in done.stderr


def test_an_old_tracker_command_of_kvcache_bench_names_its_new_home():
    done = command_line("p95", "--no-html", module="kvbench.cli")
    assert done.returncode == 2
    assert done.stderr == "kvcache-bench p95: the tracker's commands moved to kvcache-tracker (tracker/): kvcache-tracker p95 ...\n"
