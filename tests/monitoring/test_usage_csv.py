"""The usage CSV never hands a spreadsheet a formula (CSV injection, as OWASP describes it): a text cell whose
first character a spreadsheet reads, past what it skips, starts a formula is prefixed with a single quote."""
import csv
import io
import unicodedata

import pytest
from django.contrib.auth.models import Group
from hypothesis import given
from hypothesis import strategies as st

from monitoring.views.usage import _cell

from .test_analytics import at, book, csv_url, eurostar, member_client, read_csv  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db

# What a spreadsheet may skip before the first character it reads: white space and line breaks of any kind,
# zero-width and other invisible (format) characters, control characters.
SKIPPED = " \t\r\n\x0b\x0c\x00\x1f\x85\xa0\u1680\u2000\u2007\u200a\u2028\u2029\u202f\u205f\u3000\u200b\u200c\u200d\u200e\u2060\ufeff\u180e"
TRIGGERS = "=+-@＝＋－＠﹦﹢﹣﹫−"


def what_a_spreadsheet_reads(cell):
    """The cell as the most lenient spreadsheet sees it: leading invisible characters dropped, fullwidth folded."""
    text = unicodedata.normalize("NFKC", cell)
    while text and (text[0].isspace() or unicodedata.category(text[0])[0] in "CZ"):
        text = text[1:]
    return text


def exported(text):
    """`text` written by csv.writer as the view writes a cell, and read back."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_cell(text)])
    return next(csv.reader(io.StringIO(buffer.getvalue())))[0]


def test_formula_cells_from_the_report_are_quoted(member_client, alice, eurostar):  # noqa: F811
    names = ["＝1+1", "\u200b=1+1", "\n=1+1", " @SUM(A1)", "\t-2", "plain"]
    for name in names:
        alice.groups.add(Group.objects.create(name=name))
    book(alice, eurostar, "0", at(10), at(11))

    rows = read_csv(member_client.get(csv_url(start="2026-03-02", end="2026-03-02", by="group")))

    assert sorted(row[0] for row in rows[1:]) == sorted(["'" + name for name in names[:-1]] + ["plain"])


@given(st.text(alphabet=st.sampled_from(SKIPPED + TRIGGERS + "'a1 "), max_size=8) | st.text(max_size=12))
def test_no_exported_cell_starts_a_formula(text):
    cell = exported(text)
    assert cell in (text, "'" + text)  # nothing is lost
    if text.startswith(("\t", "\r")):
        assert cell.startswith("'")
    assert not what_a_spreadsheet_reads(cell).startswith(tuple("=+-@−"))


def test_numbers_and_plain_text_are_left_as_they_are():
    assert [_cell(value) for value in (-1.5, 3, None, "a-b", "resnet = 50", "'quoted")] == ["-1.500", 3, "", "a-b", "resnet = 50", "'quoted"]
