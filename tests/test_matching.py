"""Who is offered an instant request, best first."""

from __future__ import annotations

from rtserver.core.matching import (
    Candidate,
    Need,
    next_wave,
    normalize,
    overlap,
    qualifies,
    rank,
    spread,
    tiered,
)


def cand(
    expert_id: str,
    skills: tuple[str, ...] = ("python",),
    languages: tuple[str, ...] = ("en",),
    *,
    rating: float | None = None,
    response_ms: int | None = None,
    last_offered_ms: int | None = None,
    verified: bool = False,
) -> Candidate:
    return Candidate.of(
        expert_id,
        skills,
        languages,
        rating=rating,
        response_ms=response_ms,
        last_offered_ms=last_offered_ms,
        verified=verified,
    )


def ids(candidates: list[Candidate]) -> list[str]:
    return [c.expert_id for c in candidates]


NEED = Need.of(["python", "sql", "docker"], "en")


# --- normalize ------------------------------------------------------------------------


def test_normalize_folds_case_and_collapses_space() -> None:
    assert normalize("Python") == "python"
    assert normalize("  Machine   Learning \t") == "machine learning"
    assert normalize("C++\n") == "c++"
    assert normalize("Straße") == "strasse"
    assert normalize("") == ""
    assert normalize("   ") == ""


def test_candidate_and_need_are_normalized() -> None:
    c = Candidate.of("e1", ["  PyThon ", "Web  Dev"], ["EN", "De"])
    assert c.skills == frozenset({"python", "web dev"})
    assert c.languages == frozenset({"en", "de"})
    assert c.rating is None
    assert c.response_ms is None
    assert c.verified is False
    assert c.last_offered_ms is None
    n = Need.of(["SQL", "sql ", "Docker"], " EN ")
    assert n.skills == frozenset({"sql", "docker"})
    assert n.language == "en"


# --- qualifies ------------------------------------------------------------------------


def test_qualifies_needs_the_language_and_one_skill() -> None:
    assert qualifies(cand("a", ("python",), ("en",)), NEED) is True
    assert qualifies(cand("b", ("go",), ("en",)), NEED) is False  # no skill
    assert qualifies(cand("c", ("python",), ("de",)), NEED) is False  # no language
    assert qualifies(cand("d", ("go",), ("de",)), NEED) is False
    assert qualifies(cand("e", (), ("en",)), NEED) is False
    assert qualifies(cand("f", ("python",), ()), NEED) is False


def test_qualifies_is_case_insensitive() -> None:
    need = Need.of(["PYTHON"], "EN")
    assert qualifies(cand("a", ("python",), ("en",)), need) is True
    assert qualifies(cand("b", ("Python",), ("En",)), Need.of(["python"], "en")) is True


def test_qualifies_with_several_languages() -> None:
    assert qualifies(cand("a", ("sql",), ("de", "fr", "en")), NEED) is True


def test_overlap_counts_shared_skills() -> None:
    assert overlap(cand("a", ("python", "sql", "go")), NEED) == 2
    assert overlap(cand("a", ("PYTHON", "SQL", "Docker")), NEED) == 3
    assert overlap(cand("a", ("go",)), NEED) == 0


# --- rank -----------------------------------------------------------------------------


def test_rank_drops_the_unqualified() -> None:
    out = rank([cand("a"), cand("b", ("go",)), cand("c", languages=("fr",)), cand("d")], NEED)
    assert ids(out) == ["a", "d"]


def test_rank_empty() -> None:
    assert rank([], NEED) == []
    assert rank([cand("x", ("go",))], NEED) == []


def test_rank_overlap_first() -> None:
    out = rank(
        [
            cand("one", ("python",), rating=5.0, response_ms=1_000),
            cand("three", ("python", "sql", "docker"), rating=1.0),
            cand("two", ("sql", "docker")),
        ],
        NEED,
    )
    assert ids(out) == ["three", "two", "one"]


def test_rank_then_rating() -> None:
    out = rank(
        [
            cand("low", rating=3.5, response_ms=1_000),
            cand("none", response_ms=1_000),
            cand("high", rating=4.9),
            cand("mid", rating=4.0),
        ],
        NEED,
    )
    # No rating counts as 0.
    assert ids(out) == ["high", "mid", "low", "none"]


def test_rank_then_responsiveness() -> None:
    out = rank(
        [
            cand("slow", rating=4.0, response_ms=90_000, last_offered_ms=0),
            cand("unknown", rating=4.0),
            cand("fast", rating=4.0, response_ms=5_000, last_offered_ms=5_000),
        ],
        NEED,
    )
    assert ids(out) == ["fast", "slow", "unknown"]


