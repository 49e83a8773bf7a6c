"""Text that identifies people or is shown to others: e-mail keys and names. Pure.

E-mail addresses are compared by a key: NFKC normalisation and full Unicode
case folding (``str.casefold``), the "NFKC_Casefold" of Unicode's caseless
identifier matching, so that ``STRASSE@x`` and ``straße@x``, ``Ǆ`` and
``DŽ``, or a full-width and a plain ``f`` are one address. The address is kept
as the user typed it for display and mail.

Names and titles shown to others are one line of visible text: control
characters (``Cc``), format characters (``Cf``: the bidi overrides and
isolates that make ``U+202E`` turn ``exe.txt`` around, zero-width spaces, the
BOM), surrogates and line or paragraph separators are refused. The two
joiners (ZWJ, ZWNJ) are format characters that Persian and Indic names and
emoji sequences need; they are allowed between two visible characters, as
RFC 8264 (PRECIS) allows them in context.
"""

from __future__ import annotations

import unicodedata

from rtserver.errors import InvalidField

_JOINERS = frozenset("\u200c\u200d")
# Refused anywhere: controls, format characters, surrogates, line/paragraph separators.
_REFUSED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Multi-line text (a bio) may keep its line breaks and tabs.
_TEXT_CONTROLS = frozenset("\n\r\t")


def email_key(email: str) -> str:
    """The key two addresses are compared by: NFKC, then full case folding, twice
    (folding can leave a string that NFKC changes again, and back)."""
    key = email.strip()
    for _ in range(2):
        key = unicodedata.normalize("NFKC", key).casefold()
    return key


def _bad(text: str, allowed: frozenset[str] = frozenset()) -> str | None:
    """The first character of ``text`` that may not be shown, or None."""
    for i, ch in enumerate(text):
        if ch in allowed:
            continue
        if ch in _JOINERS:
            before = text[i - 1] if i > 0 else ""
            after = text[i + 1] if i + 1 < len(text) else ""
            if _visible(before) and _visible(after):
                continue
            return ch
        if unicodedata.category(ch) in _REFUSED:
            return ch
    return None


def _visible(ch: str) -> bool:
    return bool(ch) and not ch.isspace() and unicodedata.category(ch) not in _REFUSED


def clean_name(value: str, field: str = "name", *, required: bool = True) -> str:
    """A name or title shown to others, stripped; :class:`InvalidField` if it holds
    an invisible or control character, or (``required``) nothing visible."""
    value = value.strip()
    bad = _bad(value)
    if bad is not None:
        raise InvalidField(
            f"{field} must not contain control or formatting characters (U+{ord(bad):04X})", field
        )
    if required and not value:
        raise InvalidField(f"{field} must not be empty", field)
    return value


def clean_text(value: str, field: str) -> str:
    """Multi-line text shown to others (a bio): as :func:`clean_name`, but line breaks
    and tabs are kept, and it may be empty."""
    bad = _bad(value, _TEXT_CONTROLS)
    if bad is not None:
        raise InvalidField(
            f"{field} must not contain control or formatting characters (U+{ord(bad):04X})", field
        )
    return value
