"""Errors of the ingestion machinery. Transient ones are worth retrying; the rest are not."""

from __future__ import annotations


class EtlError(Exception):
    """Base class: a run failed for a reason we can name."""


class TransientError(EtlError):
    """Worth retrying later: timeouts, connection errors, 429, 5xx, a lost database."""


class UpstreamError(EtlError):
    """The upstream answered something we cannot use and retrying will not change that."""


class TransientUpstreamError(TransientError):
    """The upstream failed in a way that retrying may fix (it was retried already)."""


class SourceConfigError(EtlError):
    """The source is misconfigured (a missing folder, a bad URL, a rejected key)."""


class LeaseLostError(EtlError):
    """Another run took over this source's claim (ours was found dead); stop without
    committing."""


class RunAbandoned(EtlError):
    """Recorded on a run whose process died mid-run (its claim on the source was found dead)."""


class SourcePaused(EtlError):
    """Breaking schema drift under the pause policy: the source waits for an operator."""


class InjectedFault(EtlError):
    """Raised by fault injection (ETL_FAULTS) to exercise failure paths."""


def is_retryable(error: BaseException) -> bool:
    """Whether a run that failed with `error` is worth another try soon: transient upstream
    faults (timeouts, 429, 5xx) and database errors of the operational kind (a lost connection,
    a restart, a deadlock, a statement timeout): for the raw driver errors the COPY path can
    raise, the same classes Django's wrapper turns into its OperationalError. Stored on the run
    (`Run.retryable`), where the task reads it."""
    from django.db import InterfaceError, OperationalError

    transient: tuple[type[BaseException], ...] = (TransientError, OperationalError, InterfaceError)
    try:
        import psycopg
    except ImportError:  # zero-config installs may lack the PostgreSQL driver
        pass
    else:
        transient += (psycopg.OperationalError,)  # raised outside Django's wrapper (raw COPY)
    return isinstance(error, transient)


class ItemError(ValueError):
    """One item cannot be used; it goes to quarantine with this code and reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
