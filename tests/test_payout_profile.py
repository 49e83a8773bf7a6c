"""Payout profiles and phone numbers: validation, masking, storage, completeness."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
import pytest

from rtserver.core.payout_profile import (
    Address,
    AddressIn,
    Billing,
    BillingIn,
    PayoutProfile,
    PayoutProfileBody,
    Tax,
    TaxIn,
    validate_address,
    validate_billing,
    validate_tax,
)
from rtserver.core.phone import normalize_phone
from rtserver.errors import InvalidField

GB_IBAN = "GB82 WEST 1234 5698 7654 32"
GB_IBAN_COMPACT = "GB82WEST12345698765432"
ROUTING = "011000015"


def us_billing(**kw: str) -> BillingIn:
    fields = {"account_number": "000123456789", "routing_number": ROUTING, **kw}
    return BillingIn(holder_name="Ada Lovelace", account_type="us", **fields)


def address(**kw: str) -> AddressIn:
    fields = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}
    return AddressIn(**{**fields, **kw})


@contextmanager
def invalid(field: str) -> Iterator[pytest.ExceptionInfo[InvalidField]]:
    """Every refusal names the exact field, so the client can point at it."""
    with pytest.raises(InvalidField) as info:
        yield info
    assert info.value.field == field, info.value.message


# --- billing: IBAN ----------------------------------------------------------------------


def test_valid_iban_is_stored_compact_upper_case() -> None:
    b = validate_billing(
        BillingIn(holder_name="  Ada Lovelace ", account_type="iban", iban=GB_IBAN.lower())
    )
    assert b == Billing("Ada Lovelace", "iban", GB_IBAN_COMPACT, None, None, "GB")


def test_iban_type_drops_us_fields() -> None:
    b = validate_billing(
        BillingIn(
            holder_name="Ada",
            account_type="iban",
            iban="DE89 3704 0044 0532 0130 00",
            account_number="1234",
            routing_number=ROUTING,
        )
    )
    assert (b.iban, b.account_number, b.routing_number, b.bank_country) == (
        "DE89370400440532013000",
        None,
        None,
        "DE",
    )


def test_iban_with_one_digit_changed_fails_its_check_digits() -> None:
    with invalid("billing.iban") as e:
        validate_billing(BillingIn(holder_name="Ada", account_type="iban", iban=GB_IBAN[:-1] + "3"))
    assert e.value.message == "IBAN check digits do not match"


@pytest.mark.parametrize(
    "iban",
    [
        None,
        "",
        "   ",
        "GB82WEST",
        "XX57WEST12345698765432",  # check digits right, but no such IBAN country
        "GB49WEST123456987654321",  # check digits right, one digit too long for GB
        "GB31WE5T12345698765432",  # check digits right, a digit where GB wants letters
        "GB82 WEST 1234 5698 7654 32 !",
    ],
)
def test_invalid_ibans(iban: str | None) -> None:
    with invalid("billing.iban"):
        validate_billing(BillingIn(holder_name="Ada", account_type="iban", iban=iban))


# --- billing: US account ----------------------------------------------------------------


def test_valid_us_account() -> None:
    b = validate_billing(
        us_billing(account_number=" 0001-2345 6789 ", routing_number=" 011000015 ")
    )
    assert b == Billing("Ada Lovelace", "us", None, "000123456789", ROUTING, "US")


def test_routing_number_with_a_bad_check_digit() -> None:
    with invalid("billing.routing_number") as e:
        validate_billing(us_billing(routing_number="011000016"))
    assert "check digit" in e.value.message


@pytest.mark.parametrize("routing", ["", "01100001", "0110000150", "01100001x"])
def test_routing_number_missing_or_malformed(routing: str) -> None:
    with invalid("billing.routing_number"):
        validate_billing(us_billing(routing_number=routing))


def test_routing_number_required() -> None:
    with invalid("billing.routing_number"):
        validate_billing(
            BillingIn(holder_name="Ada", account_type="us", account_number="123456789")
        )


@pytest.mark.parametrize("number", ["1234", "12345678901234567"])
def test_account_number_lengths_accepted(number: str) -> None:
    assert validate_billing(us_billing(account_number=number)).account_number == number


@pytest.mark.parametrize(
    "number", ["", "123", "123456789012345678", "12a45", "\uff11\uff12\uff13\uff14\uff15"]
)
def test_account_number_refused(number: str) -> None:
    with invalid("billing.account_number"):
        validate_billing(us_billing(account_number=number))


def test_account_number_required() -> None:
    with invalid("billing.account_number"):
        validate_billing(BillingIn(holder_name="Ada", account_type="us", routing_number=ROUTING))


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_holder_name_refused(name: str) -> None:
    with invalid("billing.holder_name"):
        validate_billing(BillingIn(holder_name=name, account_type="iban", iban=GB_IBAN))


def test_holder_name_length_is_checked_when_decoding() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"holder_name": "", "account_type": "us"}', type=BillingIn)


# --- address ----------------------------------------------------------------------------


def test_address_is_stripped_and_country_upper_cased() -> None:
    a = validate_address(
        AddressIn(
            line1=" 1 Main St ",
            line2=" Apt 2 ",
            city=" Springfield ",
            region=" IL ",
            postal_code=" 62701 ",
            country=" us ",
        )
    )
    assert a == Address("1 Main St", "Apt 2", "Springfield", "IL", "62701", "US")


@pytest.mark.parametrize("country", ["XX", "", "USA", "U", "zz"])
def test_unknown_country(country: str) -> None:
    with invalid("address.country"):
        validate_address(address(country=country))


@pytest.mark.parametrize("field", ["line1", "city", "postal_code"])
def test_required_address_fields(field: str) -> None:
    with invalid(f"address.{field}"):
        validate_address(address(**{field: "  "}))


def test_optional_address_fields_may_be_empty() -> None:
    a = validate_address(address(line2=" ", region=""))
    assert (a.line2, a.region) == ("", "")


# --- tax --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tax_id", "stored"),
    [
        ("12-3456789", "123456789"),  # EIN
        ("04-2103594", "042103594"),  # EIN
        ("536-90-4399", "536904399"),  # SSN
        ("536 90 4399", "536904399"),  # SSN typed with spaces
        ("912-70-1234", "912701234"),  # ITIN
    ],
)
def test_w9_takes_us_tins_as_compact_digits(tax_id: str, stored: str) -> None:
    t = validate_tax(TaxIn(form="W-9", legal_name=" Ada Lovelace ", tax_id=f" {tax_id} "))
    assert t == Tax("W-9", "Ada Lovelace", stored)


@pytest.mark.parametrize(
    "tax_id",
    [
        "",
        "123",
        "00-1234567",  # no such EIN prefix
        "000-00-0000",  # only an ATIN shape, never an SSN
        "078-05-1120",  # the famous wallet SSN, blacklisted
        "GB123456789",
    ],
)
def test_w9_refuses_non_tins(tax_id: str) -> None:
    with invalid("tax.tax_id"):
        validate_tax(TaxIn(form="W-9", legal_name="Ada", tax_id=tax_id))


def test_w8ben_takes_a_foreign_id_stripped() -> None:
    t = validate_tax(TaxIn(form="W-8BEN", legal_name="Ada", tax_id="  AB 12-34 cd  "))
    assert t == Tax("W-8BEN", "Ada", "AB 12-34 cd")


@pytest.mark.parametrize("tax_id", ["", "A", "x" * 41, "12/345", "12.345", "ÅB123"])
def test_w8ben_refuses_odd_ids(tax_id: str) -> None:
    with invalid("tax.tax_id"):
        validate_tax(TaxIn(form="W-8BEN", legal_name="Ada", tax_id=tax_id))


def test_tax_legal_name_required() -> None:
    with invalid("tax.legal_name"):
        validate_tax(TaxIn(form="W-8BEN", legal_name=" ", tax_id="AB1234"))


# --- the profile ------------------------------------------------------------------------

US_PROFILE = PayoutProfile().merged(
    PayoutProfileBody(
        billing=us_billing(),
        address=address(),
        tax=TaxIn(form="W-9", legal_name="Ada Lovelace", tax_id="536-90-4399"),
    )
)


def test_empty_profile_misses_everything() -> None:
    p = PayoutProfile()
    assert p.missing() == ["billing", "address", "tax"]
    assert not p.complete
    assert p.to_wire() == {
        "billing": None,
        "address": None,
        "tax": None,
        "complete": False,
        "missing": ["billing", "address", "tax"],
    }


def test_full_us_profile_is_complete() -> None:
    assert US_PROFILE.missing() == []
    assert US_PROFILE.complete


def test_merged_replaces_only_the_given_parts() -> None:
    p = US_PROFILE.merged(
        PayoutProfileBody(billing=BillingIn(holder_name="Ada", account_type="iban", iban=GB_IBAN))
    )
    assert p.billing is not None and p.billing.iban == GB_IBAN_COMPACT
    assert p.address == US_PROFILE.address
    assert p.tax == US_PROFILE.tax
    assert US_PROFILE.merged(PayoutProfileBody()) == US_PROFILE


def test_merged_with_a_bad_part_raises_and_changes_nothing() -> None:
    before = US_PROFILE
    with invalid("address.country"):
        US_PROFILE.merged(PayoutProfileBody(billing=us_billing(), address=address(country="XX")))
    assert before == US_PROFILE


def test_w9_with_a_foreign_address_is_not_complete() -> None:
    p = US_PROFILE.merged(PayoutProfileBody(address=address(country="de")))
    assert p.missing() == ["tax: W-9 is for US persons; use W-8BEN"]
    assert not p.complete
    fixed = p.merged(PayoutProfileBody(tax=TaxIn(form="W-8BEN", legal_name="Ada", tax_id="DE123")))
    assert fixed.complete


def test_w8ben_with_a_us_address_is_not_complete() -> None:
    p = US_PROFILE.merged(
        PayoutProfileBody(tax=TaxIn(form="W-8BEN", legal_name="Ada", tax_id="DE123"))
    )
    assert p.missing() == ["tax: W-8BEN is for non-US persons; use W-9"]


def test_tax_without_address_misses_only_the_address() -> None:
    p = PayoutProfile(tax=US_PROFILE.tax)
    assert p.missing() == ["billing", "address"]


def test_to_wire_masks_account_and_tax_id() -> None:
    w = US_PROFILE.to_wire()
    assert w == {
        "billing": {
            "holder_name": "Ada Lovelace",
            "account_type": "us",
            "account_masked": "•••• 6789",
            "routing_number": ROUTING,
            "bank_country": "US",
        },
        "address": {
            "line1": "1 Main St",
            "line2": "",
            "city": "Springfield",
            "region": "",
            "postal_code": "12345",
            "country": "US",
        },
        "tax": {"form": "W-9", "legal_name": "Ada Lovelace", "tax_id_masked": "•••• 4399"},
        "complete": True,
        "missing": [],
    }


def test_to_wire_masks_an_iban_to_its_last_four() -> None:
    p = PayoutProfile().merged(
        PayoutProfileBody(
            billing=BillingIn(holder_name="Ada", account_type="iban", iban=GB_IBAN),
            tax=TaxIn(form="W-8BEN", legal_name="Ada", tax_id="AB-12 3456-7890"),
        )
    )
    w = p.to_wire()
    assert w["billing"]["account_masked"] == "•••• 5432"
    assert w["tax"]["tax_id_masked"] == "•••• 7890"


@pytest.mark.parametrize(
    "body",
    [
        PayoutProfileBody(billing=BillingIn(holder_name="A", account_type="iban", iban=GB_IBAN)),
        PayoutProfileBody(billing=us_billing(account_number="98765432101234567")),
        PayoutProfileBody(tax=TaxIn(form="W-9", legal_name="A", tax_id="12-3456789")),
        PayoutProfileBody(tax=TaxIn(form="W-8BEN", legal_name="A", tax_id="ZZ9988776655443")),
    ],
)
def test_wire_form_never_shows_more_than_the_last_four(body: PayoutProfileBody) -> None:
    p = PayoutProfile().merged(body)
    secrets = [
        s
        for s in (
            p.billing and (p.billing.iban or p.billing.account_number),
            p.tax and p.tax.tax_id,
        )
        if s
    ]
    wire = msgspec.json.encode(p.to_wire()).decode()
    for secret in secrets:
        compact = secret.replace(" ", "").replace("-", "")
        # No five consecutive characters of the id appear anywhere in the wire form.
        for i in range(len(compact) - 4):
            assert compact[i : i + 5] not in wire
        assert compact[-4:] in wire


def test_json_round_trip_keeps_everything_unmasked() -> None:
    s = US_PROFILE.to_json()
    assert "000123456789" in s and "536904399" in s
    assert PayoutProfile.from_json(s) == US_PROFILE
    for p in (PayoutProfile(), PayoutProfile(address=US_PROFILE.address)):
        assert PayoutProfile.from_json(p.to_json()) == p


def test_body_decodes_from_json_ignoring_unknown_billing_fields() -> None:
    body = msgspec.json.decode(
        b'{"billing": {"holder_name": "Ada", "account_type": "iban", "iban": "'
        + GB_IBAN.encode()
        + b'", "bic": "WESTGB22"}}',
        type=PayoutProfileBody,
    )
    assert body.address is None and body.tax is None
    assert PayoutProfile().merged(body).missing() == ["address", "tax"]


# --- phone ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+14155550100", "+14155550100"),
        (" +1 (415) 555-0100 ", "+14155550100"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_phone_normalized_to_e164(raw: str, e164: str) -> None:
    assert normalize_phone(raw) == e164


@pytest.mark.parametrize(
    "raw", ["", "   ", "4155550100", "+1 415 555 01", "+999", "+", "+1 415 abc", "+1" + "5" * 60]
)
def test_phone_refused(raw: str) -> None:
    with invalid("phone"):
        normalize_phone(raw)
