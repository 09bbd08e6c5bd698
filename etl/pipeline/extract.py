"""Extract: pages from the source's `fetch(cursor)`, with the fault-injection points of fetching
and parsing, and a read-ahead thread that lets fetching and transforming (no database) run a
page ahead of the page transaction in progress."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

from etl.faults import FaultPlan
from etl.sources.base import Page, Source

T = TypeVar("T")


def extract(source: Source, cursor: dict, plan: FaultPlan) -> Iterator[tuple[int, Page]]:
    """(page number, page) from the cursor on; the source's generator is closed on exit."""
    pages = source.fetch(cursor)
    number = 0
    try:
        while True:
            number += 1
            plan.check(source.name, "fetch", number)
            try:
                page = next(pages)
            except StopIteration:
                return
            plan.check(source.name, "parse", number)
            yield number, page
    finally:
        pages.close()


_DONE = object()


def read_ahead(iterator: Iterator[T], depth: int) -> Iterator[T]:
    """Run `iterator` in a helper thread, `depth` pages ahead of the consumer."""
    if depth <= 0:
        yield from iterator
        return
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: object) -> bool:
        """Hand a value to the consumer unless it has gone away."""
        while not stop.is_set():
            try:
                buffer.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for prepared in iterator:
                if not put(prepared):
                    return
            put(_DONE)
        except BaseException as exc:
            put(exc)
        finally:
            iterator.close()

    context = contextvars.copy_context()  # log lines from the thread keep the run's tags
    thread = threading.Thread(
        target=context.run, args=(produce,), name="etl-read-ahead", daemon=True
    )
    thread.start()
    try:
        while True:
            got = buffer.get()
            if got is _DONE:
                return
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()
        thread.join(timeout=30)
