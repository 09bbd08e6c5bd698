"""Template filters for market numbers (see crypto.formatting) and a server-side sparkline."""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from crypto import formatting

register = template.Library()

register.filter("price", formatting.price)
register.filter("money", formatting.money)
register.filter("exact", formatting.exact)
register.filter("percent", formatting.percent)
register.filter("trend", formatting.trend)


@register.simple_tag
def sparkline(line, width: int = 120, height: int = 32):
    """An inline SVG polyline of a crypto.dashboard.Sparkline (no JavaScript: the table works
    without it), titled with its source and the week's end."""
    points = line.points if line else ()
    if len(points) < 2:
        return mark_safe('<span class="spark-empty">—</span>')
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = width / (len(points) - 1)
    coords = " ".join(
        f"{i * step:.1f},{height - 2 - (p - low) / span * (height - 4):.1f}"
        for i, p in enumerate(points)
    )
    direction = "up" if points[-1] >= points[0] else "down"
    label = f"7-day price trend ({line.source}, to {line.end:%-d %b %Y %H:%M} UTC)"
    return format_html(
        '<svg class="spark {}" viewBox="0 0 {} {}" width="{}" height="{}" role="img" '
        'aria-label="{}"><title>{}</title><polyline fill="none" points="{}"/></svg>',
        direction,
        width,
        height,
        width,
        height,
        label,
        label,
        coords,
    )
