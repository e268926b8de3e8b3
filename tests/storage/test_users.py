"""Users on every backend."""

from __future__ import annotations

import asyncio

import pytest

from mailramp.errors import AuthenticationError, DuplicateError, NotFoundError, ValidationError
from tests.conftest import Services, make_user


async def test_create_user_and_read_it_back_every_way(services: Services) -> None:
    user = await services.accounts.create_user(
        user_name="John Doe",
        login_id="John@Example.com",
        email="John@Example.com",
        clerk_user_id="user_abc123",
    )
    assert len(user.id) == 24 and int(user.id, 16) >= 0
    assert user.user_id == user.id
    assert user.login_id == "john@example.com"
    assert user.email == "john@example.com"
    assert user.is_active is True and user.last_login is None
    assert user.created_at.tzinfo is not None and user.created_at.utcoffset().total_seconds() == 0

    assert await services.accounts.get_user(user.user_id) == user
    assert await services.accounts.get_user_by_login_id("JOHN@example.com") == user
    assert await services.accounts.get_user_by_clerk_id("user_abc123") == user


async def test_duplicate_login_id_is_refused_naming_login_id(services: Services) -> None:
    await make_user(services, login_id="ann@example.com", email=None)
    with pytest.raises(DuplicateError) as caught:
        await make_user(services, login_id="ANN@example.com", email=None)
    assert caught.value.field == "login_id"
    assert "login_id" in str(caught.value)


async def test_duplicate_email_and_clerk_id_are_refused(services: Services) -> None:
    await make_user(services, email="same@example.com", clerk_user_id="user_1")
    with pytest.raises(DuplicateError) as by_email:
        await make_user(services, email="same@example.com")
    assert by_email.value.field == "email"
    with pytest.raises(DuplicateError) as by_clerk:
        await make_user(services, clerk_user_id="user_1")
    assert by_clerk.value.field == "clerk_user_id"


async def test_many_users_without_clerk_id_or_email(services: Services) -> None:
    first = await make_user(services, email=None, clerk_user_id=None)
    second = await make_user(services, email=None, clerk_user_id=None)
    assert first.id != second.id
    assert first.clerk_user_id is None and second.clerk_user_id is None


async def test_twenty_concurrent_creates_with_one_login_id_make_one_user(
    services: Services,
) -> None:
    async def attempt(n: int) -> object:
        try:
            return await services.accounts.create_user(
                user_name=f"Racer {n}", login_id="race@example.com"
            )
        except DuplicateError as error:
            return error

    results = await asyncio.gather(*(attempt(n) for n in range(20)))
    created = [r for r in results if not isinstance(r, DuplicateError)]
    refused = [r for r in results if isinstance(r, DuplicateError)]
    assert len(created) == 1
    assert len(refused) == 19
    assert all(error.field == "login_id" for error in refused)
    stored = await services.accounts.get_user_by_login_id("race@example.com")
    assert stored == created[0]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"user_name": "   "}, "user_name"),
        ({"login_id": ""}, "login_id"),
        ({"password": "short"}, "password"),
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(
    services: Services, fields: dict[str, str], field: str
) -> None:
    values = {"user_name": "Bad", "login_id": "bad@example.com"} | fields
    with pytest.raises(ValidationError) as caught:
        await services.accounts.create_user(**values)
    assert caught.value.field == field
    assert field in str(caught.value)
    with pytest.raises(NotFoundError):
        await services.accounts.get_user_by_login_id(values["login_id"] or "bad@example.com")


async def test_password_is_stored_as_argon2id_and_authenticates(services: Services) -> None:
    user = await make_user(services, password="correct horse battery")
    stored = await services.store.get_user(user.id)
    assert stored is not None and stored.password is not None
    assert stored.password.startswith("$argon2id$")
    assert "correct horse" not in stored.password
    assert "password" not in user.model_dump() and "correct" not in repr(user)
    assert await services.accounts.password_matches(stored, "correct horse battery")
    assert not await services.accounts.password_matches(stored, "wrong horse battery")
    session = await services.auth.log_in(user.login_id, "correct horse battery")
    assert session.user.user_id == user.user_id
    with pytest.raises(AuthenticationError):
        await services.auth.log_in("nobody@example.com", "x" * 12)


async def test_update_record_login_and_deactivate(services: Services) -> None:
    user = await make_user(services)
    renamed = await services.accounts.update_user(user.user_id, user_name="  New Name ")
    assert renamed.user_name == "New Name"
    assert renamed.updated_at >= user.updated_at
    cleared = await services.accounts.update_user(user.user_id, email=None)
    assert cleared.email is None
    logged = await services.accounts.record_login(user.user_id)
    assert logged.last_login is not None
    off = await services.accounts.deactivate_user(user.user_id)
    assert off.is_active is False
    assert (await services.accounts.get_user(user.user_id)).is_active is False
    back = await services.accounts.reactivate_user(user.user_id)
    assert back.is_active is True
    with pytest.raises(ValidationError) as caught:
        await services.accounts.update_user(user.user_id, email="nope")
    assert caught.value.field == "email"
    with pytest.raises(ValidationError) as unknown:
        await services.accounts.update_user(user.user_id, login_id="x")
    assert unknown.value.field == "login_id"


async def test_deactivated_user_cannot_sign_in(services: Services) -> None:
    user = await make_user(services, password="correct horse battery")
    await services.accounts.deactivate_user(user.user_id)
    with pytest.raises(AuthenticationError):
        await services.auth.log_in(user.login_id, "correct horse battery")


async def test_unknown_and_malformed_user_ids(services: Services) -> None:
    with pytest.raises(NotFoundError):
        await services.accounts.get_user("0123456789abcdef01234567")
    with pytest.raises(ValidationError) as caught:
        await services.accounts.get_user("user_id_string")
    assert caught.value.field == "user_id"
    with pytest.raises(NotFoundError):
        await services.accounts.get_user_by_clerk_id("user_missing")


async def test_clerk_sign_in_creates_the_user_once(services: Services) -> None:
    first = await services.accounts.get_or_create_clerk_user(
        "user_clerk1", user_name="Cleo", email="cleo@example.com"
    )
    again = await services.accounts.get_or_create_clerk_user(
        "user_clerk1", user_name="Cleo", email="cleo@example.com"
    )
    assert again == first
    assert first.login_id == "cleo@example.com" and first.clerk_user_id == "user_clerk1"


async def test_concurrent_first_clerk_sign_ins_make_one_user(services: Services) -> None:
    results = await asyncio.gather(
        *(
            services.accounts.get_or_create_clerk_user("user_race", email="r@example.com")
            for _ in range(10)
        )
    )
    assert len({user.id for user in results}) == 1


async def test_clerk_user_whose_email_is_a_taken_login_gets_the_clerk_id_as_login(
    services: Services,
) -> None:
    await make_user(services, login_id="taken@example.com", email=None)
    user = await services.accounts.get_or_create_clerk_user("user_other", email="taken@example.com")
    assert user.login_id == "user_other"
    assert user.email == "taken@example.com"
