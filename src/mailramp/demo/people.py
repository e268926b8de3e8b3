"""The demo's recipients and what each of them does with the email, drawn from a seeded
random generator so a run can be repeated. Every reaction goes through the real paths: the
tracking endpoints over HTTP (a person's browser, Apple's privacy proxy, a link scanner)
and the mailbox's IMAP inbox (replies, out-of-office answers, bounce reports)."""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

import httpx

from mailramp.demo.servers import UNKNOWN_MAILBOX_PREFIX, Delivered, DemoInbox

FIRST_NAMES = (
    "Ada", "Ben", "Chloé", "Dev", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jonas", "Kai",
    "Lena", "Mateo", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Vera",
    "Wen", "Ximena", "Yusuf", "Zoe",
)  # fmt: skip
COMPANIES = (
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises",
    "Tyrell", "Soylent", "Cyberdyne", "Vandelay", "Wonka", "Aperture", "Black Mesa",
)  # fmt: skip

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari"
APPLE_PROXY = "Mozilla/5.0"  # what Apple Mail Privacy Protection's proxies send
SCANNER = "Mimecast Safe Links"
PIXEL = re.compile(r'<img src="([^"]+/t/o/[^"]+)"')
LINK = re.compile(r'href="([^"]+/t/c/[^"]+)"')
HUMAN_DELAY = (11.0, 20.0)  # seconds after delivery: later than a scanner, like a person


@dataclass
class Person:
    """A recipient and the part they play."""

    email: str
    first_name: str
    company: str
    apple_proxy: bool = False  # their mail app pre-fetches images: a machine open
    scanner: bool = False  # their company's gateway follows every link: a machine click
    opens: bool = False
    clicks: bool = False
    replies: bool = False
    auto_replies: bool = False
    late_bounce: bool = False  # accepted, then a delivery-status report comes back
    unsubscribes: bool = False

    @property
    def unknown(self) -> bool:
        """The address does not exist: refused at send time."""
        return self.email.startswith(UNKNOWN_MAILBOX_PREFIX)


def audience(count: int, *, seed: int) -> list[Person]:
    """`count` people with a realistic spread of behaviour; with 20 or more, at least one
    of every kind."""
    rng = random.Random(seed)  # noqa: S311 - a repeatable demo, not a secret
    people = []
    for index in range(count):
        first = rng.choice(FIRST_NAMES)
        company = rng.choice(COMPANIES)
        unknown = rng.random() < 0.03
        local = f"{first.lower().replace('é', 'e')}.{index:04d}"
        domain = company.lower().replace(" ", "") + ".example"
        person = Person(
            email=f"{UNKNOWN_MAILBOX_PREFIX if unknown else ''}{local}@{domain}",
            first_name=first,
            company=company,
        )
        if not unknown:
            roll = rng.random()
            person.late_bounce = roll < 0.015
            person.auto_replies = 0.015 <= roll < 0.035
            person.apple_proxy = rng.random() < 0.12
            person.opens = not person.apple_proxy and rng.random() < 0.42
            person.clicks = person.opens and rng.random() < 0.3
            person.replies = person.opens and not person.auto_replies and rng.random() < 0.15
            person.scanner = rng.random() < 0.04
            person.unsubscribes = person.opens and not person.replies and rng.random() < 0.03
        people.append(person)
    if count >= 20:
        _at_least_one_of_each(people)
    return people


def _at_least_one_of_each(people: list[Person]) -> None:
    reachable = [p for p in people if not p.unknown and not p.late_bounce]
    if not any(p.unknown for p in people):
        last = people[-1]
        last.email = UNKNOWN_MAILBOX_PREFIX + last.email
        for name in ("apple_proxy", "scanner", "opens", "clicks", "replies", "auto_replies"):
            setattr(last, name, False)
        last.unsubscribes = False
        reachable = [p for p in reachable if p is not last]
    wanted = [
        ("late_bounce", reachable[0]),
        ("auto_replies", reachable[1]),
        ("replies", reachable[2]),
        ("clicks", reachable[3]),
        ("unsubscribes", reachable[4]),
        ("scanner", reachable[5]),
        ("apple_proxy", reachable[6]),
    ]
    for name, person in wanted:
        if not any(getattr(p, name) for p in people):
            setattr(person, name, True)
            if name in ("replies", "clicks", "unsubscribes"):
                person.opens, person.apple_proxy = True, False
            if name == "late_bounce":
                person.auto_replies = person.replies = False


