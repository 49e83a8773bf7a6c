"""Phone numbers for text notifications, normalized to E.164. Pure.

There is no default region: a server has no idea where its user is, and
guessing turns a foreign local number into a valid-looking wrong one. So the
number must carry its country code after a leading ``+``.
"""

from __future__ import annotations

import phonenumbers

from rtserver.errors import InvalidField

# Far longer than any real number with spaces and punctuation; stops parsing junk early.
PHONE_INPUT_MAX = 40


def normalize_phone(raw: str) -> str:
    """``raw`` as E.164 (``"+14155550100"``), or ``InvalidField`` on field ``"phone"``."""
    value = raw.strip()
    if not value:
        raise InvalidField("phone number is required", "phone")
    if len(value) > PHONE_INPUT_MAX:
        raise InvalidField(f"phone number is longer than {PHONE_INPUT_MAX} characters", "phone")
    if not value.startswith("+"):
        raise InvalidField(
            "phone number must start with + and its country code, like +14155550100", "phone"
        )
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise InvalidField("phone number could not be read", "phone") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidField("phone number is not a valid number for its country", "phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
