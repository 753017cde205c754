"""What the CLI prints: tables in colour on a terminal, plain stable text otherwise.

A person at a terminal gets rich tables, each status, state and reason in the colour of
what it means (green: done; cyan: on its way; yellow: worth a look; red: failed, dead).
A pipe, a file or a test gets the plain text scripts have always parsed: columns padded
with spaces, no colour, no box, the same bytes for the same rows. ``NO_COLOR`` and
``TERM=dumb`` are honoured (by rich).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from brew_bridge.events import DEAD_LETTER_REASONS, LIVE_STATUSES, Reason

__all__ = ["Column", "Output", "Tally", "counts_text", "style_of", "tally_view"]

# Fire results that mean "accepted"; every other fire code is a refusal or an error.
_ACCEPTED = frozenset({"TRIGGERED", "IDEMPOTENT_REPLAY"})
_STYLES: Mapping[str, str] = {
    **{word: "green" for word in ("completed", "fired", *_ACCEPTED)},
    **{word: "cyan" for word in (*LIVE_STATUSES, "firing", "retry_wait")},
    "partially_completed": "yellow",
    **{word: "red" for word in (*DEAD_LETTER_REASONS, "dead")},
    # a dead letter's stage: ingest is bad input (fix the event or the route), the
    # others are deliveries that did not make it
    "ingest": "yellow",
    "fire": "red",
    "run": "red",
    **{reason.value: "red" for reason in Reason},
}


def style_of(word: str) -> str | None:
    """The colour of a status, delivery state, fire result, dead-letter stage or reason."""
    style = _STYLES.get(word)
    if style is None and word.isupper():  # a fire error code (INVALID_REQUEST, ...)
        return "red"
    return style


def counts_text(counts: Mapping[str, int]) -> str:
    """``{"completed": 3, "failed": 1}`` -> ``completed 3, failed 1`` (``none`` if empty)."""
    return ", ".join(f"{name} {n}" for name, n in counts.items()) or "none"


@dataclass(frozen=True)
class Column:
    """A table column: its name, the most characters a cell shows (longer ones end in
    ``...``; None: no limit), and whether a cell's colour follows its word."""

    name: str
    width: int | None = None
    coloured: bool = False


def _cell(value: object, width: int | None) -> str:
    text = "" if value is None else " ".join(str(value).split())
    if width is not None and len(text) > width:
        text = text[: width - 3] + "..."
    return text


class Output:
    """Where a command prints: ``rich`` is True on a terminal (or a console forced to
    be one, in tests)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console if console is not None else Console(highlight=False)

    @property
    def rich(self) -> bool:
        return self.console.is_terminal

    def line(self, text: str = "") -> None:
        """A line of text as it is: no markup, no wrapping, no highlighting."""
        if self.rich:
            self.console.print(Text(text), soft_wrap=True)
        else:
            # flushed: whoever reads a pipe (tee, a CI log, a test) sees each line as it comes
            self.console.file.write(text + "\n")
            self.console.file.flush()

    def table(
        self,
        columns: Sequence[Column],
        rows: Sequence[Sequence[object]],
        *,
        title: str | None = None,
    ) -> None:
        """Rows as a table. Plain: upper-case headers, columns two spaces apart, no
        trailing blanks, the title (when given) on a line of its own above."""
        cells = [[_cell(v, c.width) for v, c in zip(row, columns, strict=True)] for row in rows]
        if not self.rich:
            if title is not None:
                self.line(title)
            self.line(_plain_table(cells, [c.name for c in columns]))
            return
        table = Table(
            title=title,
            title_justify="left",
            title_style="bold",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            header_style="bold",
        )
        for i, column in enumerate(columns):
            numbers = bool(rows) and all(isinstance(row[i], int) for row in rows)
            # On a narrow terminal the columns with a width limit wrap; the others
            # (ids, times, reasons) stay whole on one line.
            flexible = column.width is not None
            table.add_column(
                column.name.upper(),
                justify="right" if numbers else "left",
                no_wrap=not flexible,
                overflow="fold",
                min_width=None
                if flexible
                else max([len(column.name), *(len(row[i]) for row in cells)]),
            )
        for row in cells:
            table.add_row(
                *(
                    Text(text, style=(style_of(text) or "") if column.coloured else "")
                    for text, column in zip(row, columns, strict=True)
                )
            )
        self.console.print(table)

    def tally(self, rows: Sequence[Tally]) -> None:
        """Counts by word, one labelled line each: ``label  a 1, b 2`` (coloured words on
        a terminal)."""
        if self.rich:
            self.console.print(tally_view(rows))
        else:
            for label, counts in rows:
                self.line(f"{label:<15} {counts_text(counts)}".rstrip())


# A labelled line of counts by word: ("runs", {"completed": 3, "failed": 1}).
Tally = tuple[str, Mapping[str, int]]


def tally_view(rows: Sequence[Tally]) -> Table:
    """:meth:`Output.tally`'s rich form, also a renderable for a live display."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True, min_width=14)  # as wide as the plain labels
    grid.add_column()
    for label, counts in rows:
        text = Text()
        for i, (word, n) in enumerate(counts.items()):
            text.append(", " if i else "")
            text.append(word, style=style_of(word) or "")
            text.append(f" {n}")
        grid.add_row(label, text if counts else Text("none", style="dim"))
    return grid


def _plain_table(rows: Sequence[Sequence[str]], columns: Sequence[str]) -> str:
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
