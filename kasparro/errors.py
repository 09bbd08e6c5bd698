"""Domain exceptions shared by every app. Services raise these; the API handler renders them."""

from __future__ import annotations


class ApplicationError(Exception):
    """A domain rule was broken; the message is safe to show to the caller."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, details: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFoundError(ApplicationError):
    status_code = 404
    code = "not_found"
