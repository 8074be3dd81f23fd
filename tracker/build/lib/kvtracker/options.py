"""Options and warnings that the tracker's commands share."""

import sys

from .errors import UserError

MIN_RISE_HELP = "a p95 rise must also exceed this many ms: a noise floor for a shared machine (default 0)"


def check_threshold(threshold):
    if not threshold > 0:
        raise UserError(f"--threshold must be a positive fraction (0.10 = 10%), not {threshold}")


def check_min_rise(min_rise_ms):
    if not min_rise_ms >= 0:
        raise UserError(f"--min-rise-ms must be zero or a positive number of milliseconds, not {min_rise_ms}")


def warn(message):
    print(f"warning: {message}", file=sys.stderr)
