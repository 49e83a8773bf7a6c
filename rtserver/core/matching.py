"""Who is offered an instant request, best first. Pure functions, no I/O.

An expert qualifies when he speaks the request's language and has at least
one of its skills. Among qualified experts the ranking is:

1. more of the request's skills first;
2. then the better rated (average review; an expert with no review yet
   counts as 0 here, so rated experts go first);
3. then the more responsive (the shorter median time from offer to answer;
   an expert who never answered comes after those who did);
4. then the one offered work least recently, to spread work around;
5. then by id, so that the order is total and tests are stable.

Verification is a tier above the ranking (:func:`tiered`): unverified experts
are offered work only when no verified one can take it.

An instant wave goes first to experts who hold no open offer of another
instant request (:func:`spread`): each can take only one, so a wave given to
experts already racing for other requests mostly comes back empty. Without
this, requests made at once all went to the same best few, each of whom won
one; the others chased them wave after wave (issue 8, defect 9).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass


def normalize(word: str) -> str:
    """Skills and languages compare case- and space-insensitively."""
    return " ".join(word.split()).casefold()


@dataclass(frozen=True, slots=True)
class Candidate:
    """What matching knows of one expert."""

    expert_id: str
    skills: frozenset[str]
    languages: frozenset[str]
    rating: float | None = None
    # Median milliseconds from offer to answer; None if he never answered.
    response_ms: int | None = None
    # Milliseconds since the epoch of his last offer; None if never offered.
    last_offered_ms: int | None = None
    verified: bool = False

    @classmethod
    def of(
        cls,
        expert_id: str,
        skills: Iterable[str],
        languages: Iterable[str],
        *,
        rating: float | None = None,
        response_ms: int | None = None,
        last_offered_ms: int | None = None,
        verified: bool = False,
    ) -> Candidate:
        """A candidate with normalized skills and languages."""
        return cls(
            expert_id,
            frozenset(normalize(s) for s in skills),
            frozenset(normalize(lang) for lang in languages),
            rating,
            response_ms,
            last_offered_ms,
            verified,
        )


@dataclass(frozen=True, slots=True)
class Need:
    """What a request asks for."""

    skills: frozenset[str]
    language: str

    @classmethod
    def of(cls, skills: Iterable[str], language: str) -> Need:
        """A need with normalized skills and language."""
        return cls(frozenset(normalize(s) for s in skills), normalize(language))


def overlap(candidate: Candidate, need: Need) -> int:
    """How many of the request's skills the expert has."""
    return len(candidate.skills & need.skills)


def qualifies(candidate: Candidate, need: Need) -> bool:
    """Speaks the language and has at least one of the skills."""
    return need.language in candidate.languages and overlap(candidate, need) > 0


def rank(candidates: Iterable[Candidate], need: Need) -> list[Candidate]:
    """The qualified candidates, best first (see the module docstring)."""

    def key(c: Candidate) -> tuple[int, float, float, int, str]:
        return (
            -overlap(c, need),
            -(c.rating if c.rating is not None else 0.0),
            c.response_ms if c.response_ms is not None else float("inf"),
            c.last_offered_ms if c.last_offered_ms is not None else -1,
            c.expert_id,
        )

    return sorted((c for c in candidates if qualifies(c, need)), key=key)


def next_wave(
    ranked: list[Candidate], already_offered: set[str], excluded: set[str], batch: int
) -> list[Candidate]:
    """The next ``batch`` candidates, skipping those already offered or excluded."""
    wave: list[Candidate] = []
    for c in ranked:
        if c.expert_id in already_offered or c.expert_id in excluded:
            continue
        wave.append(c)
        if len(wave) == batch:
            break
    return wave


def spread(ranked: Sequence[str], holding: Collection[str]) -> list[str]:
    """Experts who hold no open offer of another instant request first, then those
    who do (when nobody else is left); each group keeps its ranked order."""
    return [e for e in ranked if e not in holding] + [e for e in ranked if e in holding]


def tiered(ranked: list[Candidate], excluded: set[str]) -> list[Candidate]:
    """Verified experts only, unless none of them can be offered: then everyone.

    ``excluded`` are those who cannot take it now (offline, busy, booked).
    """
    verified = [c for c in ranked if c.verified and c.expert_id not in excluded]
    return [c for c in ranked if c.verified] if verified else ranked
