"""An expert's payout profile: where to send money, where they live, their tax form. Pure.

The HTTP layer decodes a ``PayoutProfileBody`` (any part may be given) and
``PayoutProfile.merged`` validates and replaces only those parts, so an expert
can fill the profile in over several visits. Every check-digit, country and tax
id rule is delegated to ``python-stdnum`` and ``pycountry``: these rules change
(new IBAN countries, new SSN ranges) and a library update is the cheap way to
follow them.

Account and tax ids are stored in full (``to_json``) because payouts and tax
reports need them, but ``to_wire`` shows only their last four characters:
whatever reads the wire form (a browser, a log, a support screen) never needs more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
import pycountry
from stdnum import iban as std_iban
from stdnum.exceptions import (
    InvalidChecksum,
    InvalidComponent,
    InvalidFormat,
    InvalidLength,
    ValidationError,
)
from stdnum.us import rtn as std_rtn
from stdnum.us import tin as std_tin

from rtserver.errors import InvalidField

NAME_MAX = 200
LINE_MAX = 200
CITY_MAX = 100
REGION_MAX = 100
POSTAL_CODE_MAX = 20
# The longest IBAN is 34 characters; the slack is for the spaces people type.
IBAN_MAX = 64
ACCOUNT_INPUT_MAX = 40
TAX_ID_INPUT_MAX = 64

MASK = "••••"

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_MAX)]

# stdnum.us.tin also accepts an ATIN (adoption taxpayer id), which a W-9 does not.
_W9_TIN_KINDS = {"ssn", "itin", "ein"}
_ACCOUNT_NUMBER = re.compile(r"[0-9]{4,17}")
_ACCOUNT_SEPARATORS = re.compile(r"[ -]")
_FOREIGN_TAX_ID = re.compile(r"[A-Za-z0-9 -]{2,40}")


class BillingIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    """Where payouts go, as sent by the client: an IBAN, or a US account and routing number."""

    holder_name: Name
    account_type: Literal["iban", "us"]
    iban: Annotated[str, msgspec.Meta(max_length=IBAN_MAX)] | None = None
    account_number: Annotated[str, msgspec.Meta(max_length=ACCOUNT_INPUT_MAX)] | None = None
    routing_number: Annotated[str, msgspec.Meta(max_length=ACCOUNT_INPUT_MAX)] | None = None


class AddressIn(msgspec.Struct, kw_only=True):
    """The expert's address as sent; ``country`` is ISO 3166-1 alpha-2 in any case."""

    line1: Annotated[str, msgspec.Meta(max_length=LINE_MAX)]
    line2: Annotated[str, msgspec.Meta(max_length=LINE_MAX)] = ""
    city: Annotated[str, msgspec.Meta(max_length=CITY_MAX)]
    region: Annotated[str, msgspec.Meta(max_length=REGION_MAX)] = ""
    postal_code: Annotated[str, msgspec.Meta(max_length=POSTAL_CODE_MAX)]
    country: Annotated[str, msgspec.Meta(max_length=8)]


class TaxIn(msgspec.Struct, kw_only=True):
    """The tax form as sent: a W-9 (US person, US TIN) or a W-8BEN (foreign person)."""

    form: Literal["W-9", "W-8BEN"]
    legal_name: Name
    tax_id: Annotated[str, msgspec.Meta(max_length=TAX_ID_INPUT_MAX)]


class PayoutProfileBody(msgspec.Struct, kw_only=True):
    """The PUT body: each part given is validated and replaces the stored one."""

    billing: BillingIn | None = None
    address: AddressIn | None = None
    tax: TaxIn | None = None


@dataclass(frozen=True, slots=True)
class Billing:
    """A validated payout account.

    ``iban`` is compact upper-case; ``bank_country`` is the IBAN's country, or
    ``"US"`` for a US account. Only the fields of ``account_type`` are set.
    """

    holder_name: str
    account_type: str
    iban: str | None
    account_number: str | None
    routing_number: str | None
    bank_country: str


@dataclass(frozen=True, slots=True)
class Address:
    """A validated address; ``country`` is upper-case ISO 3166-1 alpha-2."""

    line1: str
    line2: str
    city: str
    region: str
    postal_code: str
    country: str