def csv_file(people: list[Person]) -> bytes:
    """The recipient file a user would upload: the audience, plus a duplicate and an
    invalid row so the import report has something to say."""
    lines = ["email,first_name,company"]
    lines += [f"{p.email},{p.first_name},{p.company}" for p in people]
    if people:
        lines.append(f"{people[0].email.upper()},{people[0].first_name},duplicate")
    lines.append("not-an-address,Nobody,Nowhere")
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Simulation:
    """Plays every person's part as their email arrives; `done` counts what they did."""

    people: dict[str, Person]
    inboxes: dict[str, DemoInbox]
    """Each demo mailbox's inbox, by its address: an answer lands in the sender's."""
    http: httpx.AsyncClient
    rng: random.Random
    done: Counter[str] = field(default_factory=Counter)
    """What the people did, each kind counted once per person (as mailramp counts people);
    `emails` counts every email that arrived."""
    problems: list[str] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _did: set[tuple[str, str]] = field(default_factory=set)

    def _once(self, person: Person, kind: str) -> None:
        """Count `kind` for `person` unless they did it before (a later step)."""
        if (person.email, kind) not in self._did:
            self._did.add((person.email, kind))
            self.done[kind] += 1

    def _inbox(self, message: EmailMessage) -> DemoInbox:
        sender = parseaddr(str(message["From"]))[1].lower()
        return self.inboxes[sender]

    def react(self, delivered: Delivered) -> None:
        person = self.people.get(delivered.recipient)
        if person is None:
            return
        delay = self.rng.uniform(*HUMAN_DELAY)
        task = asyncio.create_task(self._react(person, delivered.message, delay))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _react(self, person: Person, message: EmailMessage, delay: float) -> None:
        try:
            await self._play(person, message, delay)
        except Exception as error:
            self.problems.append(f"{person.email}: {error!r}")

    async def _play(self, person: Person, message: EmailMessage, delay: float) -> None:
        first = (person.email, "received") not in self._did
        self._once(person, "received")
        self.done["emails"] += 1
        inbox = self._inbox(message)
        html = message.get_body(preferencelist=("html",))
        content = html.get_content() if html is not None else ""
        pixel = PIXEL.search(content)
        link = LINK.search(content)
        unsubscribe = str(message.get("List-Unsubscribe", "")).strip("<> ")
        if person.apple_proxy and pixel:
            await self._get(person, pixel.group(1), APPLE_PROXY, "machine_opens")
        if person.scanner and link:
            await self._get(person, link.group(1), SCANNER, "scanner_clicks")
        if person.late_bounce and first:
            await asyncio.to_thread(inbox.append, bounce_report(person, message))
            self._once(person, "late_bounces")
        if person.auto_replies:  # an out-of-office answers every email
            await asyncio.to_thread(inbox.append, auto_reply(person, message))
            self._once(person, "auto_replies")
        await asyncio.sleep(delay)
        if person.opens and pixel:
            await self._get(person, pixel.group(1), BROWSER, "human_opens")
        if person.clicks and link:
            await asyncio.sleep(1.0)
            await self._get(person, link.group(1), BROWSER, "human_clicks")
        if person.replies:
            await asyncio.to_thread(inbox.append, reply(person, message))
            self._once(person, "replies")
        if person.unsubscribes and unsubscribe and (person.email, "unsubscribes") not in self._did:
            response = await self.http.post(
                unsubscribe,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            response.raise_for_status()
            self._once(person, "unsubscribes")

    async def _get(self, person: Person, url: str, agent: str, counter: str) -> None:
        response = await self.http.get(url, headers={"User-Agent": agent})
        if response.status_code >= 400:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
        self._once(person, counter)

    async def settle(self) -> None:
        """Wait for every reaction under way."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks))


def _answer(person: Person, original: EmailMessage, subject: str) -> EmailMessage:
    answer = EmailMessage()
    answer["From"] = f"{person.first_name} <{person.email}>"
    answer["To"] = str(original["From"])
    answer["Subject"] = subject
    answer["Date"] = format_datetime(datetime.now(UTC))
    answer["Message-ID"] = make_msgid(domain=person.email.split("@")[1])
    answer["In-Reply-To"] = str(original["Message-ID"])
    answer["References"] = str(original["Message-ID"])
    return answer


REPLY_TEXTS = (
    "Sounds interesting. Can we talk on Thursday?",
    "Not the right time for us, maybe next quarter.",
    "Could you send pricing for a team of 20?",
    "I'm not the right person; try our operations lead.",
)


def reply(person: Person, original: EmailMessage) -> bytes:
    """A person's answer, threaded to the email they got, in one of the ways people write:
    plain with the email quoted below, or HTML with a file attached (the inbox shows
    both)."""
    answer = _answer(person, original, f"Re: {original['Subject']}")
    number = sum(map(ord, person.email))
    said = REPLY_TEXTS[number % len(REPLY_TEXTS)]
    quoted = "\n".join(f"> {line}" for line in _text_of(original).splitlines()[:6])
    when = str(original["Date"] or "earlier")
    text = f"{said}\n\n{person.first_name}\n\nOn {when}, {original['From']} wrote:\n{quoted}\n"
    answer.set_content(text)
    if number % 2:
        answer.add_alternative(
            f"<p>{said}</p><p>{person.first_name}<br><i>{person.company}</i></p>"
            f"<blockquote>{quoted.replace('> ', '')}</blockquote>",
            subtype="html",
        )
        answer.add_attachment(
            f"{person.company}: requirements for a pilot\n- 20 seats\n- SSO\n".encode(),
            maintype="text",
            subtype="plain",
            filename="requirements.txt",
        )
    return bytes(answer)


def _text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    content = part.get_content() if part is not None else ""
    return content if isinstance(content, str) else ""


def auto_reply(person: Person, original: EmailMessage) -> bytes:
    """An out-of-office answer (RFC 3834 Auto-Submitted)."""
    answer = _answer(person, original, f"Out of office: {original['Subject']}")
    answer["Auto-Submitted"] = "auto-replied"
    answer.set_content("I am away until Monday with limited access to email.\n")
    return bytes(answer)


def bounce_report(person: Person, original: EmailMessage) -> bytes:
    """An RFC 3464 delivery-status report: the address was accepted, then found gone."""
    sender = str(original["From"])
    boundary = "demo-report-boundary"
    text = (
        f"From: Mail Delivery System <mailer-daemon@{person.email.split('@')[1]}>\r\n"
        f"To: {sender}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        f"Message-ID: {make_msgid(domain='bounces.example')}\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\n"
        f"Your message to {person.email} could not be delivered: the mailbox is gone.\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\n"
        f"Final-Recipient: rfc822; {person.email}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 mailbox unavailable\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {original['Message-ID']}\r\nTo: {person.email}\r\n"
        f"Subject: {original['Subject']}\r\n"
        f"--{boundary}--\r\n"
    )
    return text.encode()
