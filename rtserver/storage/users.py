"""Users, expert profiles and the per-expert facts that matching reads."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from rtserver.core.matching import Candidate, Need, normalize
from rtserver.core.text import email_key
from rtserver.errors import AlreadyExists
from rtserver.storage.db import new_id
from rtserver.storage.sql import Conn, Db, IntegrityError, Row

Role = Literal["customer", "expert", "manager"]


@dataclass(frozen=True, slots=True)
class User:
    """An account."""

    id: str
    email: str
    name: str
    role: Role
    password_hash: str
    presence: str = "away"
    status: str = "active"
    phone: str | None = None
    created_at_ms: int = 0

    def person(self) -> dict[str, Any]:
        """``{id, name, role}``: how a user appears inside another object."""
        return {"id": self.id, "name": self.name, "role": self.role}

    def public(self) -> dict[str, Any]:
        """``{id, email, name, role}``: the user as register and login return it."""
        return {"id": self.id, "email": self.email, "name": self.name, "role": self.role}

    @property
    def suspended(self) -> bool:
        """A manager suspended this account: no login, no sockets, no offers."""
        return self.status == "suspended"


@dataclass(frozen=True, slots=True)
class Profile:
    """An expert's preferences (the portal's My Preferences)."""

    title: str = ""
    skills: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    years_experience: int = 0
    rate_cents_per_15min: int = 0
    bio: str = ""
    verification_status: str = "pending"
    rating_sum: int = 0
    rating_count: int = 0
    response_ms: int | None = None

    @property
    def rating(self) -> float | None:
        """The average of his reviews, or None before the first."""
        return self.rating_sum / self.rating_count if self.rating_count else None

    def public_wire(self, user: User) -> dict[str, Any]:
        """The public profile: what a profile link shows to anyone."""
        rating = self.rating
        return {
            "id": user.id,
            "name": user.name,
            **self.to_wire(),
            "rating": {
                "average": round(rating, 1) if rating is not None else None,
                "count": self.rating_count,
            },
            "median_response_seconds": round(self.response_ms / 1000, 1)
            if self.response_ms is not None
            else None,
        }

    def to_wire(self) -> dict[str, Any]:
        """The fields of ``GET /api/me`` for an expert."""
        return {
            "title": self.title,
            "skills": self.skills,
            "languages": self.languages,
            "years_experience": self.years_experience,
            "rate_cents_per_15min": self.rate_cents_per_15min,
            "bio": self.bio,
            "verification_status": self.verification_status,
        }


def _user(row: Row) -> User:
    return User(
        row["id"],
        row["email"],
        row["name"],
        row["role"],
        row["password_hash"],
        row["presence"],
        row["status"],
        row["phone"],
        row["created_at"],
    )


def _profile(row: Row) -> Profile:
    return Profile(
        row["title"],
        json.loads(row["skills"]),
        json.loads(row["languages"]),
        row["years_experience"],
        row["rate_cents_per_15min"],
        row["bio"],
        row["verification_status"],
        row["rating_sum"],
        row["rating_count"],
        row["response_ms"],
    )


# How many of an expert's latest answers his median response time is taken over.
RESPONSE_WINDOW = 50
# An expert's latest answer times: read from the index offers_answer_times alone.
RECENT_ANSWERS = (
    "SELECT closed_at - created_at FROM offers WHERE expert_id = ?"
    " AND status IN ('accepted', 'declined') AND closed_at IS NOT NULL"
    " ORDER BY closed_at DESC LIMIT ?"
)


class UserStore:
    """Accounts and expert profiles."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def create(
        self, email: str, password_hash: str, name: str, role: Role, now_ms: int
    ) -> User:
        """A new account; :class:`AlreadyExists` if the e-mail is taken.

        The e-mail is kept as typed, and compared by its key (full Unicode case
        folding): ``STRASSE@x`` is taken once ``straße@x`` is.
        """
        user = User(
            new_id("u"), email.strip(), name.strip(), role, password_hash, created_at_ms=now_ms
        )
        try:
            async with self.db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO users (id, email, email_key, password_hash, name, role,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        user.id,
                        user.email,
                        email_key(user.email),
                        password_hash,
                        user.name,
                        role,
                        now_ms,
                    ),
                )
                if role == "expert":
                    await conn.execute(
                        "INSERT INTO expert_profiles (user_id, updated_at) VALUES (?, ?)",
                        (user.id, now_ms),
                    )
        except IntegrityError:
            raise AlreadyExists("this e-mail is already registered", "email") from None
        return user

    async def by_email(self, email: str) -> User | None:
        """The account with this e-mail (compared by its key: Unicode case folding), or None."""
        row = await self.db.fetchone("SELECT * FROM users WHERE email_key = ?", (email_key(email),))
        return _user(row) if row else None

    async def by_id(self, user_id: str) -> User | None:
        """The account with this id, or None."""
        return await self.db.read(lambda conn: self.by_id_in(conn, user_id))

    async def by_id_in(self, conn: Conn, user_id: str) -> User | None:
        """:meth:`by_id`, inside a unit of work (``Db.read`` or ``write``)."""
        row = await conn.fetchrow("SELECT * FROM users WHERE id = ?", (user_id,))
        return _user(row) if row else None

    async def lock_in(self, conn: Conn, user_id: str) -> None:
        """Hold the account's row until the commit of the caller's write transaction:
        money moved for one user (a payout, a refund) is decided one at a time, and
        an expert turns busy or is offered work one at a time."""
        # NO KEY UPDATE: what an UPDATE of the row takes. FOR UPDATE would also hold
        # off every insert whose foreign key names the user (a session, an offer, a
        # ledger row take KEY SHARE of his row), and waits in cycles with them.
        await conn.lock("SELECT id FROM users WHERE id = ? FOR NO KEY UPDATE", (user_id,))

    async def lock_free_of(self, conn: Conn, user_ids: list[str]) -> set[str]:
        """Lock those of these accounts no other transaction holds, skipping the others,
        until the commit of the caller's write transaction; the ones locked. Only where
        rows lock one by one (``conn.row_locks``: PostgreSQL)."""
        if not user_ids:
            return set()
        marks = ",".join("?" * len(user_ids))
        rows = await conn.fetch(
            f"SELECT id FROM users WHERE id IN ({marks}) ORDER BY id FOR NO KEY UPDATE SKIP LOCKED",
            sorted(user_ids),
        )
        return {r[0] for r in rows}

    async def many(self, user_ids: list[str]) -> dict[str, User]:
        """Accounts by id."""
        if not user_ids:
            return {}
        return await self.db.read(lambda conn: self.many_in(conn, user_ids))

    async def many_in(self, conn: Conn, user_ids: list[str]) -> dict[str, User]:
        """:meth:`many`, inside a unit of work
        (:meth:`Db.read` or ``write``)."""
        if not user_ids:
            return {}
        marks = ",".join("?" * len(user_ids))
        rows = await conn.fetch(f"SELECT * FROM users WHERE id IN ({marks})", user_ids)
        return {r["id"]: _user(r) for r in rows}

    async def set_presence(self, user_id: str, status: str) -> None:
        """An expert's availability, kept across connections."""
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE users SET presence = ? WHERE id = ?", (status, user_id))

    async def profile(self, user_id: str) -> Profile | None:
        """An expert's profile, or None for other roles."""
        row = await self.db.fetchone("SELECT * FROM expert_profiles WHERE user_id = ?", (user_id,))
        return _profile(row) if row is not None else None

    async def put_profile(self, user_id: str, p: Profile, now_ms: int) -> None:
        """Replace an expert's preferences (verification status is not his to set)."""
        skills = sorted({normalize(s) for s in p.skills})
        languages = sorted({normalize(lang) for lang in p.languages})
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE expert_profiles SET title = ?, skills = ?, languages = ?,"
                " years_experience = ?, rate_cents_per_15min = ?, bio = ?, updated_at = ?"
                " WHERE user_id = ?",
                (
                    p.title,
                    json.dumps(p.skills),
                    json.dumps(p.languages),
                    p.years_experience,
                    p.rate_cents_per_15min,
                    p.bio,
                    now_ms,
                    user_id,
                ),
            )
            await conn.execute("DELETE FROM expert_skills WHERE user_id = ?", (user_id,))
            await conn.execute("DELETE FROM expert_languages WHERE user_id = ?", (user_id,))
            await conn.executemany(
                "INSERT INTO expert_skills (user_id, skill) VALUES (?, ?)",
                [(user_id, s) for s in skills],
            )
            await conn.executemany(
                "INSERT INTO expert_languages (user_id, language) VALUES (?, ?)",
                [(user_id, lang) for lang in languages],
            )

    async def still_free(self, conn: Conn, expert_ids: list[str]) -> list[str]:
        """Those of these experts still available and in no active session (in order),
        read inside the caller's write transaction (a unit of work:
        :meth:`Db.write`)."""
        if not expert_ids:
            return []
        marks = ",".join("?" * len(expert_ids))
        rows = await conn.fetch(
            f"SELECT id FROM users WHERE id IN ({marks}) AND presence = 'available'"
            " AND status = 'active'"
            " AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.expert_id = users.id"
            " AND s.status = 'active')",
            expert_ids,
        )
        free = {r[0] for r in rows}
        return [e for e in expert_ids if e in free]

    async def candidates(self, need: Need, *, available_only: bool) -> list[Candidate]:
        """Experts who qualify for ``need`` (language and one skill), from storage.

        ``available_only`` keeps those whose presence is ``available``; whether
        they are connected and free is for the caller to check.
        """
        if not need.skills:
            return []
        marks = ",".join("?" * len(need.skills))
        presence = "AND u.presence = 'available'" if available_only else ""
        # One row per matching skill, gathered here: SQLite's group_concat and
        # PostgreSQL's string_agg have no common spelling.
        rows = await self.db.fetchall(
            f"""
            SELECT u.id, u.last_offered_at, s.skill,
                p.rating_sum, p.rating_count, p.response_ms, p.verification_status
            FROM expert_skills s
            JOIN users u ON u.id = s.user_id
            JOIN expert_profiles p ON p.user_id = u.id
            JOIN expert_languages l ON l.user_id = u.id AND l.language = ?
            WHERE s.skill IN ({marks}) AND u.role = 'expert' AND u.status = 'active'
                AND p.verification_status != 'rejected' {presence}
            ORDER BY u.id
            """,
            [need.language, *sorted(need.skills)],
        )
        first: dict[str, Row] = {}
        matched: dict[str, set[str]] = {}
        for r in rows:
            first.setdefault(r["id"], r)
            matched.setdefault(r["id"], set()).add(r["skill"])
        return [
            Candidate(
                r["id"],
                frozenset(matched[r["id"]]),
                frozenset([need.language]),
                rating=r["rating_sum"] / r["rating_count"] if r["rating_count"] else None,
                response_ms=r["response_ms"],
                last_offered_ms=r["last_offered_at"],
                verified=r["verification_status"] == "verified",
            )
            for r in first.values()
        ]

    async def offerable(self, expert_ids: list[str] | None) -> list[Candidate]:
        """Experts who may be offered an instant request now, as far as their account
        tells (an active expert, available, not rejected), with every skill and
        language and what the ranking reads; all of them, or those of ``expert_ids``.

        Connected and free are for the caller to check. The rows of
        :class:`rtserver.hub.roster.Roster`.
        """
        where = (
            "u.role = 'expert' AND u.status = 'active' AND u.presence = 'available'"
            " AND p.verification_status != 'rejected'"
        )
        params: list[str] = []
        if expert_ids is not None:
            if not expert_ids:
                return []
            where += f" AND u.id IN ({','.join('?' * len(expert_ids))})"
            params = expert_ids
        rows = await self.db.fetchall(
            "SELECT u.id, u.last_offered_at, p.skills, p.languages, p.rating_sum,"
            " p.rating_count, p.response_ms, p.verification_status"
            f" FROM users u JOIN expert_profiles p ON p.user_id = u.id WHERE {where}",
            params,
        )
        # Skills and languages from the profile's own lists, normalized as
        # put_profile normalizes them into expert_skills / expert_languages:
        # those tables are keyed by skill, and read by user they are a scan.
        return [
            Candidate.of(
                r["id"],
                json.loads(r["skills"]),
                json.loads(r["languages"]),
                rating=r["rating_sum"] / r["rating_count"] if r["rating_count"] else None,
                response_ms=r["response_ms"],
                last_offered_ms=r["last_offered_at"],
                verified=r["verification_status"] == "verified",
            )
            for r in rows
        ]

    # -- the portal ---------------------------------------------------------------

    async def set_phone(self, user_id: str, phone: str | None) -> None:
        """A user's phone number for texts (E.164), or None."""
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE users SET phone = ? WHERE id = ?", (phone, user_id))

    async def set_status(self, conn: Conn, user_id: str, status: str) -> bool:
        """Suspend or restore an account, inside the caller's transaction; False if unchanged."""
        changed = await conn.execute(
            "UPDATE users SET status = ? WHERE id = ? AND status != ?", (status, user_id, status)
        )
        return changed == 1

    async def set_verification(self, conn: Conn, user_id: str, status: str) -> bool:
        """A manager's verification of an expert, inside the caller's transaction."""
        changed = await conn.execute(
            "UPDATE expert_profiles SET verification_status = ? WHERE user_id = ?",
            (status, user_id),
        )
        return changed == 1

    async def note_response(self, conn: Conn, expert_id: str) -> None:
        """Recompute an expert's median response time after he answered an offer,
        inside the caller's transaction (a unit of work of ``Db.write``).

        The median over his latest answers (accepted or declined offers), so
        one slow day long ago does not follow him forever.
        """
        rows = await conn.fetch(RECENT_ANSWERS, (expert_id, RESPONSE_WINDOW))
        times = sorted(max(0, int(r[0])) for r in rows)
        if not times:
            return
        mid = len(times) // 2
        median = times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) // 2
        await conn.execute(
            "UPDATE expert_profiles SET response_ms = ? WHERE user_id = ?", (median, expert_id)
        )

    async def experts(
        self, skill: str | None, language: str | None, limit: int = 100
    ) -> list[tuple[User, Profile]]:
        """Public experts (active, not rejected), best rated first."""
        where = ["u.role = 'expert'", "u.status = 'active'", "p.verification_status != 'rejected'"]
        params: list[Any] = []
        if skill:
            where.append(
                "EXISTS (SELECT 1 FROM expert_skills s WHERE s.user_id = u.id AND s.skill = ?)"
            )
            params.append(normalize(skill))
        if language:
            where.append(
                "EXISTS (SELECT 1 FROM expert_languages l WHERE l.user_id = u.id"
                " AND l.language = ?)"
            )
            params.append(normalize(language))
        rows = await self.db.fetchall(
            "SELECT u.*, p.title, p.skills, p.languages, p.years_experience,"
            " p.rate_cents_per_15min, p.bio, p.verification_status, p.rating_sum,"
            " p.rating_count, p.response_ms FROM users u JOIN expert_profiles p"
            f" ON p.user_id = u.id WHERE {' AND '.join(where)}"
            " ORDER BY (p.verification_status = 'verified') DESC,"
            " CASE WHEN p.rating_count > 0 THEN 1.0 * p.rating_sum / p.rating_count END DESC"
            " NULLS LAST, u.name, u.id LIMIT ?",
            [*params, limit],
        )
        return [(_user(r), _profile(r)) for r in rows]

    async def page(
        self,
        role: str | None,
        status: str | None,
        q: str | None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[tuple[User, str | None]]:
        """Accounts for managers, newest first, with experts' verification status."""
        where: list[str] = []
        params: list[Any] = []
        if role:
            where.append("u.role = ?")
            params.append(role)
        if status:
            where.append("u.status = ?")
            params.append(status)
        if q:
            where.append("(u.name LIKE ? ESCAPE '\\' OR u.email LIKE ? ESCAPE '\\')")
            like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params += [like, like]
        if after is not None:
            where.append("(u.created_at, u.id) < (?, ?)")
            params += list(after)
        sql = (
            "SELECT u.*, p.verification_status AS vs FROM users u"
            " LEFT JOIN expert_profiles p ON p.user_id = u.id"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY u.created_at DESC, u.id DESC LIMIT ?"
        rows = await self.db.fetchall(sql, [*params, limit])
        return [(_user(r), r["vs"]) for r in rows]
