"""Administration on every backend (auth/admin.py): the first user is the instance's admin,
also when sign-ups race on an empty instance; the rules that keep an instance administrable;
a deactivation ends sessions and keys; the audit log, newest first, page by page."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from mailramp.auth.admin import Actor
from mailramp.auth.models import AuditAction
from mailramp.errors import AuthenticationError, ConflictError, ForbiddenError
from mailramp.runtime import Services
from mailramp.storage.mongo import MongoStore
from mailramp.storage.mongo.base import SCHEMA_VERSION
from mailramp.storage.mongo.codec import USERS
from tests.support.clock import FakeClock
from tests.support.mongo_double import mock_database

PASSWORD = "a long enough passphrase"


async def test_of_sign_ups_racing_on_an_empty_instance_exactly_one_is_the_admin(
    services: Services,
) -> None:
    people = [f"person{n}@acme.com" for n in range(6)]
    created = await asyncio.gather(
        *(services.auth.sign_up(user_name=p, login_id=p, password=PASSWORD) for p in people)
    )
    admins = [new.user.login_id for new in created if new.user.is_admin]
    assert len(admins) == 1
    later = await services.accounts.create_user(user_name="Late", login_id="late@acme.com")
    assert later.is_admin is False
    listed = await services.store.list_users()
    assert len(listed) == 7 and listed[-1].login_id == "late@acme.com"
    assert [u.login_id for u in listed if u.is_admin] == admins


async def test_a_sign_up_that_lost_the_first_user_claim_is_an_ordinary_user(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race made certain: a second sign-up that read "no user yet" before the first one
    # was stored tries to claim the first user too, and the unique index refuses it.
    first = await services.accounts.create_user(user_name="First", login_id="first")
    assert first.is_admin and first.first_user

    async def no_user_yet() -> bool:
        return False

    monkeypatch.setattr(services.store, "any_user", no_user_yet)
    second = await services.accounts.create_user(user_name="Second", login_id="second")
    assert not second.is_admin and second.first_user is None
    assert [u.login_id for u in await services.store.list_users() if u.is_admin] == ["first"]


async def test_a_credential_made_while_its_user_is_deactivated_is_refused_as_it_is_made(
    services: Services,
) -> None:
    # A sign-in or a new key whose request passed its checks just before a deactivation
    # and is stored just after it ended everything: refused, and nothing live is left.
    ann = await services.accounts.create_user(user_name="Ann", login_id="ann")
    bob = await services.accounts.create_user(user_name="Bob", login_id="bob")
    await services.admin.deactivate(Actor.admin(ann), bob.user_id)
    with pytest.raises(AuthenticationError):
        await services.auth.start_session(bob, "a browser")
    with pytest.raises(AuthenticationError):
        await services.auth.create_api_key(bob.user_id, name="late")
    await services.admin.reactivate(Actor.admin(ann), bob.user_id)
    assert [
        key.revoked_at is not None for key in await services.auth.list_api_keys(bob.user_id)
    ] == [True]
    assert (
        str(await services.auth.end_access(bob.user_id))
        == "0 session(s) ended, 0 API key(s) revoked"
    )


async def test_a_clerk_users_password_is_not_reset_here(services: Services) -> None:
    ann = await services.accounts.create_user(user_name="Ann", login_id="ann")
    clerk = await services.accounts.create_user(
        user_name="Cleo", login_id="cleo@acme.com", clerk_user_id="user_2abc"
    )
    with pytest.raises(ConflictError, match="signs in with Clerk"):
        await services.admin.reset_password(Actor.admin(ann), clerk.user_id)


async def test_an_instance_stays_administrable_and_the_log_says_who_did_what(
    services: Services, clock: FakeClock
) -> None:
    admin_service = services.admin
    ann = (await services.auth.sign_up(user_name="Ann", login_id="ann", password=PASSWORD)).user
    assert ann.is_admin
    ann_acts = Actor.admin(ann)
    bob = (await admin_service.invite(ann_acts, user_name="Bob", login_id="bob")).user
    with pytest.raises(ForbiddenError, match="only an admin"):
        Actor.admin(bob)

    # Nobody takes away their own access, and the last active admin stays one.
    for attempt in (
        admin_service.deactivate(ann_acts, ann.user_id),
        admin_service.reset_password(ann_acts, ann.user_id),
        admin_service.set_admin(ann_acts, ann.user_id, admin=False),
    ):
        with pytest.raises(ConflictError, match="their own account"):
            await attempt
    shell = Actor.operator("root@mail-1")
    with pytest.raises(ConflictError, match="only active admin"):
        await admin_service.set_admin(shell, ann.user_id, admin=False)
    with pytest.raises(ConflictError, match="only active admin"):
        await admin_service.deactivate(shell, ann.user_id)

    # A deactivation ends what was open: sessions and keys, refused from then on.
    clock.advance(minutes=1)
    session = await services.auth.log_in(
        "bob", (await admin_service.reset_password(shell, bob.user_id)).password or ""
    )
    _, key = await admin_service.create_api_key(shell, bob.user_id, name="deploy")
    clock.advance(minutes=1)
    done = await admin_service.deactivate(ann_acts, bob.user_id)
    assert done.ended is not None and (done.ended.sessions_ended, done.ended.api_keys_revoked) == (
        1,
        1,
    )
    with pytest.raises(AuthenticationError):
        await services.auth.session_user(session.token)
    with pytest.raises(AuthenticationError):
        await services.auth.user_for_api_key(key)
    await admin_service.reactivate(ann_acts, bob.user_id)
    with pytest.raises(AuthenticationError):  # ended stays ended
        await services.auth.session_user(session.token)
    await admin_service.set_admin(ann_acts, bob.user_id, admin=True)
    await admin_service.set_admin(
        Actor.admin(await services.accounts.get_user(bob.user_id)), ann.user_id, admin=False
    )

    entries = await admin_service.audit_log(shell, limit=100)
    assert [(e.action, e.actor, e.target) for e in entries] == [
        (AuditAction.REMOVE_ADMIN, "bob", "ann"),
        (AuditAction.MAKE_ADMIN, "ann", "bob"),
        (AuditAction.REACTIVATE, "ann", "bob"),
        (AuditAction.DEACTIVATE, "ann", "bob"),
        (AuditAction.CREATE_KEY, "operator root@mail-1 (command line)", "bob"),
        (AuditAction.RESET_PASSWORD, "operator root@mail-1 (command line)", "bob"),
        (AuditAction.INVITE, "ann", "bob"),
    ]
    assert entries[3].at == clock() and entries[3].actor_id == ann.user_id
    assert entries[4].actor_id is None and entries[4].detail is not None
    assert key not in str(entries)  # a key is named by its prefix, never written whole
    pages = [await admin_service.audit_log(shell, offset=o, limit=3) for o in (0, 3, 6)]
    assert [e for page in pages for e in page] == entries


async def test_migrating_a_mongodb_instance_makes_its_earliest_user_the_admin() -> None:
    # Users as the previous application left them: no `is_admin`, no `first_user`. (The
    # indexes are built first: the double, unlike a server, ignores a partial index's filter
    # when it checks the documents already there.)
    database = mock_database()
    store = MongoStore(database)
    await store.migrate()
    base = datetime(2025, 4, 1, tzinfo=UTC)
    for n, login in enumerate(("second", "earliest", "third")):
        day = base + timedelta(days={"earliest": 0, "second": 1, "third": 2}[login])
        oid = ObjectId()
        await database[USERS].insert_one(
            {"_id": oid, "user_id": str(oid), "user_name": login, "login_id": login,
             "created_at": day, "updated_at": day, "is_active": True, "n": n}
        )  # fmt: skip
    await store.migrate()
    users = {user.login_id: user for user in await store.list_users()}
    assert [login for login, user in users.items() if user.is_admin] == ["earliest"]
    assert users["earliest"].first_user is True and users["second"].first_user is None
    await store.migrate()  # again: nothing changes
    assert [u.login_id for u in await store.list_users() if u.is_admin] == ["earliest"]
    assert (await store.schema_version()) == SCHEMA_VERSION
