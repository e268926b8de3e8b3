"""The legacy collections stay readable (schema migration note 1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailramp.errors import NotFoundError, ValidationError
from mailramp.kit.ids import new_object_id
from mailramp.legacy.models import LegacyCollection
from tests.conftest import Services, make_user


@pytest.mark.parametrize("collection", ["warm_up_emails_table", "email_campaigns"])
async def test_imported_documents_are_listed_and_read_per_owner(
    services: Services, collection: str
) -> None:
    alice = await make_user(services)
    bob = await make_user(services)
    kept_id = new_object_id()
    documents = [
        {
            "_id": {"$oid": kept_id},
            "user_id": {"$oid": alice.id},
            "subject": "Warm-up 1",
            "created_at": datetime(2024, 1, 2, tzinfo=UTC),
            "nested": {"opens": 3},
        },
        *(
            {
                "user_id": alice.id,
                "subject": f"Warm-up {n}",
                "created_at": datetime(2024, 1, 2 + n, tzinfo=UTC),
            }
            for n in range(2, 6)
        ),
        {"user_id": bob.id, "subject": "Bob's"},
    ]
    assert await services.legacy.import_documents(collection, documents) == 6

    first_page = await services.legacy.list_documents(collection, alice.user_id, limit=2)
    assert first_page.total == 5
    assert [d.document["subject"] for d in first_page.items] == ["Warm-up 1", "Warm-up 2"]
    kept = first_page.items[0]
    assert kept.id == kept_id and kept.user_id == alice.id
    assert kept.document["nested"] == {"opens": 3}
    assert kept.created_at == datetime(2024, 1, 2, tzinfo=UTC)
    last = await services.legacy.list_documents(collection, alice.user_id, offset=4, limit=2)
    assert [d.document["subject"] for d in last.items] == ["Warm-up 5"]

    assert (await services.legacy.get_document(collection, alice.user_id, kept_id)) == kept
    with pytest.raises(NotFoundError):
        await services.legacy.get_document(collection, bob.user_id, kept_id)
    bobs = await services.legacy.list_documents(collection, bob.user_id)
    assert [d.document["subject"] for d in bobs.items] == ["Bob's"]


async def test_unknown_collection_is_named(services: Services) -> None:
    user = await make_user(services)
    with pytest.raises(ValidationError) as caught:
        await services.legacy.list_documents("users", user.user_id)
    assert caught.value.field == "collection" and "'email_campaigns'" in str(caught.value)
    with pytest.raises(ValidationError) as not_object:
        await services.legacy.import_documents("email_campaigns", [{"a": 1}, "x"])  # type: ignore[list-item]
    assert not_object.value.field == "documents[2]"


async def test_every_document_is_iterated_for_operator_tools(services: Services) -> None:
    alice = await make_user(services)
    bob = await make_user(services)
    documents = [
        {"_id": new_object_id(), "user_id": owner.id, "subject": f"#{n}"}
        for n, owner in enumerate([alice, bob] * 3)
    ]
    documents.append({"subject": "no owner"})
    assert await services.legacy.import_documents("email_campaigns", documents) == 7
    seen = [doc async for doc in services.store.iter_legacy(LegacyCollection.EMAIL_CAMPAIGNS)]
    assert len(seen) == 7 and [d.id for d in seen] == sorted(d.id for d in seen)
    assert {d.document["subject"] for d in seen} == {f"#{n}" for n in range(6)} | {"no owner"}
    assert [d async for d in services.store.iter_legacy(LegacyCollection.WARM_UP_EMAILS)] == []
