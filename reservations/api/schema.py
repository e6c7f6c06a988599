"""The OpenAPI schema: every operation lists the errors it can answer, in the one error shape."""
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework.permissions import AllowAny

from .serializers import ErrorSerializer

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def error(description):
    return OpenApiResponse(ErrorSerializer, description=description)


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in self._errors():
            if code not in responses:
                responses[code] = self._get_response_for_code(error(description), code, direction=direction)
        return responses

    def _errors(self):
        yield "400", "Bad input: the message says what, `fields` names the inputs at fault."
        if not any(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            yield "401", "No token, or a revoked or unknown one."
        if self.method in UNSAFE:
            yield "403", "Someone else's booking (only its holder or staff may change it), or a session request without its CSRF token."
        yield "404", "No such object, page or path."
        yield "429", "Too many requests; Retry-After says when to try again."
