"""Terminal tables (core/tables.py): at 80 columns a cell wraps between tokens, never inside one."""

from __future__ import annotations

import io

from rich.console import Console

from breedscope.core import tables

CELLS = [
    ["bccd", "brikwerk/bccd-white-blood-cell (version 1)", "0.812 (0.694\u20130.890)"],
    ["new", "/data/clinic/2026/newcells/corrupt.jpg", "not an image"],
    ["x", "a-much-longer-slug/with-many-parts-and-a-path/and-more/than-fits", "-0.25"],
]


def _printed(header: list[str], rows: list[list[str]], width: int = 80, **options) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    tables.show(console, "A table", header, rows, **options)
    return console.file.getvalue()


def _body_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("│")]


def test_pieces_cut_after_spaces_and_joining_separators_and_join_back() -> None:
    assert tables.pieces("brikwerk/bccd-white (v 1)") == ["brikwerk/", "bccd-", "white ", "(v ", "1)"]
    assert tables.pieces("(0.694\u20130.890)") == ["(0.694\u2013", "0.890)"]
    assert tables.pieces("-0.5 - x") == ["-0.5 ", "- ", "x"]  # a sign or a lone dash is no joint
    assert tables.pieces("class_weights") == ["class_weights"]
    for row in CELLS:
        for cell in row:
            assert "".join(tables.pieces(cell)) == cell


def test_at_80_columns_every_token_is_printed_whole_on_one_line() -> None:
    text = _printed(["name", "source", "value"], CELLS)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert len(_body_lines(text)) > len(CELLS)  # it had to wrap
    body = "\n".join(lines)
    for row in CELLS:
        for cell in row:
            for piece in tables.pieces(cell):
                assert piece.strip() in body, piece  # every token whole, on one line


def test_each_cell_reads_back_whole_from_its_column() -> None:
    text = _printed(["name", "source", "value"], CELLS)
    read: list[list[str]] = []
    for line in _body_lines(text):
        name, source, value = line.split("│")[1:4]
        if name.strip():
            read.append([name, "", ""])
        read[-1][1] += source
        read[-1][2] += value
    for (_, source, value), row in zip(read, CELLS, strict=True):
        assert "".join(source.split()) == "".join(row[1].split())  # nothing lost, nothing shortened
        assert "".join(value.split()) == "".join(row[2].split())


def test_a_token_wider_than_the_terminal_allows_is_shortened_in_its_middle() -> None:
    token = "x" * 50 + "_end.jpg"
    text = _printed(["path", "error"], [[token, "file not found " * 6]], width=40)
    assert max(len(line) for line in text.splitlines()) <= 40
    shortened = next(word for line in _body_lines(text) for word in line.split() if "…" in word)
    assert shortened.startswith("xxxx") and shortened.endswith("end.jpg")


def test_a_table_that_fits_is_printed_as_it_is() -> None:
    text = _printed(["one", "two"], [["a", "b-c/d e"], ["f", "g"]])
    assert [line.split("│")[2].strip() for line in _body_lines(text)] == ["b-c/d e", "g"]


def test_a_turned_table_wraps_its_names_before_it_shortens_any_value() -> None:
    label = "sensitivity / specificity at the operating point"
    header = ["run", label, "accuracy (95% CI)"]
    runs = [
        ["pairs/run-with-a-long-name", "sensitivity=0.9", "0.947 (0.907\u20130.980)"],
        ["pairs/run-2", "sensitivity=0.95", "0.942 (0.909\u20130.972)"],
    ]
    text = _printed(header, runs, width=60, may_turn=True)
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 60
    assert "sensitivity=0.95" in text and "sensitivity=0.9 " in text  # values whole
    names = [line.split("│")[1].strip() for line in _body_lines(text)]
    assert " ".join(" ".join(names).split()).startswith(label)  # the name wrapped between its words
