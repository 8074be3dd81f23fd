"""``kvcache-bench``: the library's own measurements (the tracker is ``kvcache-tracker``).

Each subcommand lives in its own module, which provides ``register(subparsers)``; the parser
it adds sets ``func(args) -> exit code``. User errors are ``kvbench.errors.UserError``: one
line on stderr, exit code 2, no traceback.
"""

import argparse
import importlib
import sys

from .errors import UserError

# subcommand -> (its module, one line of help). Only the module of the command given is
# imported; a module whose dependencies are not installed leaves its command saying so.
# (kvtracker.cli dispatches the same way; kvbench does not import it, as it runs where only
# MLX is installed, e.g. a GPU host with the repository on PYTHONPATH.)
COMMANDS = {
    "exp006": ("exp006", "the seed experiment EXP-006, reproducible"),
    "costs": ("restore_costs", "copy efficiency, zero-copy latency, first decode step, peak memory"),
}
MOVED = ("p95", "gate", "confirm", "power", "vendor-html")  # now kvcache-tracker's (tracker/)


def build_parser(argv=()):
    """The parser; the full one of the command named first in ``argv``, a stub for the others."""
    parser = argparse.ArgumentParser(prog="kvcache-bench", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for command, (module_name, help_line) in COMMANDS.items():
        if command != chosen:
            subparsers.add_parser(command, help=help_line, add_help=False)
            continue
        try:
            module = importlib.import_module(f".{module_name}", __package__)
        except ModuleNotFoundError as missing:
            _register_unavailable(subparsers, command, missing.name)
        else:
            module.register(subparsers)
    return parser


def _register_unavailable(subparsers, command, missing):
    """A command whose module cannot be imported: its ``--help`` says so and how to install
    what it needs; run, it fails with that one line (whatever options it was given)."""
    fix = f"needs the Python package {missing!r}, not installed here: pip install {missing.split('.')[0]}"

    def unavailable(args):
        raise UserError(fix)

    parser = subparsers.add_parser(command, help=f"(unavailable: {fix})", description=f"{command}: {fix}.")
    parser.set_defaults(func=unavailable, takes_any_options=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in MOVED:
        print(f"kvcache-bench {argv[0]}: the tracker's commands moved to kvcache-tracker (tracker/): "
              f"kvcache-tracker {argv[0]} ...", file=sys.stderr)
        return 2
    parser = build_parser(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "takes_any_options", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args)
    except UserError as error:
        print(f"kvcache-bench {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
