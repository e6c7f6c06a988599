"""The API's JSON parser: DRF's, refusing JSON that nests deeper than MAX_JSON_DEPTH.

Python's JSON parser recurses as deep as the text nests, until a RecursionError (a 500). The body's
size is bounded before this runs: DRF reads a JSON body through Django's request.body, which refuses
one over DATA_UPLOAD_MAX_MEMORY_SIZE (errors.py makes that a 413).
"""
from rest_framework import exceptions, parsers
from rest_framework.utils import json

from ..parsing import ParseError, parse_json


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            return parse_json(stream.read().decode(encoding), parse_constant=json.strict_constant if self.strict else None)
        except (ParseError, UnicodeDecodeError) as error:
            raise exceptions.ParseError(f"JSON parse error - {error}") from None
