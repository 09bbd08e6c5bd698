"""What every API view shares: the response envelope, query-parameter validation, the rate
limits (charged by `kasparro.core.throttle`), and the error schema used in the OpenAPI
document."""

from __future__ import annotations

import math
import time
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiExample, OpenApiParameter
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kasparro.core.request_id import get_request_id
from kasparro.core.throttle import Charged, Read, throttle_request


class ErrorDetailSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField(required=False)


class ErrorSerializer(serializers.Serializer):
    """The one error shape, for every status."""

    error = ErrorDetailSerializer()
    request_id = serializers.CharField(allow_null=True)


class PaginationSerializer(serializers.Serializer):
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    total_items = serializers.IntegerField()
    total_pages = serializers.IntegerField()


class QueryText(serializers.CharField):
    """An optional free-text filter. Sent, it has 1 to `max_length` characters as sent (empty is
    a 400, see `ApiView.params`) and no NUL (the database cannot hold one; the schema's pattern
    says so); surrounding blanks are then ignored, so blanks alone filter nothing (the schema
    allows them, so they are not refused)."""

    def __init__(self, *, max_length: int, help_text: str | None = None) -> None:
        super().__init__(
            required=False,
            max_length=max_length,
            trim_whitespace=False,
            help_text=help_text,
            validators=[NO_NUL],
        )

    def run_validation(self, data=serializers.empty):
        return super().run_validation(data).strip()


def choice_parameter(
    choices: list[str], *, what: str, help_text: str | None = None
) -> serializers.ChoiceField:
    """An optional parameter with a closed set of values (an enum in the schema, spelled as
    listed); another value is a 400 that lists them."""
    return serializers.ChoiceField(
        choices=choices,
        required=False,
        help_text=help_text,
        error_messages={
            "invalid_choice": f"unknown {what} {{input!r}}; one of {', '.join(choices)}"
        },
    )


class PageParams(serializers.Serializer):
    limit = serializers.IntegerField(default=10, min_value=1, max_value=100)
    offset = serializers.IntegerField(default=0, min_value=0, max_value=10_000_000)


NO_NUL = RegexValidator(r"^[^\x00]*$", "must not contain a NUL character.")
EMPTY_PARAMETER = "must not be empty: leave the parameter out to leave it unset."

# Errors are JSON whatever was asked for (even on an endpoint that also answers CSV). A public
# endpoint answers 401 too: a key is not needed there, but a key sent is checked.
ERRORS = {(code, "application/json"): ErrorSerializer for code in (400, 401, 429, 503)}
AUTH_ERRORS = {(code, "application/json"): ErrorSerializer for code in (400, 401, 429, 503)}
NOT_FOUND = {(404, "application/json"): ErrorSerializer}


def parameter_examples(*, path: dict[str, Any] | None = None, **query: Any) -> list[OpenApiExample]:
    """One documented example value per parameter (query parameters as keywords, path ones in
    `path`): shown in the docs, and the values schemathesis's examples phase sends."""
    located = [(OpenApiParameter.PATH, name, value) for name, value in (path or {}).items()]
    located += [(OpenApiParameter.QUERY, name, value) for name, value in query.items()]
    return [
        OpenApiExample(name, value=value, parameter_only=(name, location))
        for location, name, value in located
    ]


