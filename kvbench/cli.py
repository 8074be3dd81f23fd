"""``kvcache-bench``: the command line of the tracker.

Each subcommand lives in its own module, which provides ``register(subparsers)``; the parser
it adds sets ``func(args) -> exit code``. User errors are ``kvbench.errors.UserError``: one
line on stderr, exit code 2, no traceback.
"""

import argparse
import sys

from . import exp006, gate, p95, restore_costs
from .errors import UserError


def build_parser():
    parser = argparse.ArgumentParser(prog="kvcache-bench", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in (p95, gate, exp006, restore_costs):
        module.register(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as error:
        print(f"kvcache-bench {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
