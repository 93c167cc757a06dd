"""What an operating point's threshold is chosen for: a sensitivity, a specificity, or Youden's J
(``--operating-point sensitivity=0.95``), parsed once for the settings and the evaluation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

TargetKind = Literal["sensitivity", "specificity", "youden"]
_TARGET = re.compile(r"^\s*(sensitivity|specificity)\s*=\s*([0-9]*\.?[0-9]+)\s*$|^\s*(youden)\s*$")


@dataclass(frozen=True)
class Target:
    """What the threshold is chosen for: ``sensitivity=0.95``, ``specificity=0.90`` or ``youden``."""

    kind: TargetKind
    value: float | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        """The target ``text`` names; ``ValueError`` (one sentence) for anything else."""
        found = _TARGET.match(str(text))
        if found is None:
            raise ValueError(
                f"'{text}' is not an operating point; use sensitivity=0.95, specificity=0.90 or youden"
            )
        if found.group(3):
            return cls("youden")
        value = float(found.group(2))
        if not 0 < value < 1:
            raise ValueError(f"the target {found.group(1)} must lie strictly between 0 and 1, not {value:g}")
        return cls(found.group(1), value)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}={self.value:g}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value}
