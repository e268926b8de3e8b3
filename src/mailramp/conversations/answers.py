"""Answering from the inbox: the user's answer goes through the mailbox the conversation is
with, in its thread (`In-Reply-To` the person's latest message, `References` the thread so
far, `Re:` its subject), the message answered quoted below it, plain text, with no tracking
pixel — unless the user asks for one —, no rewritten link and no unsubscribe header: a
person's reply to a person. It is
kept in the thread; it is not a campaign email (no record, no counter, no daily limit).

At most once, as campaign sends: the answer is stored `sending`, with its Message-ID, before
it leaves. A second request with the same `answer_id` (a double click, a retry after a
timeout) finds it and sends nothing. A crash or a connection that breaks while it is handed
over leaves it `sending` or `uncertain`, shown as such, never sent again by itself."""

from __future__ import annotations

import html
import logging
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Protocol

from mailramp.conversations.inbox import InboxService, InboxStore, Thread
from mailramp.errors import (
    MailboxUnusableError,
    PermanentSendError,
    ProviderError,
    TransientSendError,
    UncertainSendError,
    ValidationError,
)
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.ids import is_object_id, new_object_id
from mailramp.mailboxes.service import MailboxService
from mailramp.mailboxes.transport import ProviderFactory, ReportsSentMessageId
from mailramp.sending.message import message_id_for, reply_subject
from mailramp.tracking.links import TrackingLinks
from mailramp.tracking.models import ConversationMessage

log = logging.getLogger(__name__)

ANSWER_MAX = 50_000
"""Characters an answer may have."""


class AnswerStore(InboxStore, Protocol):
    """What answering reads and writes."""


