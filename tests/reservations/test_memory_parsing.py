"""Amounts of a server's pooled capacities as people type them: 64G, 1T, 16 (cores)."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reservations.parsing import (
    MAX_CPU_CORES,
    MAX_MEMORY_GIB,
    ParseError,
    format_memory,
    parse_cpu_cores,
    parse_memory,
)


@pytest.mark.parametrize(
    "text, gib",
    [
        ("64", 64), ("64G", 64), ("64g", 64), ("64GiB", 64), ("64 GiB", 64), ("64GB", 64), (" 16 g ", 16),
        ("1T", 1024), ("1TiB", 1024), ("1.5T", 1536), ("2048M", 2), ("2048MiB", 2), ("0", 0), ("1P", 1024**2),
    ],
)
def test_memory_reads_as_written_in_gib(text, gib):
    assert parse_memory(text) == gib


@pytest.mark.parametrize(
    "text, message",
    [
        ("512M", r"0.5 GiB; memory is booked in whole GiB, e.g. 1G"),
        ("0.5G", r"whole GiB"),
        ("1.25G", r"1.25 GiB"),
        ("8k", r"too small"),
        ("64b", r"not an amount of memory; write GiB like 64, 64G"),
        ("lots", r"not an amount of memory"),
        ("", r"not an amount of memory"),
        ("-4G", r"not an amount of memory"),
        ("99999999999T", r"more memory than any server has"),
    ],
)
def test_bad_memory_amounts_say_what_would_be_right(text, message):
    with pytest.raises(ParseError, match=message):
        parse_memory(text)


@given(st.integers(min_value=0, max_value=MAX_MEMORY_GIB))
def test_memory_round_trips_through_its_short_form(gib):
    assert parse_memory(format_memory(gib)) == gib


@given(st.integers(min_value=0, max_value=MAX_MEMORY_GIB), st.sampled_from(["", "G", "GiB", "gb", " G"]))
def test_a_number_of_gib_reads_back_whatever_the_unit_spelling(gib, unit):
    assert parse_memory(f"{gib}{unit}") == gib


@given(st.integers(min_value=0, max_value=MAX_MEMORY_GIB // 1024), st.sampled_from(["T", "TiB", "t", "TB"]))
def test_terabytes_are_1024_gib(tib, unit):
    assert parse_memory(f"{tib}{unit}") == tib * 1024


@given(st.integers(min_value=1, max_value=10**6))
def test_mebibytes_that_are_not_whole_gib_are_refused_not_rounded(mib):
    text = f"{mib}M"
    if mib % 1024:
        with pytest.raises(ParseError, match="whole GiB"):
            parse_memory(text)
    else:
        assert parse_memory(text) == mib // 1024


@given(st.text(max_size=24))
def test_memory_parser_never_fails_with_anything_but_a_parse_error(text):
    try:
        result = parse_memory(text)
    except ParseError as error:
        assert str(error)
    else:
        assert isinstance(result, int) and 0 <= result <= MAX_MEMORY_GIB


@given(st.integers(min_value=0, max_value=MAX_CPU_CORES))
def test_cpu_cores_read_as_written(cores):
    assert parse_cpu_cores(str(cores)) == cores


@pytest.mark.parametrize("text", ["", "-1", "1.5", "sixteen", "٣", str(MAX_CPU_CORES + 1)])
def test_bad_cpu_core_counts_are_refused(text):
    with pytest.raises(ParseError, match="CPU cores"):
        parse_cpu_cores(text)
