"""Tracking over real HTTP: `mailramp serve` on loopback, emails sent through a real SMTP
server, then the pixel, click and unsubscribe links from those emails followed."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from mailramp.config import Settings
from mailramp.runtime import Runtime, open_runtime
from mailramp.tracking.repository import RecipientQuery
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, serving
from tests.support.scenario import make_due_now, smtp_sender
from tests.support.settling import settle_now
from tests.support.smtp import SmtpServer

HTML = (
    "<html><body><p>Hi {{first_name}},</p>"
    '<p><a href="https://acme.com/offer?e={{email}}">our offer</a> and '
    "<a href='https://acme.com/about'>about us</a>.</p></body></html>"
)
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5"


@dataclass
class Site:
    base: str
    settings: Settings
    user_id: str
    campaign_id: str
    mails: dict[str, EmailMessage]

    def run(self, call: Any) -> Any:
        async def go() -> Any:
            runtime = await open_runtime(self.settings)
            try:
                return await call(runtime)
            finally:
                await runtime.close()

        return asyncio.run(go())

    def links(self, recipient: str) -> dict[str, Any]:
        message = self.mails[recipient]
        body = message.get_body(preferencelist=("html",))
        assert body is not None
        html = body.get_content()
        return {
            "html": html,
            "open": re.search(r'<img src="([^"]+)"', html).group(1),  # type: ignore[union-attr]
            "clicks": re.findall(r"""href=["'](http://[^"']+/t/c/[^"']+)["']""", html),
            # A long header may be folded onto its next line (RFC 5322 FWS).
            "unsubscribe": message["List-Unsubscribe"].strip().strip("<>"),
        }

    def record(self, recipient: str) -> Any:
        async def find(runtime: Runtime) -> Any:
            page = await runtime.store.list_tracking(
                self.user_id, RecipientQuery(self.campaign_id, limit=100)
            )
            return next(r for r in page.items if r.recipient_email == recipient)

        return self.run(find)

    def settle(self) -> int:
        """Decide the opens and clicks so far, as a worker does once they settle."""
        return asyncio.run(settle_now(self.settings))

    def metrics(self) -> Any:
        return self.run(lambda r: r.metrics.get_campaign_metrics(self.campaign_id))

    def event_count(self) -> int:
        async def count(runtime: Runtime) -> int:
            async with runtime.store.engine.connect() as connection:  # type: ignore[attr-defined]
                return int(
                    (
                        await connection.execute(text("SELECT count(*) FROM email_events"))
                    ).scalar_one()
                )

        return int(self.run(count))


async def _prepare(settings: Settings, smtp: SmtpServer) -> tuple[str, str]:
    runtime = await open_runtime(settings)
    try:
        user, mailbox = await smtp_sender(runtime, email="ann@acme.com", smtp_port=smtp.port)
        campaign = await runtime.campaigns.create_campaign(
            user.user_id,
            mailbox_id=mailbox.mailbox_id,
            campaign_name="Spring <b>sale</b>",
            subject="Hi {{first_name}}",
            message=HTML,
            message_format="html",
            duration=4,
            start_time=runtime.clock() - timedelta(minutes=5),
        )
        rows = "email,first_name\n" + "".join(f"p{n}@example.com,P{n}\n" for n in range(6))
        await runtime.sending.import_recipients(
            user.user_id, campaign.campaign_id, io.BytesIO(rows.encode())
        )
        await make_due_now(runtime)
        worker = runtime.worker()
        while await worker.tick():
            pass
        await worker.close()
        # Arrangement: the mail went out two minutes ago, so a click now is not "too fast"
        # to be a person's (the classifier's 10-second rule has its own test).
        async with runtime.store.engine.begin() as connection:  # type: ignore[attr-defined]
            await connection.execute(
                text("UPDATE email_tracking SET sent_at = :then"),
                {"then": runtime.clock() - timedelta(minutes=2)},
            )
        return user.user_id, campaign.campaign_id
    finally:
        await runtime.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("tracking")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=f"sqlite:///{directory / 'mailramp.db'}",
        encryption_key_file=directory / "mailramp.key",
        public_base_url=base,
        allow_private_hosts=True,
    )
    smtp = SmtpServer({"ann@acme.com": "pw"}).start()
    try:
        user_id, campaign_id = asyncio.run(_prepare(settings, smtp))
        mails = {message["To"]: message for message in (r.message for r in smtp.inbox.messages)}
    finally:
        smtp.stop()
    environment = clean_environment(MAILRAMP_PUBLIC_BASE_URL=base, MAILRAMP_RUN_WORKER="false")
    with serving(port, cwd=directory, env=environment):
        yield Site(base, settings, user_id, campaign_id, mails)


