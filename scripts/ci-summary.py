"""Write the p95 flags of ``kvcache-bench p95 --json FILE`` into the GitHub Actions job summary.

Usage: ``python3 scripts/ci-summary.py [P95_JSON]`` (default ``.asv/p95.json``). Appends a
markdown table to ``$GITHUB_STEP_SUMMARY`` (stdout when unset) and, under GitHub Actions, prints
one ``::warning`` annotation per flag. Standard library only: it runs with the runner's python3.
A missing report is described, not an error (the step that should have written it has failed
already); a report that is not kvcache-bench p95's JSON exits 2 with one line on stderr.
"""

import json
import os
import sys

COLUMNS = ("kind", "benchmark", "machine", "commit", "p95_before_ms", "p95_after_ms", "budget_ms")


def cell(value):
    """A markdown table cell: floats to 3 decimals, None empty, pipes escaped, one line."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def commit_cell(commit):
    """The short hash, linked to the commit on GitHub when the Actions variables say where."""
    server, repository = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    if not (server and repository):
        return cell(commit[:12])
    return f"[{cell(commit[:12])}]({server}/{repository}/commit/{cell(commit)})"


def render(flags, write_line):
    """The summary section for a list of flags (each a dict with COLUMNS' keys)."""
    write_line("## p95 flags")
    write_line("")
    if not flags:
        write_line("No p95 regression and no budget exceeded.")
        return
    write_line("| " + " | ".join(COLUMNS) + " |")
    write_line("|" + "---|" * len(COLUMNS))
    for flag in flags:
        cells = [commit_cell(str(flag.get(c, ""))) if c == "commit" else cell(flag.get(c, "")) for c in COLUMNS]
        write_line("| " + " | ".join(cells) + " |")


def escape_data(text):
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text):
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(flag):
    """One ``::warning`` workflow command for a flag (its "message" when it has one), escaped."""
    title = f"p95 {flag.get('kind', 'flag')}: {flag.get('benchmark')}"
    before = flag.get("p95_before_ms")
    change = f"{cell(before)} -> {cell(flag.get('p95_after_ms'))}" if before is not None else cell(flag.get("p95_after_ms"))
    text = flag.get("message") or (
        f"{flag.get('benchmark')} on {flag.get('machine')} at {str(flag.get('commit'))[:12]}: p95 {change} ms")
    return f"::warning title={escape_property(title)}::{escape_data(text)}"


def read_flags(path):
    """The report's flags; None when the file does not exist. Raises ValueError when malformed."""
    try:
        with open(path, encoding="utf-8") as file:
            report = json.load(file)
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON ({error}); rerun kvcache-bench p95") from None
    flags = report.get("flags") if isinstance(report, dict) else None
    if not isinstance(flags, list) or not all(isinstance(flag, dict) for flag in flags):
        raise ValueError(f'{path} has no "flags" list of objects; is it kvcache-bench p95 --json output?')
    return flags


def main(argv):
    path = argv[1] if len(argv) > 1 else ".asv/p95.json"
    try:
        flags = read_flags(path)
    except ValueError as error:
        print(f"ci-summary: {error}", file=sys.stderr)
        return 2
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    sink = open(summary_path, "a", encoding="utf-8") if summary_path else sys.stdout
    try:
        if flags is None:
            sink.write(f"## p95 flags\n\nNo p95 report: {path} was not written (see the failed step above).\n")
        else:
            render(flags, lambda line: sink.write(line + "\n"))
    finally:
        if sink is not sys.stdout:
            sink.close()
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for flag in flags or []:
            print(annotation(flag))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
