"""DRF authentication: `Authorization: Token <key>` or `X-API-Key: <key>`."""

from __future__ import annotations

from rest_framework import authentication, exceptions, permissions

from kasparro.core.apikeys.models import APIKey
from kasparro.core.apikeys.services import apikey_verify


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


class APIKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        raw = request.META.get("HTTP_X_API_KEY", "").strip()
        if not raw:
            header = authentication.get_authorization_header(request).decode("latin-1").split()
            if not header or header[0].lower() not in ("token", "bearer"):
                return None
            if len(header) != 2:
                raise exceptions.AuthenticationFailed(
                    "Invalid Authorization header: expected 'Token <key>'."
                )
            raw = header[1]
        key = apikey_verify(raw_key=raw)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key.")
        return APIKeyPrincipal(key), key

    def authenticate_header(self, request) -> str:
        return self.keyword


class HasAPIKey(permissions.BasePermission):
    message = "An API key is required: send 'Authorization: Token <key>' or 'X-API-Key: <key>'."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, APIKey)