class AnswerService:
    """Sends the user's answers from a thread."""

    def __init__(
        self,
        store: AnswerStore,
        inbox: InboxService,
        mailboxes: MailboxService,
        providers: ProviderFactory,
        links: TrackingLinks,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._inbox = inbox
        self._mailboxes = mailboxes
        self._providers = providers
        self._links = links
        self._clock = clock

    async def answer(
        self,
        user_id: str,
        campaign_id: str,
        record_id: str,
        text: str,
        *,
        answer_id: str | None = None,
        track_opens: bool = False,
    ) -> ConversationMessage:
        """Send `text` to the person of the thread (the module docstring says how); the
        answer as stored, with its status. `answer_id` makes a repeat harmless;
        `track_opens` adds a pixel (in an HTML part beside the text), whose opens show on
        the answer and never on the campaign's counters."""
        given = str(text or "")
        body = given.replace("\r\n", "\n").strip()
        if not body or len(given) > ANSWER_MAX:
            length = len(given) if body else 0
            raise ValidationError(
                "text", f"an answer is 1 to {ANSWER_MAX:,} characters, not {length:,}"
            )
        if answer_id is not None and not is_object_id(answer_id):
            raise ValidationError("answer_id", "must be 24 hexadecimal characters", value=answer_id)
        thread = await self._inbox.thread(user_id, campaign_id, record_id, mark_read=False)
        if answer_id is not None:
            earlier = next((m for m in thread.messages if m.id == answer_id), None)
            if earlier is not None:
                return earlier  # asked again: sent (or tried) once already
        answer = await self._compose(thread, body, answer_id or new_object_id(), track_opens)
        if not await self._store.add_conversation_message(answer):
            return answer  # a concurrent request with the same id won the race
        status, error, used = await self._send(answer)
        message_id = used or answer.message_id
        await self._store.finish_answer(
            answer.id, status=status, error=error, message_id=message_id
        )
        return answer.model_copy(
            update={"status": status, "error": error, "message_id": message_id}
        )

    async def _compose(
        self, thread: Thread, body: str, answer_id: str, track_opens: bool
    ) -> ConversationMessage:
        """The answer, in the thread of the person's latest message (or of the campaign's
        latest email to them, when they have not written)."""
        person = thread.person
        theirs = [m for m in thread.messages if m.direction == "in"]
        latest = theirs[-1] if theirs else None
        if latest is not None:
            mailbox_id, parent = latest.mailbox_id, latest.message_id
            references = [*latest.references, *([parent] if parent else [])]
            subject, record_id = reply_subject(latest.subject or "your message"), latest.record_id
            quoted = _quote(latest.sent_at or latest.received_at, latest.sender, latest.text)
        else:
            if not thread.sent:
                raise ValidationError("record_id", "nothing was sent to this person yet")
            email = thread.sent[-1]
            mailbox_id, parent, record_id = email.mailbox_id, email.message_id, email.id
            references = [e.message_id for e in thread.sent if e.message_id]
            subject, quoted = reply_subject(thread.campaign_name), ""
        mailbox = await self._mailboxes.get_mailbox(person.user_id, mailbox_id)
        now = self._clock()
        return ConversationMessage(
            id=answer_id,
            user_id=person.user_id,
            mailbox_id=mailbox.mailbox_id,
            campaign_id=person.campaign_id,
            record_id=record_id,
            recipient_email=person.recipient_email,
            direction="out",
            kind="answer",
            message_id=message_id_for(answer_id, mailbox.email),
            references=list(dict.fromkeys(r for r in references if r))[-20:],
            sender=formataddr((mailbox.display_name or "", mailbox.email)),
            to=person.recipient_email,
            subject=subject,
            sent_at=now,
            received_at=now,
            text=body,
            quoted=quoted,
            size=len(body.encode()),
            read_at=now,
            status="sending",
            track_opens=track_opens,
        )

    async def _send(self, answer: ConversationMessage) -> tuple[str, str | None, str | None]:
        """Hand the answer to its mailbox's provider: its status, what went wrong, and the
        Message-ID the provider sent it under when not ours (Gmail may replace it)."""
        try:
            mailbox = await self._mailboxes.get_mailbox(answer.user_id, answer.mailbox_id)
        except MailboxUnusableError as error:
            return "failed", error.message, None
        pixel = None
        if answer.track_opens:
            pixel = self._links.for_mailbox(mailbox).answer_open_url(answer.id)
        message = _message(answer, pixel)
        try:
            credentials = await self._mailboxes.credentials(answer.user_id, answer.mailbox_id)
            provider = self._providers(mailbox, credentials)
        except MailboxUnusableError as error:
            return "failed", error.message, None
        try:
            await provider.send(message, sender=mailbox.email, recipient=answer.recipient_email)
            return "sent", None, await _used_message_id(provider, answer)
        except UncertainSendError as error:
            log.warning("answer %s may or may not have left: %s", answer.id, error.message)
            return "uncertain", error.message, None
        except (PermanentSendError, TransientSendError, MailboxUnusableError) as error:
            return "failed", error.message, None
        finally:
            await provider.close()


async def _used_message_id(provider: object, answer: ConversationMessage) -> str | None:
    """The Message-ID a provider that may replace ours sent the answer under, if not ours;
    the answer left whatever this says (a failed read-back keeps ours)."""
    if not isinstance(provider, ReportsSentMessageId) or provider.last_message_id is None:
        return None
    try:
        used = await provider.sent_message_id(provider.last_message_id)
    except ProviderError as error:
        log.warning("answer %s: Message-ID not read back: %s", answer.id, error.message)
        return None
    return used if used and used != answer.message_id else None


def _message(answer: ConversationMessage, pixel: str | None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = answer.sender
    message["To"] = answer.to
    message["Subject"] = answer.subject
    message["Date"] = format_datetime(answer.sent_at or answer.received_at)
    message["Message-ID"] = answer.message_id or ""
    if answer.references:
        message["In-Reply-To"] = answer.references[-1]
        message["References"] = " ".join(answer.references)
    text = answer.text + (f"\n\n{answer.quoted}" if answer.quoted else "")
    message.set_content(text + "\n")
    if pixel is not None:  # asked for: the text as HTML, and the pixel after it
        paragraphs = "".join(
            f"<p>{html.escape(part).replace(chr(10), '<br>')}</p>" for part in text.split("\n\n")
        )
        message.add_alternative(
            f'{paragraphs}<img src="{html.escape(pixel)}" width="1" height="1" alt="">',
            subtype="html",
        )
    return message


def _quote(at: object, sender: str, text: str) -> str:
    """The message answered, quoted as mail clients quote it."""
    when = format_datetime(at) if at is not None else "earlier"  # type: ignore[arg-type]
    lines = "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))
    return f"On {when}, {sender} wrote:\n{lines}"
