"""``kvcache-tracker``: the p95 tracker's command line, for any asv project.

Each subcommand lives in its own module, which provides ``register(subparsers)``; the parser
it adds sets ``func(args) -> exit code``. User errors are ``kvtracker.errors.UserError``: one
line on stderr, exit code 2, no traceback. Nothing here imports MLX.
"""

import argparse
import importlib
import sys

from .errors import UserError

# subcommand -> (its module, one line of help). Only the module of the command given is
# imported, so that --help works whatever is installed; a module whose dependencies are
# missing leaves its command saying which package to install.
COMMANDS = {
    "p95": ("p95", "p95 per commit, change points, regressions and budget overruns"),
    "gate": ("gate", "exit 1 when HEAD's p95 regressed from BASE's"),
    "confirm": ("confirm", "re-measure new flags before alerting (the main job's step)"),
    "power": ("power", "detection power of the tracker on replayed recorded noise"),
    "vendor-html": ("vendor_html", "serve asv's CDN scripts and styles from the html directory itself"),
}
PROG = "kvcache-tracker"


def build_parser(argv=()):
    """The parser; the full one of the command named first in ``argv``, a stub for the others."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
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
    parser = build_parser(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "takes_any_options", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args)
    except UserError as error:
        print(f"{PROG} {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
