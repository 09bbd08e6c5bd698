"""Numbers as people read them: prices with sensible significant digits, money in human units,
signed percentages. Used by the dashboard's templates and by the admin."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

Number = Decimal | float | int | str | None

_UNITS = ((Decimal(10) ** 12, "T"), (Decimal(10) ** 9, "B"), (Decimal(10) ** 6, "M"))


def _decimal(value: Number) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def price(value: Number) -> str:
    """$87,645.00 · $0.9998 · $0.00000721: two decimals from $1, else four significant digits."""
    number = _decimal(value)
    if number is None:
        return "—"
    sign, magnitude = ("-" if number < 0 else ""), abs(number)
    if magnitude >= 1 or magnitude == 0:
        return f"{sign}${magnitude:,.2f}"
    digits = max(2, -magnitude.adjusted() + 3)  # four significant digits
    return f"{sign}${magnitude:.{digits}f}"


def money(value: Number) -> str:
    """$1.75T · $35.0B · $512.3M · $12,345: human units from a million up."""
    number = _decimal(value)
    if number is None:
        return "—"
    sign, magnitude = ("-" if number < 0 else ""), abs(number)
    for size, unit in _UNITS:
        if magnitude >= size:
            scaled = magnitude / size
            text = f"{scaled:.2f}" if scaled < 10 else f"{scaled:.1f}"
            return f"{sign}${text}{unit}"
    return f"{sign}${magnitude:,.0f}"


def exact(value: Number) -> str:
    """The exact value with thousands separators, trailing zeros dropped (for a tooltip)."""
    number = _decimal(value)
    if number is None:
        return ""
    text = f"{number.normalize():,f}"
    return text


def percent(value: Number) -> str:
    """+2.34% · -0.51% · 0.00%."""
    number = _decimal(value)
    if number is None:
        return "—"
    return f"{number:+.2f}%" if number else "0.00%"


def trend(value: Number) -> str:
    """`up`, `down` or `flat`: a CSS class for a change."""
    number = _decimal(value)
    if not number:
        return "flat"
    return "up" if number > 0 else "down"
