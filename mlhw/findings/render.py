"""Findings as Markdown (REPORT.md), plain text (a log) and rich panels (the terminal)."""

from __future__ import annotations

from mlhw.findings.base import Finding


def _cell(v) -> str:
    return str(v).replace("|", "\\|")


def to_markdown(findings: list[Finding], heading: str | None = "## Findings") -> str:
    lines = [heading, ""] if heading else []
    for f in findings:
        lines += [f"**{f.question}**", "", f.answer, ""]
        for d in f.details:
            lines.append(f"- {d}")
        if f.details:
            lines.append("")
        if f.table:
            cols = list(f.table[0].keys())
            lines.append("| " + " | ".join(_cell(c) for c in cols) + " |")
            lines.append("|" + "---|" * len(cols))
            lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in f.table]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def to_text(findings: list[Finding]) -> str:
    """Plain text for a terminal without rich (or a log)."""
    lines = []
    for f in findings:
        lines += [f.question, "  " + f.answer.replace("*", "")]
        lines += ["    - " + d.replace("*", "") for d in f.details]
        if f.table:
            cols = list(f.table[0].keys())
            widths = [max(len(str(c)), *(len(str(r.get(c, ""))) for r in f.table)) for c in cols]
            lines.append("    " + "  ".join(str(c).ljust(w) for c, w in zip(cols, widths)))
            for r in f.table:
                lines.append("    " + "  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(cols, widths)))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def to_rich(findings: list[Finding]):
    """A rich renderable (a Group of panels) for the terminal."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    panels = []
    for f in findings:
        body: list = [Text(f.answer.replace("*", ""))]
        for d in f.details:
            body.append(Text("• " + d.replace("*", ""), style="dim"))
        if f.table:
            t = Table(show_edge=False)
            cols = list(f.table[0].keys())
            for c in cols:
                t.add_column(escape(str(c)))
            for r in f.table:
                t.add_row(*[escape(str(r.get(c, ""))) for c in cols])
            body.append(t)
        panels.append(_Titled(f.question, body))
    return Group(*panels)


class _Titled:
    """A finding's panel, its question in the top border where the console is wide enough for all of it, else as
    the panel's first line, wrapped: rich cuts a border title mid-word ("which optimizer trains AlexN" at 80
    columns), and the width is known only when it renders."""

    def __init__(self, question: str, body: list):
        self.question, self.body = question, body

    def __rich_console__(self, console, options):
        from rich.console import Group
        from rich.markup import escape
        from rich.panel import Panel
        from rich.text import Text

        if len(self.question) + 6 <= options.max_width:  # "╭─ " + title + " ─╮"
            yield Panel(Group(*self.body), title=escape(self.question), title_align="left")
        else:
            yield Panel(Group(Text(self.question, style="bold"), *self.body))
