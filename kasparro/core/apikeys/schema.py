"""How API-key authentication appears in the OpenAPI document."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class APIKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "kasparro.core.apikeys.authentication.APIKeyAuthentication"
    name = ["TokenAuth", "ApiKeyAuth"]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`Token <key>`",
            },
            {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        ]
