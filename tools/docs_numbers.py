"""Measured numbers the docs quote, checked against docs/numbers.md.

A *quantity* is a number, or numbers joined by ``-`` or ``/``, followed by a unit of
``UNITS`` ("0.224 / 0.250 ms", "71-132%", "11 min"). Every number of every quantity in
``QUOTING`` must appear on the numbers page, as written ("0.25" is not "0.250") and with the
same unit: on the page a number's unit is the one written after it, or, in a table cell
without one, the units named by its row's first cell, its column's header and the table's
caption ("zero-copy p95, ms"). The check cannot tell which machine or row a number belongs
to. Not measurements, so not checked:

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
QUANTITY = re.compile(rf"(?<![\w.+\-/])({NUMBER}(?:\s*[-/]\s*{NUMBER})*)\s*({UNITS})(?![\w/])")
UNIT_WORD = re.compile(rf"(?<![\w/'’.]){UNITS}(?![\w/])")
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
}


def unquoted(text, on_page):
    """``[(line number, quantity)]`` of the quantities in ``text`` with a number that is not in
    ``on_page`` (``page_quantities(page_text)``) with its unit, by the rules above."""
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
            unit = _unit(match.group(2))
            if any((n, unit) not in on_page for n in re.findall(NUMBER, match.group(1))):
                missing.append((number, match.group(0)))
    return missing


def page_quantities(page_text):
    """``{(number as written, unit)}`` of the page: the quantities in its text, and every
    number of a table cell with the units its row, column and caption name."""
    found, caption, header = set(), "", None
    for line in page_text.splitlines():
        if not line.startswith("|"):
            found |= _quantities(line)
            caption, header = (line if line.strip() else caption), None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        for column, cell in enumerate(cells):
            found |= _quantities(cell)
            context = " ".join((cells[0], header[column] if column < len(header) else "", caption))
            units = {_unit(u) for u in UNIT_WORD.findall(context)}
            found |= {(n, u) for n in PAGE_NUMBER.findall(cell) for u in units}
    return found


def _quantities(text):
    return {(n, _unit(m.group(2))) for m in QUANTITY.finditer(text) for n in re.findall(NUMBER, m.group(1))}


def _unit(unit):
    return "min" if unit == "minutes" else unit
