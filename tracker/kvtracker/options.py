"""Options and warnings that the tracker's commands share."""

import sys

from .errors import UserError

MIN_RISE_HELP = "a p95 rise must also exceed this many ms: a noise floor for a shared machine (default 0)"


def add_results(parser):
    parser.add_argument("--results", help="asv results directory (default: asv.conf.json's results_dir)")


def add_config(parser):
    parser.add_argument("--config", help="asv config file (default: asv.conf.json here, if there is one)")


def add_threshold(parser, meaning):
    """``--threshold``: ``meaning`` for every benchmark, else each one's from asv.conf.json."""
    parser.add_argument(
        "--threshold",
        type=float,
        help=f"{meaning}, for every benchmark (default: asv.conf.json's regressions_thresholds, "
        "the largest that matches a benchmark, as asv publish reads them; else 0.10)",
    )


def check_threshold(threshold):
    if not threshold > 0:
        raise UserError(f"--threshold must be a positive fraction (0.10 = 10%), not {threshold}")


def check_min_rise(min_rise_ms):
    if not min_rise_ms >= 0:
        raise UserError(f"--min-rise-ms must be zero or a positive number of milliseconds, not {min_rise_ms}")


def warn(message):
    print(f"warning: {message}", file=sys.stderr)
