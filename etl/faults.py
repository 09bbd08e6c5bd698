"""Fault injection, to prove the failure paths: `ETL_FAULTS` or `etl run --faults`.

Spec: comma-separated `source:point:probability[@pageN]`, plus an optional `seed=N`.
`source` may be `*`; points are fetch, parse, normalize, load and checkpoint. Example:
`seed=7,coingecko:fetch:0.3,csv:load:1@page2` fails CoinGecko fetches 30% of the time and
the CSV load of the second page of every run. Refused unless `ETL_FAULTS_ALLOWED` is on
(it is by default only with DEBUG or in tests).
"""

from __future__ import annotations

import dataclasses
import random
import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from etl.exceptions import InjectedFault

POINTS = ("fetch", "parse", "normalize", "load", "checkpoint")
_RULE = re.compile(r"^(?P<source>[\w*-]+):(?P<point>\w+):(?P<p>[0-9.]+)(?:@page(?P<page>\d+))?$")


@dataclasses.dataclass(frozen=True)
class Rule:
    source: str
    point: str
    probability: float
    page: int | None


class FaultPlan:
    def __init__(self, rules: list[Rule], seed: int | None = None) -> None:
        self.rules = rules
        self.random = random.Random(seed)  # noqa: S311 - not for security

    @classmethod
    def parse(cls, spec: str | None) -> FaultPlan:
        rules: list[Rule] = []
        seed = None
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            if part.startswith("seed="):
                seed = int(part.removeprefix("seed="))
                continue
            match = _RULE.match(part)
            if not match or match["point"] not in POINTS:
                raise ImproperlyConfigured(
                    f"bad fault rule {part!r}: expected source:point:probability[@pageN] with "
                    f"point one of {', '.join(POINTS)}"
                )
            probability = float(match["p"])
            if not 0 <= probability <= 1:
                raise ImproperlyConfigured(f"bad fault rule {part!r}: probability not in [0, 1]")
            page = int(match["page"]) if match["page"] else None
            rules.append(Rule(match["source"], match["point"], probability, page))
        if rules and not settings.ETL_FAULTS_ALLOWED:
            raise ImproperlyConfigured(
                "fault injection is refused here: set ETL_FAULTS_ALLOWED=1 to allow it"
            )
        return cls(rules, seed)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def check(self, source: str, point: str, page: int) -> None:
        for rule in self.rules:
            if rule.point != point or rule.source not in (source, "*"):
                continue
            if rule.page is not None and rule.page != page:
                continue
            if rule.probability >= 1 or self.random.random() < rule.probability:
                raise InjectedFault(f"injected fault: {source}:{point} at page {page}")