def test_messages_carry_pixel_tracked_links_and_one_click_unsubscribe(site: Site) -> None:
    message = site.mails["p0@example.com"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    links = site.links("p0@example.com")
    assert links["unsubscribe"].startswith(f"{site.base}/t/u/")
    assert links["open"].startswith(f"{site.base}/t/o/")
    assert len(links["clicks"]) == 2
    assert "acme.com/offer" not in links["html"]  # every link goes through the click URL
    assert f'href="{links["unsubscribe"]}"' in links["html"]
    text_part = message.get_body(preferencelist=("plain",))
    assert text_part is not None and "Hi P0," in text_part.get_content()


def test_pixel_counts_human_and_proxy_opens_apart(site: Site) -> None:
    before = site.metrics()
    human = httpx.get(site.links("p1@example.com")["open"], headers={"User-Agent": BROWSER})
    assert human.status_code == 200 and human.headers["content-type"] == "image/gif"
    assert human.content.startswith(b"GIF89a")
    assert "no-store" in human.headers["cache-control"]
    proxy = httpx.get(
        site.links("p2@example.com")["open"],
        headers={
            "User-Agent": "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
            "(via ggpht.com GoogleImageProxy)"
        },
    )
    assert proxy.status_code == 200
    httpx.get(site.links("p1@example.com")["open"], headers={"User-Agent": BROWSER})  # again
    after = site.metrics()
    assert after.total_opened == before.total_opened + 2
    # A person's open counts once it settles (nothing of its burst came after it).
    assert after.total_human_opened == before.total_human_opened
    assert site.record("p1@example.com").human_opened_at is None
    site.settle()
    after = site.metrics()
    assert after.total_human_opened == before.total_human_opened + 1
    assert site.record("p1@example.com").human_opened_at is not None
    assert site.record("p2@example.com").human_opened_at is None


def test_click_redirects_to_the_stored_personalised_link(site: Site) -> None:
    first = httpx.get(site.links("p3@example.com")["clicks"][0], headers={"User-Agent": BROWSER})
    # Another recipient's second link (one person's two links within seconds are a burst).
    second = httpx.get(site.links("p0@example.com")["clicks"][1], headers={"User-Agent": BROWSER})
    assert first.status_code == 302
    assert first.headers["location"] == "https://acme.com/offer?e=p3@example.com"
    assert second.headers["location"] == "https://acme.com/about"
    site.settle()
    record = site.record("p3@example.com")
    assert record.clicked_at is not None and record.human_clicked_at is not None
    assert record.human_opened_at == record.human_clicked_at  # a click shows an open


def test_scanner_clicks_are_flagged_not_human(site: Site) -> None:
    before = site.metrics()
    link = site.links("p4@example.com")["clicks"][0]
    head = httpx.head(link, headers={"User-Agent": BROWSER})
    assert head.status_code == 302
    scanner = httpx.get(link, headers={"User-Agent": "Mimecast-Scanner/1.0"})
    assert scanner.status_code == 302
    site.settle()
    after = site.metrics()
    assert after.total_clicks == before.total_clicks + 1
    assert after.total_human_clicks == before.total_human_clicks
    assert site.record("p4@example.com").human_clicked_at is None


def test_unsubscribe_get_changes_nothing_post_unsubscribes_once(site: Site) -> None:
    url = site.links("p5@example.com")["unsubscribe"]
    page = httpx.get(url)
    assert page.status_code == 200 and "<form method=post>" in page.text
    assert "Spring &lt;b&gt;sale&lt;/b&gt;" in page.text  # stored data is escaped
    assert site.record("p5@example.com").unsubscribed_at is None
    before = site.metrics()
    one_click = httpx.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200 and "unsubscribed" in one_click.text
    again = httpx.post(url, files={"List-Unsubscribe": (None, "One-Click")})  # multipart
    assert again.status_code == 200
    after = site.metrics()
    assert after.total_unsubscribed == before.total_unsubscribed + 1
    assert site.record("p5@example.com").unsubscribed_at is not None
    suppressed = site.run(lambda r: r.store.suppressed_among(site.user_id, ["p5@example.com"]))
    assert suppressed == {"p5@example.com"}
    assert "will not get these emails" in httpx.get(url).text


def test_a_token_for_another_purpose_is_refused(site: Site) -> None:
    links = site.links("p0@example.com")
    open_token = links["open"].rsplit("/", 1)[1]
    click_token = links["clicks"][0].rsplit("/", 1)[1]
    assert httpx.get(f"{site.base}/t/c/{open_token}").status_code == 404
    assert httpx.get(f"{site.base}/t/u/{click_token}").status_code == 404
    assert httpx.post(f"{site.base}/t/u/{open_token}").status_code == 404


def test_tokens_signed_with_another_key_are_refused(site: Site) -> None:
    from mailramp.kit.secrets import generate_key
    from mailramp.kit.signing import Purpose, TokenSigner, derive_tracking_keys

    record = site.record("p0@example.com")
    foreign = TokenSigner(derive_tracking_keys([generate_key()]))  # another deployment's keys
    before = site.event_count()
    click = httpx.get(f"{site.base}/t/c/{foreign.sign(Purpose.CLICK, record.id, 0)}")
    assert click.status_code == 404 and "location" not in click.headers
    assert (
        httpx.post(f"{site.base}/t/u/{foreign.sign(Purpose.UNSUBSCRIBE, record.id)}").status_code
        == 404
    )
    assert httpx.get(f"{site.base}/t/o/{foreign.sign(Purpose.OPEN, record.id)}").status_code == 200
    assert site.event_count() == before


def test_a_click_never_leads_outside_the_stored_message(site: Site) -> None:
    signer = site.run(lambda r: _signer(r))
    record = site.record("p1@example.com")
    from mailramp.kit.signing import Purpose

    # A genuine token for a link index the message does not have: nothing to redirect to.
    response = httpx.get(f"{site.base}/t/c/{signer.sign(Purpose.CLICK, record.id, 9)}")
    assert response.status_code == 404 and "location" not in response.headers
    allowed = {"https://acme.com/offer?e=p1@example.com", "https://acme.com/about"}
    for index in (0, 1):
        hop = httpx.get(f"{site.base}/t/c/{signer.sign(Purpose.CLICK, record.id, index)}")
        assert hop.headers["location"] in allowed


async def _signer(runtime: Runtime) -> Any:
    return runtime.tracking._signer


def _mutations(token: str) -> st.SearchStrategy[str]:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    flip = (
        st.tuples(st.integers(0, len(token) - 1), st.sampled_from(alphabet))
        .filter(lambda change: token[change[0]] != change[1])
        .map(lambda change: token[: change[0]] + change[1] + token[change[0] + 1 :])
    )
    cut = st.integers(1, len(token) - 1).map(lambda n: token[:n])
    grow = st.text(alphabet, min_size=1, max_size=8).map(lambda extra: token + extra)
    return st.one_of(flip, cut, grow)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_tampered_tokens_are_rejected_and_record_nothing(site: Site, data: st.DataObject) -> None:
    links = site.links("p0@example.com")
    kind = data.draw(st.sampled_from(["open", "click", "unsubscribe"]))
    url = links["clicks"][1] if kind == "click" else links[kind]
    prefix, token = url.rsplit("/", 1)
    mutated = data.draw(_mutations(token))
    before = site.event_count()
    if kind == "open":
        response = httpx.get(f"{prefix}/{mutated}")
        assert response.status_code == 200 and response.content.startswith(b"GIF89a")
    elif kind == "click":
        response = httpx.get(f"{prefix}/{mutated}")
        assert response.status_code in (404, 405) and "location" not in response.headers
    else:
        response = httpx.post(f"{prefix}/{mutated}")
        assert response.status_code in (404, 405)
    assert site.event_count() == before


def test_healthz_still_answers_and_unknown_paths_404(site: Site) -> None:
    assert httpx.get(f"{site.base}/healthz").status_code == 200
    assert httpx.get(f"{site.base}/t/c/").status_code == 404
