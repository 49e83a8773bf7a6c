"""Sending e-mails and text messages, behind one small interface.

The core never sends anything itself: it writes to the outbox (in the same
transaction as what the message is about), and a node drains the outbox
through a :class:`Sender`. The default :class:`LogSender` writes each message
to the log (``rtserver.notify``); a real provider (SMTP, an SMS gateway)
implements :class:`Sender` and is passed to ``create_app``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("rtserver.notify")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to one address."""

    channel: str  # "email" or "sms"
    address: str
    subject: str
    body: str
    # Unique per message and the same on every try of it: the outbox delivers
    # at least once, so a provider that takes an idempotency key (a Message-ID)
    # should be given this one.
    key: str = ""


class Sender(Protocol):
    """Delivers outgoing messages; raising means "try again later".

    A message that keeps failing is tried with a growing delay and, after the
    last try (``--timer-attempts``), becomes a dead letter that a manager sees
    and may retry; the error's text is what he reads.
    """

    async def send(self, message: Outgoing) -> None:
        """Deliver one message."""
        ...


class LogSender:
    """The default: each message becomes one log line."""

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    async def send(self, message: Outgoing) -> None:
        """Log the message (and keep it, for whoever embeds the server)."""
        self.sent.append(message)
        if len(self.sent) > 1000:
            del self.sent[:500]
        log.info(
            "%s to=%s subject=%r body=%r",
            message.channel,
            message.address,
            message.subject,
            message.body,
        )


@dataclass(frozen=True, slots=True)
class Transfer:
    """Money to send to an expert's bank: one payout.

    ``payout_id`` is unique per payout; a real payer passes it to its bank
    or payment provider as the idempotency key, because the outbox delivers
    at least once.
    """

    payout_id: str
    expert_id: str
    period: str
    amount_cents: int
    currency: str
    holder_name: str
    account_type: str
    iban: str | None
    account_number: str | None
    routing_number: str | None


class Payer(Protocol):
    """Sends payouts; raising means "try again later"."""

    async def pay(self, transfer: Transfer) -> None:
        """Send one transfer."""
        ...


class LogPayer:
    """The default: each transfer becomes one log line (account numbers masked)."""

    def __init__(self) -> None:
        self.paid: list[Transfer] = []

    async def pay(self, transfer: Transfer) -> None:
        """Log the transfer (and keep it, for whoever embeds the server)."""
        self.paid.append(transfer)
        if len(self.paid) > 1000:
            del self.paid[:500]
        account = transfer.iban or transfer.account_number or ""
        log.info(
            "payout id=%s expert=%s period=%s amount_cents=%d %s to=%s account=****%s",
            transfer.payout_id,
            transfer.expert_id,
            transfer.period,
            transfer.amount_cents,
            transfer.currency,
            transfer.holder_name,
            account[-4:],
        )
