"""How API-key authentication appears in the OpenAPI document: two security schemes, either
of which is enough (OpenAPI's list of alternatives, not one requirement naming both)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class APIKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "kasparro.core.apikeys.authentication.APIKeyAuthentication"
    name = ["TokenAuth", "ApiKeyAuth"]

    def get_security_requirement(self, auto_schema) -> list[dict]:
        return [{name: []} for name in self.name]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`Token <key>`. Send this or `X-API-Key`, not two different "
                "keys: a request whose two headers disagree is a 401 (`conflicting_credentials`).",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Key",
                "description": "`<key>`, the key alone. Send this or `Authorization: Token <key>`.",
            },
        ]
