"""Importing recipients from CSV: the report, refusals that import nothing, streaming."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest

from mailramp.errors import ImportFileError, PlanError, ValidationError
from mailramp.sending.importer import BATCH_SIZE, RecipientReader
from mailramp.sending.models import ImportReport
from mailramp.tracking.repository import RecipientQuery
from tests.sending.conftest import World


async def _import(world: World, campaign_id: str, user_id: str, data: bytes) -> ImportReport:
    return await world.sending.import_recipients(user_id, campaign_id, io.BytesIO(data))


async def test_report_counts_accepted_duplicates_invalid_and_suppressed(world: World) -> None:
    user, mailbox = await world.sender()
    campaign, first = await world.campaign(user, mailbox, "Email,First Name\nold@example.com,Old\n")
    assert first.accepted == 1
    from mailramp.kit.ids import new_object_id
    from mailramp.suppression.models import Suppression, SuppressionReason

    await world.store.add_suppression(
        Suppression(
            id=new_object_id(),
            user_id=user.id,
            email="gone@example.com",
            reason=SuppressionReason.UNSUBSCRIBED,
            created_at=world.clock.now,
        )
    )
    data = (
        "\ufeffEMAIL,First Name,Company\n"  # BOM and any-case header are fine
        "new@example.com,New,Acme\n"
        "NEW@Example.com,Again,Acme\n"  # duplicate within the file, case-insensitively
        "old@example.com,Old,Acme\n"  # already in the campaign
        "not-an-address,X,Acme\n"
        ",Empty,Acme\n"
        "gone@example.com,Gone,Acme\n"
        "\n"
        "short@example.com\n"  # fewer fields than the header
        "last@example.com,Last,Acme\n"
    ).encode()
    report = await _import(world, campaign.campaign_id, user.user_id, data)
    assert report.rows == 8
    assert report.accepted == 2
    assert report.duplicates == 2
    assert report.suppressed == 1
    assert report.invalid_count == 3
    assert [(i.row, i.value) for i in report.invalid] == [
        (5, "not-an-address"),
        (6, ""),
        (9, "short@example.com"),
    ]
    assert "@-sign" in report.invalid[0].reason
    assert report.invalid[1].reason == "empty email"
    assert "3 fields" not in report.invalid[2].reason and "header has 3" in report.invalid[2].reason
    assert report.total_recipients == 3
    stored = await world.campaigns.get_campaign(user.user_id, campaign.campaign_id)
    assert stored.total_recipients == 3
    records = await world.store.list_tracking(user.id, RecipientQuery(campaign.campaign_id))
    new = next(r for r in records.items if r.recipient_email == "new@example.com")
    assert new.merge_variables == {"first_name": "New", "company": "Acme"}
    assert all(r.scheduled_at is not None for r in records.items)
    assert "2 accepted" in report.summary()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not UTF-8"),
        (b"email,name\nok@example.com,\xe9t\xe9\n", "not UTF-8"),
        (b"name,company\nAnn,Acme\n", "no 'email' column"),
        (b"", "the file is empty"),
        (b"email,name\nok@example.com,a\x00b\n", "not valid CSV"),
    ],
)
async def test_a_file_that_is_not_utf8_csv_with_email_imports_nothing(
    world: World, data: bytes, message: str
) -> None:
    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(user, mailbox, "email\nfirst@example.com\n")
    with pytest.raises(ImportFileError) as caught:
        await _import(world, campaign.campaign_id, user.user_id, data)
    assert message in str(caught.value)
    counts = await world.sending.status_counts(user.user_id, campaign.campaign_id)
    assert sum(counts.values()) == 1
    stored = await world.campaigns.get_campaign(user.user_id, campaign.campaign_id)
    assert stored.total_recipients == 1


async def test_an_unknown_variable_names_itself_and_the_first_row_missing_it(world: World) -> None:
    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(
        user,
        mailbox,
        "email,first_name,company\na@example.com,A,X\n",
        subject="For {{company}}",
    )
    good = "".join(f"r{n}@example.com,R,Co\n" for n in range(BATCH_SIZE + 5))
    data = ("email,first_name,company\n" + good + "late@example.com,Late,\n").encode()
    with pytest.raises(ValidationError) as caught:
        await _import(world, campaign.campaign_id, user.user_id, data)
    text = str(caught.value)
    assert "{{company}}" in text and f"row {BATCH_SIZE + 7}" in text
    counts = await world.sending.status_counts(user.user_id, campaign.campaign_id)
    assert sum(counts.values()) == 1  # the batches already read were rolled back

    no_column = b"email,first_name\nb@example.com,B\n"
    with pytest.raises(ValidationError) as missing:
        await _import(world, campaign.campaign_id, user.user_id, no_column)
    assert "{{company}}" in str(missing.value) and "no column" in str(missing.value)


async def test_recipients_that_do_not_fit_are_refused_with_what_would_fit(world: World) -> None:
    user, mailbox = await world.sender(daily_limit=10)
    campaign, _ = await world.campaign(user, mailbox, "email\na@example.com\n", duration=24)
    rows = "".join(f"r{n}@example.com\n" for n in range(30))
    with pytest.raises(PlanError) as caught:
        await _import(world, campaign.campaign_id, user.user_id, ("email\n" + rows).encode())
    error = caught.value
    # 24 hours from Monday 09:00 UTC touch two calendar days: 2 x 10 sends fit.
    assert error.fit == 20 and error.wanted == 31
    assert error.needed_daily_limit == 16
    assert error.needed_duration_hours == 64  # reaches into a 4th calendar day (Thu 00:00+)
    assert "only 20 of 31 recipients fit in 24 hours at a daily limit of 10" in str(error)
    counts = await world.sending.status_counts(user.user_id, campaign.campaign_id)
    assert sum(counts.values()) == 1


async def test_a_campaign_declaring_more_than_fits_is_refused_at_creation(world: World) -> None:
    user, mailbox = await world.sender(daily_limit=50)
    with pytest.raises(PlanError) as caught:
        await world.campaigns.create_campaign(
            user.user_id,
            mailbox_id=mailbox.mailbox_id,
            campaign_name="Too big",
            subject="Hi",
            message="Hello",
            duration=24,
            start_time=world.clock.now,
            total_recipients=120,
        )
    assert caught.value.field == "total_recipients"
    assert "only 100 of 120 recipients fit" in str(caught.value)
    assert "a daily limit of at least 60" in str(caught.value)
    assert "a duration of at least 40 hours" in str(caught.value)
    assert (await world.campaigns.list_campaigns(user.user_id)).total == 0


async def test_other_campaigns_of_the_mailbox_share_its_daily_limit(world: World) -> None:
    user, mailbox = await world.sender(daily_limit=10)
    rows = "".join(f"a{n}@example.com\n" for n in range(8))
    first, _ = await world.campaign(user, mailbox, "email\n" + rows, duration=12)
    second, _ = await world.campaign(
        user,
        mailbox,
        "email\nb0@example.com\nb1@example.com\n",
        duration=12,
        campaign_name="Second",
    )
    with pytest.raises(PlanError) as caught:
        await _import(world, second.campaign_id, user.user_id, b"email\nb2@example.com\n")
    assert caught.value.fit == 2
    assert first.end_time - first.start_time == timedelta(hours=12)


async def test_import_is_streamed_in_batches(world: World) -> None:
    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(user, mailbox, "email\nseed@example.com\n")
    rows = "".join(f"s{n}@example.com\n" for n in range(BATCH_SIZE * 5))
    stream = io.BytesIO(("email\n" + rows).encode())
    reader = RecipientReader(stream, campaign, now=world.clock.now, report=ImportReport())
    batches = reader.batches()
    first = await anext(batches)
    assert len(first) == BATCH_SIZE
    # One batch in hand: the reader has not consumed the file (the csv module reads ahead
    # by an 8 KiB buffer only).
    assert stream.tell() < len(stream.getvalue()) / 2
    rest = [batch async for batch in batches]
    assert sum(len(b) for b in rest) == BATCH_SIZE * 4


async def test_importing_into_a_finished_campaign_is_refused(world: World) -> None:
    user, mailbox = await world.sender()
    campaign, _ = await world.campaign(user, mailbox, "email\na@example.com\n")
    await world.campaigns.cancel(user.user_id, campaign.campaign_id)
    from mailramp.errors import ConflictError

    with pytest.raises(ConflictError, match="cancelled"):
        await _import(world, campaign.campaign_id, user.user_id, b"email\nb@example.com\n")
