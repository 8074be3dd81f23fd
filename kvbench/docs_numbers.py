"""Measured numbers the docs quote, checked against docs/numbers.md.

A *quantity* is a number, or numbers joined by ``-`` or ``/``, followed by a unit of
``UNITS`` ("0.224 / 0.250 ms", "71-132%", "11 min"). Every number of every quantity in
``QUOTING`` must appear on the numbers page. Not measurements, so not checked:

- lines inside fenced code blocks (commands);
- a quantity right after a comparison (``<``, ``>=``, "more than", "up to", ...) or a sign
  (``+5%``): a target, a threshold or a planted change, not a result;
- sizes in MiB, KiB and GiB (computed from a model's shape), and numbers without a unit
  (token counts, block counts, ratios, ``256-token blocks``);
- the phrases of ``NOT_MEASURED``, each with its reason.

History (docs/experiments/ dated files, docs/perf.md) is not checked: it keeps its numbers as
they were measured then.
"""

import re

QUOTING = ("README.md", "docs/adr/ADR-004-block-gather-strategy.md", "docs/experiments/EXP-006.md",
           "docs/tracker.md", "docs/benchmarks.md")
UNITS = r"(?:ms|us|s|min|minutes|MB|GB|GB/s|%)"
NUMBER = r"\d+(?:\.\d+)?"
QUANTITY = re.compile(rf"(?<![\w.+\-/])({NUMBER}(?:\s*[-/]\s*{NUMBER})*)\s*{UNITS}(?![\w/])")
COMPARISON = re.compile(r"(?:<|>|<=|>=|more than|less than|at most|at least|above|below|under|up to|within)\s*$")
PAGE_NUMBER = re.compile(rf"(?<![\d.]){NUMBER}")

# phrase -> why it is not a measurement (or not one of ours)
NOT_MEASURED = {
    "p95 ~4 ms at 8K": "EXP-006: the seed's prediction",
    "~2-3 us each": "EXP-006: the seed's prediction",
    "M1 25.6 ms": "the Apple Silicon copy floor: arithmetic on Apple's published bandwidth",
    "p95 by 10/20/50%": "tracker.md: the tail-only steps the power replay plants",
    "median CV of 1.5% over": "tracker.md: the issue's number for a quiet machine, not measured here",
    "adds 4 ms to 1 restore in 10": "tracker.md: the slowdown the e2e test plants",
    "goal <= 5%": "tracker.md: a goal",
    "(0.5-2.5 s a call here)": "benchmarks.md: why the copies have few samples (a description, not a result)",
}


def unquoted(text, page_numbers):
    """``[(line number, quantity)]`` of the quantities in ``text`` with a number that is not in
    ``page_numbers`` (``page_numbers(page_text)``), by the rules above."""
    missing, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        for phrase in NOT_MEASURED:
            line = line.replace(phrase, "")
        for match in QUANTITY.finditer(line):
            if COMPARISON.search(line[:match.start()]):
                continue
            if any(n not in page_numbers for n in re.findall(NUMBER, match.group(1))):
                missing.append((number, match.group(0)))
    return missing


def page_numbers(page_text):
    """Every number written on the page, as written ("0.250", "1147")."""
    return set(PAGE_NUMBER.findall(page_text))