def envelope_serializer(name: str, item: type[serializers.Serializer] | serializers.Field) -> type:
    """The OpenAPI shape of `{request_id, api_latency_ms, data: [item], pagination}`."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "request_id": serializers.CharField(allow_null=True),
            "api_latency_ms": serializers.FloatField(),
            "data": item(many=True) if isinstance(item, type) else item,
            "pagination": PaginationSerializer(),
        },
    )


# Accept headers that DRF's negotiation answers with JSON on every view (absent: the same).
JSON_ACCEPTS = frozenset({"*/*", "application/json"})
CREDENTIALS = ("HTTP_AUTHORIZATION", "HTTP_X_API_KEY")


class ApiView(APIView):
    def dispatch(self, request, *args, **kwargs):
        """A stored answer (or its 304) without DRF's request machinery, when nothing about the
        request needs it: a GET or HEAD with no credentials, no `format` and an Accept that
        can only mean JSON, to a public view (`AllowAny`: a key needs DRF's checks) whose
        handler has a cached answer (`crypto.response_cache`). It
        is charged to the rate limits and reads the answer in the same one round trip as
        below; anything else (throttled, nothing stored, an error) goes the whole way, with
        the charge already made (`precharged`)."""
        handler = getattr(self, request.method.lower(), None)
        stored_answer = getattr(handler, "stored_answer", None)
        if (
            stored_answer is not None
            and all(permission is AllowAny for permission in self.permission_classes)
            and request.META.get("HTTP_ACCEPT", "*/*") in JSON_ACCEPTS
            and "format" not in request.GET
            and not any(name in request.META for name in CREDENTIALS)
        ):
            charged = throttle_request(request, handler.cache_read(request))
            request.precharged = charged
            answer = None if charged.wait is not None else stored_answer(self, request, charged)
            if answer is not None:
                self.args, self.kwargs, self.request = args, kwargs, request
                self.headers = self.default_response_headers  # as DRF's dispatch sends them
                return self.finalize_response(request, answer, *args, **kwargs)
        return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Request, *args, **kwargs) -> None:
        """Every request is charged to the rate limits before DRF's checks: the address's and
        the key's together, in one round trip (`kasparro.core.throttle`), so the key is
        authenticated first. Credentials that are refused are charged to the address before
        their 401: a client guessing keys meets 429 once over its address's rate, not an
        endless stream of 401s. (DRF's own throttle step has no throttle classes to run.)"""
        try:
            self.perform_authentication(request)
        except (exceptions.AuthenticationFailed, exceptions.NotAuthenticated):
            self.charge_rate_limits(request, read=None)
            raise
        handler = getattr(self, request.method.lower(), None)
        reader = getattr(handler, "cache_read", None)  # a cached answer's keys, if it has one
        charged = getattr(request._request, "precharged", None)  # by `dispatch`
        if charged is None:
            self.charge_rate_limits(request, read=reader(request) if reader else None)
        else:
            self.rate_limits_charged(request, charged)
        super().initial(request, *args, **kwargs)  # authenticates no more: request.user is set

    def charge_rate_limits(self, request: Request, read: Read | None) -> None:
        """Charge the rate limits and, in the same round trip, `read` what the handler's cache
        wants (kept as `request.prefetched`, served only once every check has passed)."""
        self.rate_limits_charged(request, throttle_request(request, read))

    def rate_limits_charged(self, request: Request, charged: Charged) -> None:
        """A 429 when a limit refused the request; else what the round trip read is kept."""
        if charged.wait is not None:
            self.throttled(request, charged.wait)
        request.prefetched = charged

    @staticmethod
    def params(serializer_class: type[serializers.Serializer], request: Request) -> dict:
        """Validated query parameters; a bad one is a 400 naming it. An empty one (`?source=`)
        is bad too: the schema says a parameter is absent or has a value (`minLength` 1), and
        DRF would otherwise read an empty query value as absent."""
        serializer = serializer_class(data=request.query_params)
        empty = {
            name: [EMPTY_PARAMETER]
            for name in serializer.fields
            if "" in request.query_params.getlist(name)
        }
        if empty:
            raise serializers.ValidationError(empty)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @staticmethod
    def latency_ms(request: Request) -> float:
        started = getattr(getattr(request, "_request", request), "started_at", None)
        return round((time.perf_counter() - started) * 1000, 2) if started else 0.0

    def envelope(
        self, request: Request, data: list[Any], *, limit: int, offset: int, total: int
    ) -> Response:
        return Response(
            {
                "request_id": get_request_id(),
                "api_latency_ms": self.latency_ms(request),
                "data": data,
                "pagination": {
                    "limit": limit,
                    "offset": offset,
                    "total_items": total,
                    "total_pages": math.ceil(total / limit) if limit else 0,
                },
            }
        )
