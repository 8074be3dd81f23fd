"""Write the p95 flags of ``kvcache-tracker p95 --json FILE`` into the GitHub Actions job summary.

Usage: ``python3 scripts/ci-summary.py [P95_JSON]`` (default ``.asv/p95.json``). Appends to
``$GITHUB_STEP_SUMMARY`` (stdout when unset) a markdown table of the flags, each with the
statistic that moved, its level before and after (in the report's unit), the change and the
budget, then the flags a re-measurement dismissed; under GitHub Actions it prints one
``::warning`` annotation per flag. It reads the keys p95 --json writes (``statistic``, ``unit``,
``before``, ``after``, ``change``, ``budget_ms``, ``message``). Standard library only: it runs
with the runner's python3.
A missing report is described, not an error (the step that should have written it has failed
already); a report that is not kvcache-tracker p95's JSON exits 2 with one line on stderr.
"""

import json
import os
import sys

COLUMNS = ("kind", "benchmark", "machine", "commit", "statistic", "before", "after", "change", "budget")


def cell(value):
    """A markdown table cell: None empty, pipes escaped, one line."""
    if value is None:
        return ""
    return str(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def amount(value, unit):
    """A value with its unit, as kvcache-tracker prints it: 3 decimals under 1, 2 under 100, none
    above; empty when there is none (a budget flag on the first commit has no before)."""
    if not isinstance(value, (int, float)) or value != value:
        return ""
    number = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"
    return f"{number} {unit}" if unit else number


def commit_cell(commit):
    """The short hash, linked to the commit on GitHub when the Actions variables say where."""
    server, repository = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    if not (server and repository):
        return cell(commit[:12])
    return f"[{cell(commit[:12])}]({server}/{repository}/commit/{cell(commit)})"


def row(flag):
    """A flag's cells, in COLUMNS' order, from the keys that ``kvcache-tracker p95 --json`` writes."""
    unit = flag.get("unit") or ""
    change = flag.get("change")
    return [
        cell(flag.get("kind")),
        cell(flag.get("benchmark")),
        cell(flag.get("machine")),
        commit_cell(str(flag.get("commit", ""))),
        cell(flag.get("statistic")),
        amount(flag.get("before"), unit),
        amount(flag.get("after"), unit),
        f"{change:+.0%}" if isinstance(change, (int, float)) and change == change else "",
        amount(flag.get("budget_ms"), "ms"),
    ]


def render(flags, dismissed, write_line):
    """The summary section: a table of the flags, then the flags a re-measurement dismissed."""
    write_line("## p95 flags")
    write_line("")
    if not flags:
        write_line("No p95 regression and no budget exceeded.")
    else:
        write_line("| " + " | ".join(COLUMNS) + " |")
        write_line("|" + "---|" * len(COLUMNS))
        for flag in flags:
            write_line("| " + " | ".join(row(flag)) + " |")
    if dismissed:
        write_line("")
        write_line(f"{len(dismissed)} flag(s) dismissed by re-measurement (noise, not the code):")
        for flag in dismissed:
            write_line(f"- {cell(flag.get('message') or flag.get('benchmark'))}")


def escape_data(text):
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text):
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(flag):
    """One ``::warning`` workflow command for a flag (its "message" when it has one), escaped."""
    title = f"p95 {flag.get('kind', 'flag')}: {flag.get('benchmark')}"
    unit = flag.get("unit") or ""
    change = f"{flag.get('statistic', 'p95')} {amount(flag.get('before'), unit) or '?'} -> {amount(flag.get('after'), unit)}"
    text = flag.get("message") or f"{flag.get('benchmark')} on {flag.get('machine')} at {str(flag.get('commit'))[:12]}: {change}"
    return f"::warning title={escape_property(title)}::{escape_data(text)}"


def read_flags(path):
    """The report's ``(flags, dismissed)``; None when the file does not exist. Raises ValueError
    when malformed."""
    try:
        with open(path, encoding="utf-8") as file:
            report = json.load(file)
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON ({error}); rerun kvcache-tracker p95") from None
    lists = [report.get(key, [] if key == "dismissed" else None) if isinstance(report, dict) else None
             for key in ("flags", "dismissed")]
    if not all(isinstance(flags, list) and all(isinstance(flag, dict) for flag in flags) for flags in lists):
        raise ValueError(f'{path} has no "flags" list of objects; is it kvcache-tracker p95 --json output?')
    return lists


def main(argv):
    path = argv[1] if len(argv) > 1 else ".asv/p95.json"
    try:
        report = read_flags(path)
    except ValueError as error:
        print(f"ci-summary: {error}", file=sys.stderr)
        return 2
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    sink = open(summary_path, "a", encoding="utf-8") if summary_path else sys.stdout
    try:
        if report is None:
            sink.write(f"## p95 flags\n\nNo p95 report: {path} was not written (see the failed step above).\n")
        else:
            render(*report, lambda line: sink.write(line + "\n"))
    finally:
        if sink is not sys.stdout:
            sink.close()
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for flag in report[0] if report else []:
            print(annotation(flag))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
