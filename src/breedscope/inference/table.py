"""Writing predictions as they arrive: a CSV file, a JSON array on stdout, or a terminal table.

The CSV and the JSON are written row by row, so a folder of 100,000 images streams and an
interrupted run keeps what it wrote. A terminal table is drawn at the end, and only up to
:data:`TABLE_LIMIT` rows (beyond that, the failures and a pointer to ``--csv``).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from types import TracebackType
from typing import IO

from rich.console import Console
from rich.markup import escape

from breedscope.core import tables
from breedscope.inference.predict import Prediction

TABLE_LIMIT = 500


class PredictionWriter:
    """``with PredictionWriter(top, csv_path, as_json, console) as writer: writer.add(p)``."""

    def __init__(
        self,
        top: int,
        csv_path: Path | None,
        as_json: bool,
        console: Console,
        title: str = "Predictions",
        decides: bool = False,
    ) -> None:
        self.decides = decides  # the run has an operating point: a decision column
        self.top, self.csv_path, self.as_json, self.console, self.title = (
            top,
            csv_path,
            as_json,
            console,
            title,
        )
        self.count = self.failed = 0
        self.rows: list[Prediction] = []
        self._csv_handle: IO[str] | None = None
        self._csv: csv.writer | None = None

    def __enter__(self) -> PredictionWriter:
        if self.csv_path is not None:
            self.csv_path.parent.mkdir(parents=True, exist_ok=True)
            self._csv_handle = open(self.csv_path, "w", newline="", encoding="utf-8")
            self._csv = csv.writer(self._csv_handle, lineterminator="\n")
            ranks = [f"{kind}_{rank}" for rank in range(1, self.top + 1) for kind in ("class", "probability")]
            self._csv.writerow(["path", "error", *ranks, *(["decision"] if self.decides else [])])
        if self.as_json:
            sys.stdout.write("[")
        return self

    def add(self, prediction: Prediction) -> None:
        self.count += 1
        self.failed += bool(prediction.error)
        if self._csv is not None:
            cells = [value for name, p in prediction.top for value in (name, f"{p:.6f}")]
            cells += [""] * (2 * self.top - len(cells))  # a failed file: every column, empty
            decision = [prediction.decision] if self.decides else []
            self._csv.writerow([prediction.path, prediction.error, *cells, *decision])
        if self.as_json:
            item = (
                {"path": prediction.path, "error": prediction.error}
                if prediction.error
                else {
                    "path": prediction.path,
                    "top": [{"class": c, "probability": round(p, 6)} for c, p in prediction.top],
                    **({"decision": prediction.decision} if self.decides else {}),
                }
            )
            sys.stdout.write(("," if self.count > 1 else "") + "\n  " + json.dumps(item))
            sys.stdout.flush()
        elif self.count <= TABLE_LIMIT or prediction.error:
            self.rows.append(prediction)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._csv_handle is not None:
            self._csv_handle.close()
        if self.as_json:
            sys.stdout.write("\n]\n")
            sys.stdout.flush()
        elif kind is None:
            self._print_table()

    def _print_table(self) -> None:
        header = ["image", *(f"#{rank + 1}" for rank in range(self.top))]
        rows = [
            [
                escape(r.path),  # a file may be named "scan[1].png", which is not markup
                *(
                    [f"[red]{r.error}[/]"] + [""] * (self.top - 1)
                    if r.error
                    else [f"{c} {p:.3f}" for c, p in r.top]
                ),
            ]
            for r in self.rows
        ]
        tables.show(self.console, self.title, header, rows)
        if self.count > TABLE_LIMIT:
            self.console.print(
                f"{self.count} images: the first {TABLE_LIMIT} and every failure are shown; "
                + ("all are in the CSV file." if self._csv is not None else "--csv FILE writes them all.")
            )
