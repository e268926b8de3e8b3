"""Sessions, API keys and login throttling on every backend (through AuthService)."""

from __future__ import annotations

import asyncio

import pytest
from argon2 import PasswordHasher

from mailramp.accounts.service import AccountService
from mailramp.auth.service import AuthService
from mailramp.auth.throttle import FREE_FAILURES, AddressThrottle
from mailramp.errors import (
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    TooManyAttemptsError,
    ValidationError,
)
from mailramp.kit.passwords import Passwords, needs_rehash
from tests.conftest import Services, make_user

PASSWORD = "correct horse battery staple"


def _auth(services: Services, *, signup_open: bool = True) -> AuthService:
    return AuthService(
        services.store, services.accounts, clock=services.clock, signup_open=signup_open
    )


async def test_sessions_live_until_logout_or_password_change(services: Services) -> None:
    auth = _auth(services)
    first = await auth.sign_up(user_name="Ann", login_id="ann", password=PASSWORD)
    second = await auth.log_in("ANN", PASSWORD, user_agent="test")
    user, session = await auth.session_user(second.token)
    assert user.id == first.user.id and session.user_agent == "test"
    assert session.token_hash != second.token and second.token not in repr(session)
    _, key = await auth.create_api_key(user.user_id, name="made before the change")
    changed = await auth.change_password(user, session, current=PASSWORD, new="a new passphrase!")
    assert changed.sessions_ended == 1 and changed.api_keys_revoked == 1
    with pytest.raises(AuthenticationError):
        await auth.user_for_api_key(key)
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


class CountingPasswords(Passwords):
    """The argon2 pool (with light parameters: these tests count checks, the HTTP tests in
    tests/reliability/test_attacks.py time real ones), counting every check and its hash."""

    def __init__(self) -> None:
        super().__init__(
            max_waiting=1000, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        )
        self.checked: list[str] = []

    async def verify(self, password_hash: str, password: str) -> bool:
        self.checked.append(password_hash)
        return await super().verify(password_hash, password)


async def test_parallel_guesses_check_the_hash_at_most_the_free_attempts(
    services: Services,
) -> None:
    passwords = CountingPasswords()
    accounts = AccountService(services.store, clock=services.clock, passwords=passwords)
    auth = AuthService(
        services.store,
        accounts,
        clock=services.clock,
        addresses=AddressThrottle(attempts=10_000),
    )
    made = await auth.sign_up(user_name="Cy", login_id="cy", password=PASSWORD)
    real_hash = made.user.password

    async def guess(n: int) -> BaseException | None:
        try:
            await auth.log_in("cy", f"guess number {n}")
        except AuthenticationError as error:
            return error
        return None

    refusals = await asyncio.gather(*(guess(n) for n in range(100)))
    assert all(isinstance(refusal, AuthenticationError) for refusal in refusals)
    assert passwords.checked.count(real_hash) == FREE_FAILURES
    assert len(passwords.checked) == 100  # the others were checked against the dummy hash
    stored = await services.store.get_user(made.user.id)
    assert stored is not None and stored.failed_logins == FREE_FAILURES

    # When the lock ends, parallel guesses get one attempt between them, not one each.
    services.clock.advance(seconds=31)
    passwords.checked.clear()
    await asyncio.gather(*(guess(n) for n in range(50)))
    assert passwords.checked.count(real_hash) == 1
    services.clock.advance(seconds=61)
    assert (await auth.log_in("cy", PASSWORD)).user.id == made.user.id


async def test_a_locked_account_costs_one_password_check_like_any_refusal(
    services: Services,
) -> None:
    passwords = CountingPasswords()
    accounts = AccountService(services.store, clock=services.clock, passwords=passwords)
    auth = AuthService(services.store, accounts, clock=services.clock)
    await auth.sign_up(user_name="Di", login_id="di", password=PASSWORD)
    for n in range(FREE_FAILURES):
        with pytest.raises(AuthenticationError):
            await auth.log_in("di", f"wrong {n}")
    checks = {}
    for case, login in (("locked", "di"), ("unknown", "nobody-here")):
        passwords.checked.clear()
        with pytest.raises(AuthenticationError, match=r"^invalid login or password$"):
            await auth.log_in(login, PASSWORD)
        checks[case] = len(passwords.checked)
    assert checks == {"locked": 1, "unknown": 1}


