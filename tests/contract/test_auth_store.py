"""Sessions, API keys and login throttling on every backend (through AuthService)."""

from __future__ import annotations

import pytest

from mailramp.auth.service import AuthService
from mailramp.errors import AuthenticationError, ForbiddenError, NotFoundError, ValidationError
from tests.conftest import Services, make_user

PASSWORD = "correct horse battery staple"


def _auth(services: Services, *, signup_open: bool = True) -> AuthService:
    return AuthService(services.store, services.accounts, signup_open=signup_open)


async def test_sessions_live_until_logout_or_password_change(services: Services) -> None:
    auth = _auth(services)
    first = await auth.sign_up(user_name="Ann", login_id="ann", password=PASSWORD)
    second = await auth.log_in("ANN", PASSWORD, user_agent="test")
    user, session = await auth.session_user(second.token)
    assert user.id == first.user.id and session.user_agent == "test"
    assert session.token_hash != second.token and second.token not in repr(session)
    ended = await auth.change_password(user, session, current=PASSWORD, new="a new passphrase!")
    assert ended == 1
    with pytest.raises(AuthenticationError):
        await auth.session_user(first.token)
    await auth.log_out(session)
    with pytest.raises(AuthenticationError):
        await auth.session_user(second.token)
    assert (await auth.log_in("ann", "a new passphrase!")).user.id == user.id


async def test_failed_logins_are_throttled_then_reset(services: Services) -> None:
    auth = _auth(services)
    await auth.sign_up(user_name="Bo", login_id="bo", password=PASSWORD)
    for _ in range(5):
        with pytest.raises(AuthenticationError, match="invalid login or password"):
            await auth.log_in("bo", "wrong password!!")
    with pytest.raises(AuthenticationError, match="invalid login or password"):
        await auth.log_in("bo", PASSWORD)  # locked for now, with the same message
    stored = await services.store.get_user_by_login_id("bo")
    assert stored is not None and stored.failed_logins == 5
    await services.store.reset_login_failures(stored.id)
    assert (await auth.log_in("bo", PASSWORD)).user.login_id == "bo"
    with pytest.raises(AuthenticationError, match="invalid login or password"):
        await auth.log_in("nobody", PASSWORD)


async def test_api_keys_hashed_listed_revoked_and_scoped(services: Services) -> None:
    auth = _auth(services)
    alice = await make_user(services)
    bob = await make_user(services)
    key, secret = await auth.create_api_key(alice.user_id, name="ci")
    assert secret.startswith(key.prefix) and key.key_hash != secret
    assert (await auth.user_for_api_key(secret)).id == alice.id
    listed = await auth.list_api_keys(alice.user_id)
    assert [k.name for k in listed] == ["ci"] and listed[0].last_used_at is not None
    assert await auth.list_api_keys(bob.user_id) == []
    with pytest.raises(NotFoundError):
        await auth.revoke_api_key(bob.user_id, key.id)
    await auth.revoke_api_key(alice.user_id, key.id)
    with pytest.raises(AuthenticationError):
        await auth.user_for_api_key(secret)
    with pytest.raises(NotFoundError):
        await auth.revoke_api_key(alice.user_id, key.id)
    with pytest.raises(ValidationError):
        await auth.create_api_key(alice.user_id, name=" ")


async def test_closed_sign_up(services: Services) -> None:
    with pytest.raises(ForbiddenError, match="sign-up is closed"):
        await _auth(services, signup_open=False).sign_up(
            user_name="X", login_id="x", password=PASSWORD
        )
    with pytest.raises(NotFoundError):
        await services.accounts.get_user_by_login_id("x")
