"""Schema drift detection: a pure function of (expected schema, observed items).

Findings, each with a confidence (0-100) and a severity:
- `added`: a field the schema does not know - info;
- `missing`: an expected field absent from items - breaking for a key, cursor or required
  field with no rename to explain it, else warning;
- `renamed`: a missing field and a new one whose names match (thefuzz) and whose values have
  the expected type - warning, with a suggested mapping;
- `type_changed`: values of another type - warning when the normalizer can still read them
  (number as text, timestamp as epoch), breaking for a required field otherwise;
- `nullability`: a required field null or empty in some items - warning.

Fields the schema lists as `ignored` (an upstream's many fields we do not read) are known:
they are never drift. In `sparse` sources (CSV drops carry whichever optional columns they
like) an absent optional field is drift only when a new field looks like its rename.
Findings whose fingerprint was accepted by an operator are not reported.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from thefuzz import fuzz

from etl.parsing import parse_decimal
from etl.sources.base import Field

INFO, WARNING, BREAKING = "info", "warning", "breaking"
RENAME_MIN_SCORE = 80

_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
_TIMESTAMP = re.compile(
    r"^\s*(\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?"  # ISO 8601
    r"|([A-Z][a-z]{2},\s*)?\d{1,2}\s+[A-Z][a-z]{2}\s+\d{4}\s+\d{2}:\d{2})"  # RFC 822 (feeds)
)

# Which observed value types each expected type accepts, and which it can still coerce.
ACCEPTS = {
    "string": {"string", "numeric_string", "timestamp_string"},
    "number": {"number"},
    "integer": {"number"},
    "timestamp": {"timestamp_string"},
}
COERCIBLE = {
    "string": {"number"},
    "number": {"numeric_string"},
    "integer": {"numeric_string"},
    "timestamp": {"number", "numeric_string"},
}


@dataclasses.dataclass(frozen=True)
class DriftFinding:
    kind: str
    fields: tuple[str, ...]
    severity: str
    confidence: int
    message: str
    items: frozenset[int] = frozenset()  # indexes of the items that show it
    mapping: tuple[str, str] | None = None  # suggested (from observed name, to schema name)

    @property
    def fingerprint(self) -> str:
        return f"{self.kind}:{'>'.join(self.fields)}"


def value_type(value: Any, *, text_values: bool = False) -> str:
    """'null', 'boolean', 'number', 'numeric_string', 'timestamp_string', 'string',
    'object' or 'array'. Empty text counts as null in sources that only send text (CSV)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        if not value.strip():
            return "null"
        if _NUMBER.match(value):
            return "number" if text_values else "numeric_string"
        if _TIMESTAMP.match(value):
            return "timestamp_string"
        if text_values and _human_number(value):
            return "number"  # '$87,000', '1.7T': text drops write numbers for people
        return "string"
    return "array" if isinstance(value, list) else "object"


def _human_number(text: str) -> bool:
    try:
        return parse_decimal(text) is not None
    except ValueError:
        return False


def _words(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])|[_\-.]+", " ", name).lower().strip()


def _name_score(observed: str, field: Field) -> int:
    return max(
        max(fuzz.token_set_ratio(_words(observed), _words(n)), fuzz.ratio(observed, n))
        for n in (field.name, *field.aliases)
    )


