"""``kvcache-bench``: the command line of the tracker.

Each subcommand lives in its own module, which provides ``register(subparsers)``; the parser
it adds sets ``func(args) -> exit code``. User errors are ``kvbench.errors.UserError``: one
line on stderr, exit code 2, no traceback.
"""

import argparse
import importlib
import sys

from .errors import UserError

# subcommand -> its module. A module whose dependencies are not installed (asv on a bare GPU
# machine, where only mlx, mlx-lm, numpy and matplotlib are) leaves a subcommand saying so.
COMMANDS = {"p95": "tracker.p95", "gate": "tracker.gate", "confirm": "tracker.confirm", "power": "tracker.power", "exp006": "exp006", "costs": "restore_costs"}


def build_parser():
    parser = argparse.ArgumentParser(prog="kvcache-bench", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f".{module_name}", __package__)
        except ModuleNotFoundError as missing:
            _register_unavailable(subparsers, command, missing.name)
        else:
            module.register(subparsers)
    return parser


def _register_unavailable(subparsers, command, missing):
    def unavailable(args):
        raise UserError(f"needs the Python package {missing!r}, not installed here: pip install -e '.[bench]'")

    parser = subparsers.add_parser(command, help=f"(unavailable: needs {missing})", add_help=False)
    parser.add_argument("ignored", nargs=argparse.REMAINDER)
    parser.set_defaults(func=unavailable)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as error:
        print(f"kvcache-bench {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
