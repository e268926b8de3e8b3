"""Personalisation and the built message: escaping, no code, no header injection."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

from mailramp.campaigns import templates
from mailramp.campaigns.models import Campaign, MessageFormat
from mailramp.kit.ids import new_campaign_id, new_object_id
from mailramp.mailboxes.models import Mailbox
from mailramp.sending.message import build_message, html_to_text, message_id_for
from mailramp.tracking.models import EmailTracking

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
USER, BOX = new_object_id(), new_object_id()


def _campaign(subject: str, message: str, fmt: MessageFormat = MessageFormat.TEXT) -> Campaign:
    return Campaign(
        id=new_object_id(),
        campaign_id=new_campaign_id(),
        user_id=USER,
        mailbox_id=BOX,
        campaign_name="c",
        subject=subject,
        message=message,
        duration=1,
        start_time=NOW,
        end_time=NOW,
        created_at=NOW,
        updated_at=NOW,
        created_by=USER,
        message_format=fmt,
    )


MAILBOX = Mailbox(
    id=BOX,
    mailbox_id=BOX,
    user_id=USER,
    email="ann@acme.com",
    provider="smtp",
    display_name="Ann Müller",
    created_at=NOW,
    updated_at=NOW,
)


def _record(**variables: str) -> EmailTracking:
    return EmailTracking(
        id=new_object_id(),
        campaign_id=new_campaign_id(),
        user_id=USER,
        mailbox_id=BOX,
        recipient_email="bob@example.com",
        merge_variables=variables,
        created_at=NOW,
        updated_at=NOW,
    )


def test_placeholders_defaults_and_required_variables() -> None:
    text = "Hi {{ first_name | there }}, about {{Company}} — {{first_name}}"
    assert templates.required_variables(text) == ["company", "first_name"]
    assert templates.render(text, {"first_name": "Bo", "company": "Acme"}) == (
        "Hi Bo, about Acme — Bo"
    )
    assert templates.render("Hi {{first_name|there}}", {"first_name": "  "}) == "Hi there"
    assert templates.variable_name(" First Name ") == "first_name"
    assert templates.missing_variables(["a", "b"], {"a": "x", "b": " "}) == ["b"]


def test_templates_never_execute_anything() -> None:
    hostile = "{{ __import__('os').system('id') }} {% for x in y %}{{x}}{% endfor %} {{7*7}}"
    rendered = templates.render(hostile, {"x": "X"})
    assert rendered == hostile.replace("{{x}}", "X")


def test_text_message_headers_and_body() -> None:
    campaign = _campaign("Hello {{first_name|there}}", "Hi {{first_name}}!\nBye")
    record = _record(first_name="Bob")
    message = build_message(campaign=campaign, mailbox=MAILBOX, record=record, sent_at=NOW)
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed["From"] == "Ann Müller <ann@acme.com>"
    assert parsed["To"] == "bob@example.com"
    assert parsed["Subject"] == "Hello Bob"
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert parsed["Date"] == "Mon, 01 Mar 2027 09:00:00 +0000"
    assert parsed["Message-ID"] == message_id_for(record.id, "ann@acme.com")
    assert parsed["Message-ID"] == f"<{record.id}.mailramp@acme.com>"
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content() == "Hi Bob!\nBye"


def test_values_cannot_inject_headers() -> None:
    campaign = _campaign("Hi {{first_name}}", "x")
    record = _record(first_name="Bob\r\nBcc: victim@example.com")
    message = build_message(campaign=campaign, mailbox=MAILBOX, record=record, sent_at=NOW)
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "Hi Bob Bcc: victim@example.com"


def test_html_values_are_escaped_and_a_text_part_is_generated() -> None:
    campaign = _campaign(
        "Hi",
        "<html><head><style>p{color:red}</style></head><body><p>Hi {{first_name}},</p>"
        '<p>See <a href="https://acme.com/x">our page</a>.</p><ul><li>one</li></ul></body></html>',
        MessageFormat.HTML,
    )
    record = _record(first_name="<script>alert(1)</script>")
    message = build_message(campaign=campaign, mailbox=MAILBOX, record=record, sent_at=NOW)
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    html_part = parsed.get_body(preferencelist=("html",))
    text_part = parsed.get_body(preferencelist=("plain",))
    assert html_part is not None and text_part is not None
    html = html_part.get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    text = text_part.get_content()
    assert "color:red" not in text
    assert "See our page (https://acme.com/x)." in text
    assert "- one" in text


def test_html_to_text_keeps_paragraphs() -> None:
    assert html_to_text("<p>One</p><p>Two<br>Three</p>") == "One\n\nTwo\nThree\n"


def test_non_ascii_subject_and_name_are_encoded() -> None:
    campaign = _campaign("Grüße, {{first_name}}", "Hallo {{first_name}} — schön!")
    record = _record(first_name="Zoë")
    message = build_message(campaign=campaign, mailbox=MAILBOX, record=record, sent_at=NOW)
    raw = message.as_bytes()
    assert raw.isascii()
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == "Grüße, Zoë"
    assert parsed["From"] == "Ann Müller <ann@acme.com>"
    assert parsed.get_content() == "Hallo Zoë — schön!"


def test_tracking_can_be_turned_off_per_campaign() -> None:
    from mailramp.kit.secrets import generate_key
    from mailramp.kit.signing import TokenSigner, derive_tracking_keys
    from mailramp.tracking.links import TrackingLinks

    links = TrackingLinks(TokenSigner(derive_tracking_keys([generate_key()])), "https://t.acme.com")
    html = '<html><body><a href="https://acme.com/x">x</a></body></html>'
    tracked = _campaign("Hi", html, MessageFormat.HTML)
    quiet = tracked.model_copy(update={"track_opens": False, "track_clicks": False})
    record = _record(first_name="Bo")
    loud = build_message(
        campaign=tracked, mailbox=MAILBOX, record=record, sent_at=NOW, tracking=links
    ).as_string()
    calm = build_message(
        campaign=quiet, mailbox=MAILBOX, record=record, sent_at=NOW, tracking=links
    ).as_string()
    assert "https://t.acme.com/t/o/" in loud and "https://t.acme.com/t/c/" in loud
    assert "https://t.acme.com/t/o/" not in calm and "https://t.acme.com/t/c/" not in calm
    assert 'href=3D"https://acme.com/x"' in calm or 'href="https://acme.com/x"' in calm
    assert "https://t.acme.com/t/u/" in calm  # unsubscribe is never turned off
    text = _campaign("Hi", "See https://acme.com/x.\nBye")
    plain = build_message(
        campaign=text, mailbox=MAILBOX, record=record, sent_at=NOW, tracking=links
    )
    body = message_from_bytes(plain.as_bytes(), policy=policy.default).get_content()
    # A plain-text email shows its links as written: a tracking URL is what the recipient
    # would see instead.
    assert body.startswith("See https://acme.com/x.\nBye") and "/t/c/" not in body
    assert "Unsubscribe: https://t.acme.com/t/u/" in body
    # So does the text part of an HTML email; its HTML part carries the tracked links.
    parts = message_from_bytes(loud.encode(), policy=policy.default)
    text_part = parts.get_body(preferencelist=("plain",))
    assert text_part is not None
    shown = text_part.get_content()
    assert "x (https://acme.com/x)" in shown and "/t/c/" not in shown
    assert "Unsubscribe: https://t.acme.com/t/u/" in shown
