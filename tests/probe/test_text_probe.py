import pytest

from curate.probe import Rejected
from curate.probe.text import TextCheck, check_text, decode_text


def test_valid_utf8_roundtrips():
    assert decode_text("héllo wörld".encode()) == "héllo wörld"


@pytest.mark.parametrize("raw,code", [
    (b"caf\xe9", "undecodable-text"),
    (b"", "empty-text"),
    (b"  \n\t ", "empty-text"),
    (b"x" * 11, "text-too-long"),
])
def test_bad_text_is_rejected_with_code(raw, code):
    with pytest.raises(Rejected) as info:
        decode_text(raw, TextCheck(max_bytes=10))
    assert info.value.code == code


def test_invalid_utf8_reports_byte_offset():
    with pytest.raises(Rejected, match="at byte 3"):
        decode_text(b"caf\xe9 au lait")


def test_lone_surrogates_from_json_or_csv_are_undecodable():
    with pytest.raises(Rejected) as info:
        check_text("ok \udce9 then")
    assert info.value.code == "undecodable-text"


def test_size_cap_counts_utf8_bytes_not_characters():
    check_text("é" * 5, TextCheck(max_bytes=10))  # 10 bytes: at the cap
    with pytest.raises(Rejected):
        check_text("é" * 6, TextCheck(max_bytes=10))