def detect_drift(
    schema: Iterable[Field],
    items: list[dict],
    *,
    key_fields: Iterable[str] = (),
    cursor_field: str | None = None,
    text_values: bool = False,
    sparse: bool = False,
    accepted: frozenset[str] | set[str] = frozenset(),
) -> list[DriftFinding]:
    """Compare observed items (dicts of field -> value, names already mapped) with a schema."""
    schema = list(schema)
    if not items:
        return []
    by_name = {f.name: f for f in schema}
    known = {n for f in schema for n in (f.name, *f.aliases)}
    alias_of = {n: f.name for f in schema for n in (f.name, *f.aliases)}
    keys = set(key_fields)

    present: dict[str, set[int]] = defaultdict(set)  # schema field -> items carrying it
    types: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    unknown: dict[str, set[int]] = defaultdict(set)
    unknown_types: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        for name, value in item.items():
            kind = value_type(value, text_values=text_values)
            if name in known:
                field = alias_of[name]
                present[field].add(index)
                types[field][kind].add(index)
            elif not name.startswith("_"):
                unknown[name].add(index)
                unknown_types[name][kind].add(index)

    findings: list[DriftFinding] = []
    dict_items = {i for i, item in enumerate(items) if isinstance(item, dict)}

    def systematic(indexes: set[int]) -> bool:
        """Drift is a change in the shape of the data, not one bad item (those are
        quarantined one by one by the normalizer): at least half of the page shows it."""
        return 2 * len(indexes) >= len(dict_items) > 0

    # Key fields may stand in for each other (a CSV row needs a coin id OR a symbol).
    key_present = set().union(*(present.get(k, set()) for k in keys)) if keys else set()

    missing = []
    for field in schema:
        if field.ignored:
            continue
        absent = dict_items - present.get(field.name, set())
        if field.name in keys and len(keys) > 1:
            absent = dict_items - key_present
        essential = field.required or field.name in keys or field.name == cursor_field
        if systematic(absent) and (essential or absent == dict_items):
            missing.append((field, absent, essential))

    used_unknown: set[str] = set()
    for field, absent, essential in missing:
        candidates = []
        for name, indexes in unknown.items():
            observed = {t for t in unknown_types[name] if t != "null"}
            if not observed <= ACCEPTS[field.type] | COERCIBLE[field.type]:
                continue
            score = _name_score(name, field)
            if score >= RENAME_MIN_SCORE and indexes & absent:
                candidates.append((score, name))
        candidates.sort(reverse=True)
        if candidates:
            score, name = candidates[0]
            if len(candidates) > 1 and candidates[1][0] >= score - 10:
                score -= 20  # two plausible sources for one field: not a clear rename
            used_unknown.add(name)
            findings.append(
                DriftFinding(
                    kind="renamed",
                    fields=(field.name, name),
                    severity=WARNING,
                    confidence=score,
                    message=f"{field.name!r} seems renamed to {name!r} ({score}% match, "
                    f"{', '.join(sorted(unknown_types[name]))} values)",
                    items=frozenset(unknown[name]),
                    mapping=(name, field.name),
                )
            )
        elif field.fallback and absent <= present.get(field.fallback, set()):
            findings.append(
                DriftFinding(
                    kind="missing",
                    fields=(field.name,),
                    severity=WARNING,
                    confidence=90,
                    message=f"{field.name!r} is missing from {len(absent)} of {len(dict_items)} "
                    f"items; {field.fallback!r} can stand in for it",
                    items=frozenset(absent),
                    mapping=(field.fallback, field.name),
                )
            )
        elif essential or not sparse:
            findings.append(
                DriftFinding(
                    kind="missing",
                    fields=(field.name,),
                    severity=BREAKING if essential else WARNING,
                    confidence=100,
                    message=f"{field.name!r} is missing from {len(absent)} of {len(dict_items)} "
                    f"items" + (" (a key, cursor or required field)" if essential else ""),
                    items=frozenset(absent),
                )
            )

    for name, indexes in unknown.items():
        if name not in used_unknown:
            findings.append(
                DriftFinding(
                    kind="added",
                    fields=(name,),
                    severity=INFO,
                    confidence=100,
                    message=f"new field {name!r} in {len(indexes)} of {len(dict_items)} items",
                    items=frozenset(),
                )
            )

    for field_name, observed in types.items():
        field = by_name[field_name]
        if field.ignored:
            continue
        for kind, indexes in observed.items():
            if not systematic(indexes):
                continue
            if kind == "null":
                if field.required:
                    findings.append(
                        DriftFinding(
                            kind="nullability",
                            fields=(field_name,),
                            severity=WARNING,
                            confidence=100,
                            message=f"required {field_name!r} is null or empty in "
                            f"{len(indexes)} items",
                            items=frozenset(indexes),
                        )
                    )
                continue
            if kind in ACCEPTS[field.type]:
                continue
            coercible = kind in COERCIBLE[field.type]
            findings.append(
                DriftFinding(
                    kind="type_changed",
                    fields=(field_name, kind),
                    severity=WARNING if coercible or not field.required else BREAKING,
                    confidence=100,
                    message=f"{field_name!r} was {field.type}, now {kind} in {len(indexes)} items"
                    + (" (still readable)" if coercible else ""),
                    items=frozenset(indexes),
                )
            )

    return [f for f in findings if f.fingerprint not in accepted]
