"""cli/output.py: rich tables on a terminal, the same rows as plain stable text elsewhere."""

from __future__ import annotations

import io
import re

from rich.console import Console

from brew_bridge.cli.output import Column, Output, style_of

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COLUMNS = (Column("id"), Column("reason", coloured=True), Column("message", 12))
ROWS = [(7, "run_failed", "mailbox  unavailable\nfor good"), (3, "invalid_json", None)]


def terminal(width: int = 100) -> tuple[Output, io.StringIO]:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, color_system="standard", width=width)
    return Output(console), buffer


def plain() -> tuple[Output, io.StringIO]:
    buffer = io.StringIO()
    return Output(Console(file=buffer)), buffer  # a StringIO is no terminal


def test_plain_tables_are_padded_columns_cut_to_width_and_stable() -> None:
    out, buffer = plain()
    assert not out.rich
    out.table(COLUMNS, ROWS, title="Dead letters")
    assert buffer.getvalue() == (
        "Dead letters\n"
        "ID  REASON        MESSAGE\n"
        "7   run_failed    mailbox u...\n"  # whitespace folded, cut to 12 with "..."
        "3   invalid_json\n"  # no trailing blanks
    )


def test_a_terminal_gets_a_rich_table_coloured_by_word() -> None:
    out, buffer = terminal()
    assert out.rich
    out.table(COLUMNS, ROWS)
    text = buffer.getvalue()
    assert "\x1b[31mrun_failed" in text  # red: a dead letter's reason
    assert "─" in text  # the header rule
    visible = _ANSI.sub("", text)
    assert re.search(r"ID +REASON +MESSAGE", visible)
    assert re.search(r"7 +run_failed +mailbox u\.\.\.", visible)


def test_a_narrow_terminal_keeps_every_column_and_every_id_whole() -> None:
    out, buffer = terminal(width=40)
    out.table(COLUMNS, [(123456, "retries_exhausted", "x" * 12)])
    visible = _ANSI.sub("", buffer.getvalue())
    assert "123456" in visible
    assert "retries_exhausted" in visible
    assert "MESS" in visible  # the limited column gives way, it does not vanish


def test_tallies_plain_and_coloured() -> None:
    rows = [("runs", {"completed": 3, "failed": 1}), ("fires", {})]
    out, buffer = plain()
    out.tally(rows)
    assert buffer.getvalue() == "runs            completed 3, failed 1\nfires           none\n"

    out, buffer = terminal()
    out.tally(rows)
    text = buffer.getvalue()
    assert "\x1b[32mcompleted" in text
    assert "\x1b[31mfailed" in text
    assert re.search(r"fires +none", _ANSI.sub("", text))


def test_plain_lines_are_never_read_as_markup() -> None:
    for out, buffer in (plain(), terminal()):
        out.line("[bold]not markup[/bold] 50%")
        assert "[bold]not markup[/bold] 50%" in _ANSI.sub("", buffer.getvalue())


def test_every_word_has_the_colour_of_what_it_means() -> None:
    assert style_of("completed") == style_of("fired") == style_of("TRIGGERED") == "green"
    assert style_of("running") == style_of("retry_wait") == "cyan"
    assert style_of("partially_completed") == style_of("ingest") == "yellow"
    assert style_of("failed") == style_of("dead") == style_of("outcome_unknown") == "red"
    assert style_of("INVALID_REQUEST") == "red"  # any fire error code
    assert style_of("something_new") is None
