"""The OpenAPI schema is valid and documents what the API answers; the docs page serves its own assets."""
import pytest
import yaml
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_the_schema_validates_as_openapi_3(schema):
    validate_schema(schema)

    assert schema["openapi"].startswith("3.")


def test_the_schema_is_served_at_api_schema(anon):
    response = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    validate_schema(response.json())


def test_the_served_yaml_validates(anon):
    response = anon.get("/api/schema/")

    validate_schema(yaml.safe_load(response.content))


def test_every_operation_of_the_contract_is_documented(schema):
    operations = {(path, method) for path, item in schema["paths"].items() for method in item}

    assert operations == {
        ("/api/v1/me/", "get"),
        ("/api/v1/auth/token/", "post"),
        ("/api/v1/servers/", "get"),
        ("/api/v1/servers/{name}/", "get"),
        ("/api/v1/devices/", "get"),
        ("/api/v1/devices/{id}/", "get"),
        ("/api/v1/rooms/", "get"),
        ("/api/v1/rooms/{id}/", "get"),
        ("/api/v1/bookings/", "get"),
        ("/api/v1/bookings/", "post"),
        ("/api/v1/bookings/{id}/", "get"),
        ("/api/v1/bookings/{id}/", "delete"),
        ("/api/v1/bookings/{id}/cancel/", "post"),
        ("/api/v1/bookings/{id}/release/", "post"),
        ("/api/v1/bookings/{id}/extend/", "post"),
        ("/api/v1/bookings/{id}/history/", "get"),
        ("/api/v1/series/", "post"),
        ("/api/v1/series/{id}/", "get"),
        ("/api/v1/series/{id}/", "delete"),
        ("/api/v1/series/{id}/approve/", "post"),
        ("/api/v1/series/{id}/decline/", "post"),
        ("/api/v1/bookings/{id}/approve/", "post"),
        ("/api/v1/bookings/{id}/decline/", "post"),
        ("/api/v1/claims/", "post"),
        ("/api/v1/availability/", "get"),
        ("/api/v1/telemetry/latest/", "get"),
        ("/api/v1/telemetry/history/", "get"),
        ("/api/v1/waitlist/", "get"),
        ("/api/v1/waitlist/", "post"),
        ("/api/v1/waitlist/{id}/", "delete"),
        ("/api/v1/waitlist/{id}/claim/", "post"),
    }


def test_booking_writes_document_the_error_shape_for_each_refusal(schema):
    responses = schema["paths"]["/api/v1/bookings/"]["post"]["responses"]

    assert {"201", "400", "401", "403", "409", "413", "414", "429", "503"} <= set(responses)
    assert responses["409"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert set(schema["components"]["schemas"]["ErrorBody"]["properties"]) == {"code", "message", "fields", "limit", "conflicts"}


def test_the_error_code_enum_names_every_code_the_api_answers(schema):
    from reservations.api.errors import CODES

    codes = schema["components"]["schemas"]["ErrorCodeEnum"]["enum"]

    assert set(codes) == set(CODES)
    assert {"limit_exceeded", "not_allowed_here", "wrong_state", "too_large", "uri_too_long", "throttled", "busy"} <= set(codes)


def test_the_limit_in_an_error_is_documented(schema):
    limit = schema["components"]["schemas"]["Limit"]

    assert set(limit["properties"]) == {"kind", "source", "says"}


def test_cancel_by_delete_answers_200_with_the_booking(schema):
    responses = schema["paths"]["/api/v1/bookings/{id}/"]["delete"]["responses"]

    assert responses["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Booking"}


def test_the_token_header_is_the_security_scheme(schema):
    assert schema["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": schema["components"]["securitySchemes"]["tokenAuth"]["description"],
    }
    assert schema["paths"]["/api/v1/auth/token/"]["post"].get("security") in (None, [], [{}])


def test_the_bookings_filters_are_documented(schema):
    names = {p["name"] for p in schema["paths"]["/api/v1/bookings/"]["get"]["parameters"]}

    assert names == {"mine", "user", "server", "device", "room", "status", "state", "start", "end", "page", "page_size"}


def test_swagger_ui_uses_the_sidecar_assets_not_a_cdn(anon):
    response = anon.get("/api/docs/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn" not in page.lower()
