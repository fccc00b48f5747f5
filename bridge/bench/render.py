"""The report as rich tables on a terminal, and as Markdown to paste into docs/BENCHMARKS.md."""

from __future__ import annotations

from typing import Any

from .results import Comparison, Report, Section

HEADER_KEYS = (
    ("device", "device"),
    ("torch", "torch"),
    ("diffusers", "diffusers"),
    ("command", "command"),
    ("started_utc", "started"),
    ("seconds", "took (s)"),
    ("load_average_start", "load average at start"),
    ("load_average_end", "load average at end"),
)


def _header_lines(report: Report) -> list[tuple[str, str]]:
    env, opts = report.environment, report.options
    lines = [(label, str(env[key])) for key, label in HEADER_KEYS if env.get(key) is not None]
    if opts.get("model"):
        measured = (
            f"{opts['model']}; {opts.get('frames')} timed calls per row after {opts.get('warmup')} warm-up"
        )
        lines.insert(3, ("model", measured))
    return lines


def _comparison_text(c: Comparison) -> str:
    value = "-" if c.value is None else f"{c.value:.2f}{'x' if c.unit == 'x' else ' ' + c.unit}"
    return f"{c.label}: {value}" + (f" ({c.explanation})" if c.explanation else "")


def _cells(section: Section) -> tuple[list[str], list[list[str]]]:
    """Table cells; a row that could not be measured shows `n/a` (its error is listed under the table)."""
    headers = ["", *[c.header for c in section.columns]]
    rows = []
    for row in section.rows:
        if row.error:
            rows.append([row.label, *["n/a"] * len(section.columns)])
        else:
            rows.append([row.label, *[c.format(row.metrics.get(c.key)) for c in section.columns]])
    return headers, rows


def _errors(section: Section) -> list[str]:
    """One line per distinct error, naming the rows it hit."""
    by_error: dict[str, list[str]] = {}
    for row in section.rows:
        if row.error:
            by_error.setdefault(row.error, []).append(row.label)
    return [f"n/a ({', '.join(labels)}): {error}" for error, labels in by_error.items()]


def _below_table(section: Section) -> list[str]:
    return [*_errors(section), *(_comparison_text(c) for c in section.comparisons), *section.notes]


def print_report(report: Report, console: Any = None) -> None:
    """Print with rich (imported here: only the command needs it)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    for label, value in _header_lines(report):
        console.print(f"[bold]{label}:[/bold] {value}", highlight=False)
    for section in report.sections:
        headers, rows = _cells(section)
        table = Table(title=section.title, title_justify="left", title_style="bold")
        for i, header in enumerate(headers):
            table.add_column(header, justify="left" if i == 0 else "right")
        for cells in rows:
            table.add_row(*cells)
        console.print()
        console.print(table)
        for line in _errors(section):
            console.print(f"  [yellow]{escape(line)}[/yellow]", highlight=False)
        for comparison in section.comparisons:
            console.print("  " + _comparison_text(comparison), highlight=False, markup=False)
        for note in section.notes:
            console.print(f"  [dim]{escape(note)}[/dim]", highlight=False)
    if report.targets:
        table = Table(title="Targets (GPU, random:sd-turbo, 512x512, 1-step img2img)", title_justify="left")
        for header in ("target", "goal", "measured", "status"):
            table.add_column(header)
        for t in report.targets:
            table.add_row(t.name, t.goal, t.measured, t.status)
        console.print()
        console.print(table)


def _md_table(headers: list[str], rows: list[list[str]], numeric: bool = True) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    align = ["---", *["---:" if numeric else "---"] * (len(headers) - 1)]
    return [line(headers), "|" + "|".join(align) + "|", *[line(r) for r in rows]]


def to_markdown(report: Report) -> str:
    out = [f"- **{label}**: `{value}`" if label == "command" else f"- **{label}**: {value}"
           for label, value in _header_lines(report)]  # fmt: skip
    for section in report.sections:
        headers, rows = _cells(section)
        out += ["", f"#### {section.title}", "", *_md_table(headers, rows)]
        extra = _below_table(section)
        if extra:
            out += ["", *[f"- {text}" for text in extra]]
    if report.targets:
        out += ["", "#### Targets (GPU, random:sd-turbo, 512x512, 1-step img2img)", ""]
        out += _md_table(
            ["target", "goal", "measured", "status"],
            [[t.name, t.goal, t.measured, t.status] for t in report.targets],
            numeric=False,
        )
    return "\n".join(out) + "\n"
