"""DRF authentication: `Authorization: Token <key>` or `X-API-Key: <key>`, one credential.

A request that carries both headers must name the same key in both (`Authorization: Token
<the X-API-Key value>`); any other pair, an empty header included, is a conflict, refused with
a 401 that says so, rather than one header silently winning over the other.
"""

from __future__ import annotations

from rest_framework import authentication, exceptions, permissions

from kasparro.core.apikeys.models import APIKey
from kasparro.core.apikeys.services import apikey_verify

SCHEMES = ("token", "bearer")


class APIKeyPrincipal:
    """What `request.user` is for a request authenticated by an API key."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False

    def __init__(self, key: APIKey) -> None:
        self.key = key
        self.username = f"apikey:{key.name}"
        self.pk = None

    def __str__(self) -> str:
        return self.username


class ConflictingCredentials(exceptions.AuthenticationFailed):
    default_code = "conflicting_credentials"


class APIKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        header_key = request.META.get("HTTP_X_API_KEY", "").strip()
        authorization = authentication.get_authorization_header(request).decode("latin-1")
        token = self._token(authorization) if authorization.strip() else None
        # Both headers sent (even one of them empty): they must carry the same key.
        both = "HTTP_X_API_KEY" in request.META and "HTTP_AUTHORIZATION" in request.META
        if both and (not header_key or token != header_key):
            raise ConflictingCredentials(
                "Conflicting credentials: the Authorization header and X-API-Key do not carry "
                "the same key; send one of them."
            )
        raw = header_key or token
        if not raw:
            return None
        key = apikey_verify(raw_key=raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key.")
        return APIKeyPrincipal(key), key

    @staticmethod
    def _token(authorization: str) -> str | None:
        """The key in `Token <key>` (or `Bearer <key>`); None for another scheme, which this
        authentication leaves alone; a 401 for a token header that is not `Token <key>`."""
        parts = authorization.split()
        if parts[0].lower() not in SCHEMES:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid Authorization header: expected 'Token <key>'."
            )
        return parts[1]

    def authenticate_header(self, request) -> str:
        return self.keyword


class HasAPIKey(permissions.BasePermission):
    message = "An API key is required: send 'Authorization: Token <key>' or 'X-API-Key: <key>'."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, APIKey)