def test_rank_then_least_recently_offered_never_offered_first() -> None:
    out = rank(
        [
            cand("recent", last_offered_ms=3_000),
            cand("old", last_offered_ms=1_000),
            cand("never"),
            cand("epoch", last_offered_ms=0),
        ],
        NEED,
    )
    assert ids(out) == ["never", "epoch", "old", "recent"]


def test_rank_then_id() -> None:
    out = rank([cand("e3"), cand("e1"), cand("e2")], NEED)
    assert ids(out) == ["e1", "e2", "e3"]
    b = cand("b", rating=4.0, response_ms=30_000, last_offered_ms=10)
    a = cand("a", rating=4.0, response_ms=30_000, last_offered_ms=10)
    out = rank([b, a], NEED)
    assert ids(out) == ["a", "b"]


def test_rank_is_independent_of_input_order() -> None:
    cs = [
        cand("a", ("python",), rating=5.0),
        cand("b", ("python", "sql")),
        cand("c", ("python",), rating=5.0, response_ms=30_000),
        cand("d", ("python",), rating=5.0, response_ms=30_000, last_offered_ms=1),
        cand("e", ("python",), rating=5.0, response_ms=30_000, last_offered_ms=1),
    ]
    expected = ["b", "c", "d", "e", "a"]
    assert ids(rank(cs, NEED)) == expected
    assert ids(rank(list(reversed(cs)), NEED)) == expected
    assert ids(rank(iter(cs), NEED)) == expected


# --- next_wave ------------------------------------------------------------------------

RANKED = [cand(f"e{i}") for i in range(1, 8)]  # already in rank (id) order


def test_next_wave_takes_batch_best_first() -> None:
    assert ids(next_wave(RANKED, set(), set(), 3)) == ["e1", "e2", "e3"]
    assert ids(next_wave(RANKED, set(), set(), 1)) == ["e1"]


def test_next_wave_skips_already_offered() -> None:
    assert ids(next_wave(RANKED, {"e1", "e2", "e4"}, set(), 3)) == ["e3", "e5", "e6"]


def test_next_wave_skips_excluded() -> None:
    assert ids(next_wave(RANKED, {"e1"}, {"e2", "e3"}, 2)) == ["e4", "e5"]


def test_next_wave_returns_fewer_when_candidates_run_out() -> None:
    assert ids(next_wave(RANKED, {"e1", "e2", "e3", "e4", "e5"}, {"e7"}, 5)) == ["e6"]
    assert next_wave(RANKED, {c.expert_id for c in RANKED}, set(), 5) == []
    assert next_wave([], set(), set(), 5) == []


def test_next_wave_batch_larger_than_pool() -> None:
    assert ids(next_wave(RANKED, set(), set(), 100)) == [f"e{i}" for i in range(1, 8)]


def test_next_wave_keeps_the_ranked_order() -> None:
    ranked = [cand("z"), cand("a"), cand("m")]
    assert ids(next_wave(ranked, set(), set(), 2)) == ["z", "a"]


def test_successive_waves_cover_everyone_once() -> None:
    offered: set[str] = set()
    waves = []
    while wave := next_wave(RANKED, offered, {"e4"}, 2):
        waves.append(ids(wave))
        offered.update(ids(wave))
    assert waves == [["e1", "e2"], ["e3", "e5"], ["e6", "e7"]]


def test_rank_then_shorter_median_response() -> None:
    out = rank([cand("slow", response_ms=120_000), cand("fast", response_ms=8_000)], NEED)
    assert ids(out) == ["fast", "slow"]


def test_tiered_offers_verified_experts_only_when_one_can_take_it() -> None:
    ranked = rank(
        [cand("pending", rating=5.0), cand("v1", verified=True), cand("v2", verified=True)], NEED
    )
    assert ids(tiered(ranked, set())) == ["v1", "v2"]
    # One verified still free: only he.
    assert ids(tiered(ranked, {"v1"})) == ["v1", "v2"]
    # No verified one can take it: everyone, best first.
    assert ids(tiered(ranked, {"v1", "v2"})) == ["pending", "v1", "v2"]
    assert ids(tiered(rank([cand("p")], NEED), set())) == ["p"]


def test_spread_puts_experts_racing_for_another_request_last_in_their_order() -> None:
    assert spread(["a", "b", "c", "d"], {"a", "c"}) == ["b", "d", "a", "c"]
    # Nobody else: the holders still make the wave.
    assert spread(["a", "c"], {"a", "c"}) == ["a", "c"]
    assert spread([], {"a"}) == []