@dataclass(frozen=True, slots=True)
class Tax:
    """A validated tax form; a W-9 ``tax_id`` is compact digits."""

    form: str
    legal_name: str
    tax_id: str


def _text(value: str, field: str, max_len: int, *, required: bool = True) -> str:
    """``value`` stripped; structs built in code skip msgspec's Meta, so lengths are rechecked."""
    out = value.strip()
    if required and not out:
        raise InvalidField(f"{field} is required", field)
    if len(out) > max_len:
        raise InvalidField(f"{field} is longer than {max_len} characters", field)
    return out


def _iban(raw: str | None) -> str:
    field = "billing.iban"
    value = (raw or "").strip()
    if not value:
        raise InvalidField("an IBAN is required for account_type iban", field)
    try:
        return str(std_iban.validate(value))
    except InvalidChecksum:
        raise InvalidField("IBAN check digits do not match", field) from None
    except InvalidLength:
        raise InvalidField("IBAN has the wrong length for its country", field) from None
    except InvalidComponent:
        raise InvalidField(
            "IBAN country code is not one that issues IBANs, or its bank code is not valid",
            field,
        ) from None
    except InvalidFormat:
        raise InvalidField(
            "IBAN does not have the length or format its country uses", field
        ) from None
    except ValidationError:
        raise InvalidField("IBAN is not valid", field) from None


def _account_number(raw: str | None) -> str:
    field = "billing.account_number"
    # People copy account numbers from statements that group digits with spaces or dashes.
    value = _ACCOUNT_SEPARATORS.sub("", (raw or "").strip())
    if not value:
        raise InvalidField("an account number is required for account_type us", field)
    if not _ACCOUNT_NUMBER.fullmatch(value):
        raise InvalidField("account number must be 4 to 17 digits", field)
    return value


def _routing_number(raw: str | None) -> str:
    field = "billing.routing_number"
    value = (raw or "").strip()
    if not value:
        raise InvalidField("a routing number is required for account_type us", field)
    try:
        return str(std_rtn.validate(value))
    except InvalidChecksum:
        raise InvalidField("routing number check digit does not match", field) from None
    except ValidationError:
        raise InvalidField("routing number must be 9 digits", field) from None


def validate_billing(b: BillingIn) -> Billing:
    """A ``Billing`` from the client's ``BillingIn``, or ``InvalidField`` naming the bad field.

    Fields of the other account type are dropped rather than refused: a form
    that switched type may still send them, and storing them would keep account
    numbers nobody pays to.
    """
    holder = _text(b.holder_name, "billing.holder_name", NAME_MAX)
    if b.account_type == "iban":
        number = _iban(b.iban)
        return Billing(holder, "iban", number, None, None, number[:2])
    if b.account_type == "us":
        account = _account_number(b.account_number)
        routing = _routing_number(b.routing_number)
        return Billing(holder, "us", None, account, routing, "US")
    raise InvalidField("account_type must be iban or us", "billing.account_type")


def _country(raw: str) -> str:
    field = "address.country"
    value = raw.strip().upper()
    if not value:
        raise InvalidField("country is required", field)
    if pycountry.countries.get(alpha_2=value) is None:
        raise InvalidField("country must be an ISO 3166-1 two-letter code, like US", field)
    return value


def validate_address(a: AddressIn) -> Address:
    """An ``Address`` with stripped fields and an upper-case country, or ``InvalidField``."""
    return Address(
        line1=_text(a.line1, "address.line1", LINE_MAX),
        line2=_text(a.line2, "address.line2", LINE_MAX, required=False),
        city=_text(a.city, "address.city", CITY_MAX),
        region=_text(a.region, "address.region", REGION_MAX, required=False),
        postal_code=_text(a.postal_code, "address.postal_code", POSTAL_CODE_MAX),
        country=_country(a.country),
    )


def _us_tin(raw: str) -> str:
    field = "tax.tax_id"
    value = raw.strip().replace(" ", "")
    if not value:
        raise InvalidField("a tax id is required", field)
    if not set(std_tin.guess_type(value)) & _W9_TIN_KINDS:
        raise InvalidField("a W-9 tax id must be a valid US SSN, ITIN or EIN", field)
    # Nine digits whatever the kind: the dashes only say which kind, and guess_type decided.
    return str(std_tin.compact(value))


