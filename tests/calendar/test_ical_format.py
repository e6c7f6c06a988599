"""The hand-written iCalendar writer against two parsers, for any text (hypothesis)."""
import unicodedata
from datetime import timedelta

import vobject
from hypothesis import given, settings, strategies as st
from icalendar import Calendar, vDuration

from reservations.calendar import duration, fold, text

# Any Unicode text except surrogates (not encodable as UTF-8, so never in a booking).
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


def expected(value):
    """What a calendar app shows for `value`: line breaks as \\n, other control characters gone."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch for ch in value if unicodedata.category(ch) != "Cc" or ch in "\n\t")


def document(summary):
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VEVENT", "UID:x@test",
             "DTSTAMP:20261123T120000Z", "DTSTART:20261124T120000Z", fold(f"SUMMARY:{text(summary)}"), "END:VEVENT", "END:VCALENDAR"]
    return "\r\n".join(lines) + "\r\n"


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_any_text_survives_escaping_and_folding(value):
    body = document(value)
    assert all(len(line.encode()) <= 75 for line in body.split("\r\n"))
    event = Calendar.from_ical(body).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == expected(value)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=300).filter(str.strip))
def test_vobject_reads_the_same_text(value):
    event = vobject.readOne(document(value)).vevent
    assert event.summary.value == value


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=400))
def test_folding_keeps_every_octet_and_never_splits_a_character(line):
    folded = fold(line)
    pieces = folded.split("\r\n ")
    assert "".join(pieces) == line
    assert all(len(piece.encode()) <= (75 if i == 0 else 74) for i, piece in enumerate(pieces))


@given(st.integers(min_value=1, max_value=400 * 86400))
def test_durations_read_back_as_written(seconds):
    delta = timedelta(seconds=seconds)
    assert vDuration.from_ical(duration(delta)) == delta
