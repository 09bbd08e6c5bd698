"""What the run checks report: a finding of a rule, with a severity and a message for operators.
Shared by the comparison of two runs (runs/comparison.py) and the anomaly scoring of one run
against its history (runs/anomaly.py)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Finding:
    rule: str
    severity: str  # info | warning | critical
    message: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
