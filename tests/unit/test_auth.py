"""The token checker and the access table of api/auth.py, as pure logic."""

from __future__ import annotations

import hmac
from typing import Any

import pytest
from apps import PRODUCER_ALLOWED

from jobsys.api import auth
from jobsys.api.auth import Access, Authenticator, Role, access_for
from jobsys.errors import Forbidden, Unauthorized

PRODUCER = "producer-token-0000000001"
PRODUCER_2 = "producer-token-0000000002"
ADMIN = "admin-token-00000000000001"


@pytest.fixture
def checker() -> Authenticator:
    return Authenticator([PRODUCER, PRODUCER_2], [ADMIN])


def test_no_tokens_is_open_mode_and_ignores_the_header() -> None:
    open_ = Authenticator([], [])
    assert not open_.enabled
    for header in (None, "", "garbage", f"Bearer {ADMIN}"):
        assert open_.authorize("POST", "/jobs/<job_id>/cancel", header) is Role.OPEN
        assert open_.authorize("POST", "/submit", header) is Role.OPEN


def test_roles_of_valid_tokens(checker: Authenticator) -> None:
    assert checker.authenticate(f"Bearer {PRODUCER}") is Role.PRODUCER
    assert checker.authenticate(f"Bearer {PRODUCER_2}") is Role.PRODUCER
    assert checker.authenticate(f"Bearer {ADMIN}") is Role.ADMIN
    # The scheme is case-insensitive (RFC 7235); surrounding spaces do not matter.
    assert checker.authenticate(f"  bearer   {ADMIN} ") is Role.ADMIN


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (None, "no Authorization header"),
        ("", "no Authorization header"),
        (PRODUCER, "not `Bearer <token>`"),
        (f"Basic {PRODUCER}", "not `Bearer <token>`"),
        ("Bearer", "not `Bearer <token>`"),
        ("Bearer ", "not `Bearer <token>`"),
        (f"Bearer {PRODUCER} {PRODUCER}", "not `Bearer <token>`"),
        ("Bearer wrong-token-000000000000", "not a valid token"),
        (f"Bearer {PRODUCER}x", "not a valid token"),
        (f"Bearer {PRODUCER[:-1]}", "not a valid token"),
    ],
)
def test_missing_malformed_and_unknown_tokens_are_unauthorized(
    checker: Authenticator, header: str | None, says: str
) -> None:
    with pytest.raises(Unauthorized) as e:
        checker.authorize("GET", "/queues", header)
    message = str(e.value)
    assert says in message
    assert "Authorization: Bearer <token>" in message  # names the header and the rule
    assert PRODUCER not in message


def test_a_producer_is_forbidden_on_admin_endpoints(checker: Authenticator) -> None:
    producer, admin = f"Bearer {PRODUCER}", f"Bearer {ADMIN}"
    for method, rule in [
        ("POST", "/jobs/<job_id>/cancel"),
        ("POST", "/schedules"),
        ("DELETE", "/schedules/<name>"),
        ("POST", "/dead-letter/retry"),
        ("POST", "/dead-letter/purge"),
        ("PUT", "/some/route/nobody/listed"),
        ("GET", "/admin/only/because/unlisted"),
    ]:
        with pytest.raises(Forbidden, match="needs an admin token; this is a producer token"):
            checker.authorize(method, rule, producer)
        assert checker.authorize(method, rule, admin) is Role.ADMIN


def test_the_access_table() -> None:
    for method, rule in PRODUCER_ALLOWED:
        assert access_for(method, rule) is Access.PRODUCER, (method, rule)
    assert access_for("HEAD", "/jobs/<job_id>") is Access.PRODUCER
    assert access_for("GET", "/health") is Access.PUBLIC
    assert access_for("HEAD", "/health") is Access.PUBLIC
    assert access_for("POST", "/health") is Access.ADMIN
    # Default deny: anything unlisted is admin-only, whatever its method.
    assert access_for("GET", "/brand-new") is Access.ADMIN
    assert access_for("OPTIONS", "/submit") is Access.ADMIN
    # The dashboard's static shell: GET only.
    assert access_for("GET", "/dashboard/") is Access.PUBLIC
    assert access_for("GET", "/dashboard/<path:filename>") is Access.PUBLIC
    assert access_for("POST", "/dashboard/<path:filename>") is Access.ADMIN
    assert access_for("GET", "/dashboards-of-data") is Access.ADMIN
    # No route matched: any valid token may learn it is a 404/405.
    assert access_for("GET", None, "/nope") is Access.PRODUCER
    assert access_for("GET", None, "/dashboard") is Access.PUBLIC  # the redirect to /dashboard/


def test_public_endpoints_take_anyone(checker: Authenticator) -> None:
    assert checker.authorize("GET", "/health", None) is Role.ANONYMOUS
    assert checker.authorize("GET", "/health", "Bearer nonsense-token-0000000") is Role.ANONYMOUS
    assert checker.authorize("GET", "/health", f"Bearer {ADMIN}") is Role.ADMIN


def test_tokens_are_compared_in_constant_time_against_every_token(
    checker: Authenticator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every check calls hmac.compare_digest once per configured token, on
    equal-length digests, even when the first token already matched."""
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    for token in (PRODUCER, ADMIN, "unknown-token-000000000000", "x" * 100):
        calls.clear()
        checker.role_of(token)
        assert len(calls) == 3
        assert all(len(a) == len(b) == 32 for a, b in calls)
        assert all(isinstance(a, bytes) and token.encode() not in a for a, _ in calls)


def test_no_token_is_kept_in_clear(checker: Authenticator) -> None:
    state = repr(vars(checker))
    for token in (PRODUCER, PRODUCER_2, ADMIN):
        assert token not in state
        assert token.encode() not in state.encode()
