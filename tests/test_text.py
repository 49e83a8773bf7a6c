"""E-mail keys and names shown to others, pure."""

from __future__ import annotations

import pytest

from rtserver.core.text import clean_name, clean_text, email_key
from rtserver.errors import InvalidField


def test_email_keys_fold_case_beyond_ascii() -> None:
    assert email_key("STRASSE@Example.com") == email_key("straße@example.com")
    # U+01C4 (one letter), U+01C5 (its title case) and D + U+017D are one address.
    assert email_key("\u01c4@x.org") == email_key("\u01c5@x.org") == email_key("D\u017d@x.org")
    assert email_key("\uff46oo@x.org") == email_key("foo@x.org")  # full-width f
    assert email_key("ΣΊΣΥΦΟΣ@x.org") == email_key("σίσυφος@x.org")
    assert email_key("  Bob@X.org ") == "bob@x.org"
    assert email_key("bob@x.org") != email_key("rob@x.org")


@pytest.mark.parametrize(
    "bad",
    [
        "Eve\u202egnp.exe",  # right-to-left override
        "\u2066Eve\u2069",  # isolates
        "Eve\u200b",  # zero-width space
        "Eve\ufeff",  # byte-order mark
        "Eve\x00",
        "Eve\x1b[31m",
        "Eve\nAdmin",
        "Eve\u2028Admin",  # line separator
        "\u200dEve",  # a joiner with nothing to join
        "   ",
        "",
    ],
)
def test_names_with_invisible_or_control_characters_are_refused(bad: str) -> None:
    with pytest.raises(InvalidField) as err:
        clean_name(bad)
    assert err.value.field == "name"


def test_visible_names_pass_stripped() -> None:
    assert clean_name("  Zoë Ωmega  ") == "Zoë Ωmega"
    # Persian needs the zero-width non-joiner between letters; emoji need the joiner.
    assert clean_name("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645")
    assert clean_name("\U0001f469\u200d\U0001f4bb Ada") == "\U0001f469\u200d\U0001f4bb Ada"
    assert clean_name("", "title", required=False) == ""


def test_multi_line_text_keeps_line_breaks_but_not_bidi_overrides() -> None:
    assert clean_text("line one\n\tline two\r\n", "bio") == "line one\n\tline two\r\n"
    with pytest.raises(InvalidField):
        clean_text("ok\u202e", "bio")
    with pytest.raises(InvalidField):
        clean_text("bell\x07", "bio")