async def test_one_address_is_held_to_its_attempts_across_accounts(services: Services) -> None:
    auth = AuthService(
        services.store,
        services.accounts,
        clock=services.clock,
        addresses=AddressThrottle(attempts=3),
    )
    for n in range(3):
        with pytest.raises(AuthenticationError):
            await auth.log_in(f"someone{n}", PASSWORD, client_address="203.0.113.7")
    with pytest.raises(TooManyAttemptsError, match="too many sign-in attempts"):
        await auth.log_in("someone9", PASSWORD, client_address="203.0.113.7")
    # Another address is not held; an IPv6 client is counted by its /64.
    with pytest.raises(AuthenticationError):
        await auth.log_in("someone9", PASSWORD, client_address="203.0.113.8")
    for suffix in ("1", "2", "3"):
        with pytest.raises(AuthenticationError):
            await auth.log_in("x", PASSWORD, client_address=f"2001:db8:1:2::{suffix}")
    with pytest.raises(TooManyAttemptsError):
        await auth.log_in("x", PASSWORD, client_address="2001:db8:1:2:ffff::9")
    services.clock.advance(minutes=11)
    with pytest.raises(AuthenticationError):
        await auth.log_in("someone9", PASSWORD, client_address="203.0.113.7")


async def test_webhook_deliveries_are_remembered_once_and_forgotten_in_time(
    services: Services,
) -> None:
    auth = _auth(services)
    assert await auth.first_delivery("msg_one") is True
    assert await auth.first_delivery("msg_one") is False
    assert await auth.first_delivery("msg_two") is True
    await auth.delivery_failed("msg_two")  # its retry must be processed
    assert await auth.first_delivery("msg_two") is True
    services.clock.advance(days=8)  # past WEBHOOK_MEMORY: the store may forget
    assert await auth.first_delivery("msg_three") is True
    assert await auth.first_delivery("msg_one") is True


async def test_clerk_accounts_while_sign_up_is_closed(services: Services) -> None:
    opened = _auth(services)
    early = await opened.clerk_account("user_early", user_name="Early", email=None)
    closed = _auth(services, signup_open=False)
    assert (await closed.clerk_account("user_early", user_name="x", email=None)).id == early.id
    with pytest.raises(ForbiddenError, match="sign-up is closed"):
        await closed.clerk_account("user_late", user_name="Late", email="late@example.com")
    assert await services.store.get_user_by_clerk_id("user_late") is None


async def test_an_address_typed_at_sign_up_cannot_lock_its_owner_out_of_clerk(
    services: Services,
) -> None:
    auth = _auth(services)
    squatter = await auth.sign_up(
        user_name="Squatter", login_id="squat", password=PASSWORD, email="owner@example.com"
    )
    owner = await auth.clerk_account("user_owner", user_name="Owner", email="owner@example.com")
    assert owner.email == "owner@example.com" and owner.clerk_user_id == "user_owner"
    released = await services.store.get_user(squatter.user.id)
    assert released is not None and released.email is None
    # Now the address is proven: a sign-up naming it is refused without saying whose it is.
    with pytest.raises(ConflictError) as refused:
        await auth.sign_up(
            user_name="Again", login_id="again", password=PASSWORD, email="Owner@Example.com"
        )
    assert refused.value.status_code == 409
    assert "owner@example.com" not in refused.value.message.lower()
    assert await services.store.get_user_by_login_id("again") is None


async def test_signing_in_upgrades_a_hash_made_with_weaker_parameters(
    services: Services,
) -> None:
    auth = _auth(services)
    made = await auth.sign_up(user_name="Old", login_id="old-hash", password=PASSWORD)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    await services.store.update_user(made.user.id, {"password": weak})
    assert needs_rehash(weak)

    await auth.log_in("old-hash", PASSWORD)
    stored = await services.store.get_user(made.user.id)
    assert stored is not None and stored.password not in (weak, made.user.password)
    assert stored.password is not None and not needs_rehash(stored.password)
    assert (await auth.log_in("old-hash", PASSWORD)).user.id == made.user.id
