"""Markdown tables and number formats shared by the tracker's reports (terminal, PR comment)."""


def write_table(headers, rows, write_line):
    """Write a GitHub-flavoured markdown table, one line per ``write_line`` call."""
    write_line("| " + " | ".join(headers) + " |")
    write_line("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        write_line("| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |")


def ms(value):
    """Milliseconds: 3 decimals under 1, 2 under 100, none above (``-`` none, ``?`` unbounded)."""
    if value is None:
        return "-"
    if value != value or value in (float("inf"), float("-inf")):
        return "?"
    return f"{value:.0f}" if value >= 100 else f"{value:.3f}" if value < 1 else f"{value:.2f}"


def ci(low, high):
    """A confidence interval as ``[low, high]`` (``?`` for an unbounded end)."""
    if low is None:
        return "-"
    return f"[{ms(low)}, {ms(high)}]"


def short(commit):
    return commit[:8] if commit else "-"