def _foreign_tax_id(raw: str) -> str:
    value = raw.strip()
    if not _FOREIGN_TAX_ID.fullmatch(value):
        raise InvalidField(
            "a W-8BEN tax id must be 2 to 40 letters, digits, spaces or dashes", "tax.tax_id"
        )
    return value


def validate_tax(t: TaxIn) -> Tax:
    """A ``Tax`` whose id suits its form, or ``InvalidField``."""
    legal_name = _text(t.legal_name, "tax.legal_name", NAME_MAX)
    if t.form == "W-9":
        return Tax("W-9", legal_name, _us_tin(t.tax_id))
    if t.form == "W-8BEN":
        return Tax("W-8BEN", legal_name, _foreign_tax_id(t.tax_id))
    raise InvalidField("form must be W-9 or W-8BEN", "tax.form")


def _masked(value: str) -> str:
    """The last four characters that mean something: separators would waste the reveal."""
    significant = value.replace(" ", "").replace("-", "")
    return f"{MASK} {significant[-4:]}"


@dataclass(frozen=True, slots=True)
class PayoutProfile:
    """An expert's stored payout profile; each part is ``None`` until first given."""

    billing: Billing | None = None
    address: Address | None = None
    tax: Tax | None = None

    def merged(self, body: PayoutProfileBody) -> PayoutProfile:
        """This profile with each part given in ``body`` validated and replaced.

        Nothing is replaced unless every given part is valid, so a bad field
        never leaves the profile half updated.
        """
        billing = validate_billing(body.billing) if body.billing is not None else self.billing
        address = validate_address(body.address) if body.address is not None else self.address
        tax = validate_tax(body.tax) if body.tax is not None else self.tax
        return PayoutProfile(billing, address, tax)

    def missing(self) -> list[str]:
        """What still stands between this profile and a payout, empty when complete.

        Each entry starts with the part it concerns: a bare ``"billing"``,
        ``"address"`` or ``"tax"`` when that part is not set, or ``"tax: <why>"``
        when the tax form does not fit the address country (a W-9 is for US
        persons, a W-8BEN for everyone else), since the payout provider would
        refuse such a pair.
        """
        parts = {"billing": self.billing, "address": self.address, "tax": self.tax}
        out = [name for name, part in parts.items() if part is None]
        if self.tax is not None and self.address is not None:
            us = self.address.country == "US"
            if self.tax.form == "W-9" and not us:
                out.append("tax: W-9 is for US persons; use W-8BEN")
            elif self.tax.form == "W-8BEN" and us:
                out.append("tax: W-8BEN is for non-US persons; use W-9")
        return out

    @property
    def complete(self) -> bool:
        """Nothing is missing: payouts may be sent."""
        return not self.missing()

    def to_wire(self) -> dict[str, Any]:
        """The client's view: account and tax ids masked to their last four characters."""
        billing: dict[str, Any] | None = None
        if self.billing is not None:
            b = self.billing
            number = b.iban if b.account_type == "iban" else b.account_number
            billing = {
                "holder_name": b.holder_name,
                "account_type": b.account_type,
                "account_masked": _masked(number or ""),
                "routing_number": b.routing_number,
                "bank_country": b.bank_country,
            }
        address: dict[str, Any] | None = None
        if self.address is not None:
            a = self.address
            address = {
                "line1": a.line1,
                "line2": a.line2,
                "city": a.city,
                "region": a.region,
                "postal_code": a.postal_code,
                "country": a.country,
            }
        tax: dict[str, Any] | None = None
        if self.tax is not None:
            tax = {
                "form": self.tax.form,
                "legal_name": self.tax.legal_name,
                "tax_id_masked": _masked(self.tax.tax_id),
            }
        missing = self.missing()
        return {
            "billing": billing,
            "address": address,
            "tax": tax,
            "complete": not missing,
            "missing": missing,
        }

    def to_json(self) -> str:
        """The full, unmasked profile for storage; never send it to a client."""
        return msgspec.json.encode(self).decode()

    @classmethod
    def from_json(cls, s: str) -> PayoutProfile:
        """A profile back from ``to_json``; stored data was validated on the way in."""
        return msgspec.json.decode(s, type=cls)
