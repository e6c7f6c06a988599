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
        yield "400", "Bad input (`invalid`): the message says what, `fields` names the inputs at fault."
        if not any(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            yield "401", "No token, or a revoked or unknown one (`unauthenticated`)."
        if self.method in UNSAFE:
            yield "403", (
                "`forbidden`: someone else's booking (only its holder or staff may change it), staff only, or a session "
                "request without its CSRF token; `not_allowed_here`: your group may not book there (`limit` says which rule)."
            )
        yield "404", "No such object, page or path (`not_found`)."
        if self.method in UNSAFE:
            yield "413", "`too_large`: the body is larger than the API reads (REQUEST_MAX_BYTES)."
        yield "414", "`uri_too_long`: the path and query are longer than the API reads (API_MAX_URI_LENGTH)."
        yield "429", "`throttled`: too many requests; Retry-After says when to try again."


# Rules between fields of a request body that the serializers' fields alone do not state.
ONE_OF = {
    "BookingCreateRequest": [("end", "duration")],
    "ExtendRequest": [("end", "duration")],
    "SeriesCreateRequest": [("end", "duration"), ("repeat", "rrule"), ("until", "count")],
}


def state_rules_between_fields(result, generator, request, public):
    """A postprocessing hook: each pair above, exactly one of the two (e.g. an end or a duration)."""
    schemas = result.get("components", {}).get("schemas", {})
    for name, pairs in ONE_OF.items():
        if name in schemas:
            schemas[name]["allOf"] = [{"oneOf": [{"required": [first]}, {"required": [second]}]} for first, second in pairs]
    return result
