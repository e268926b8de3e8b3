"""Injection (docs/reliability.md, item 9), against `mailramp serve` on loopback with a real
SMTP sink and Debian's Chromium.

Script payloads typed into every field a user controls (their name, a mailbox's sender
name, API key names, campaign name, subject and message, merge values, recipient
addresses, the suppression list) and sent to the tracking endpoints as User-Agent and
Referer headers render as text on every page that shows them: in a browser with the
Content-Security-Policy on (no violation reported, no script error) and in one with it
switched off (so escaping alone is what is tested: no dialog, no injected element).
Template syntax in merge values and in the owner's message comes out literally in the mail
that arrives. CSV exports (API download and `mailramp campaign export`) put an apostrophe
before every text cell a spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from mailramp.campaigns import templates
from mailramp.campaigns.spintax import template_problems
from mailramp.sending.export import spreadsheet_safe
from tests.support import scenario
from tests.support.clock import next_monday, system_now
from tests.support.loops import run_blocking
from tests.support.postgres import free_port
from tests.support.processes import clean_environment, run_mailramp, serving
from tests.support.smtp import SmtpServer
from tests.web.conftest import page, screenshot  # noqa: F401  (the browser page fixture)

pytestmark = pytest.mark.reliability

# Each one alerts and sets window.pwned if it ever runs.
SCRIPTS = [
    "<script>alert('s1');window.pwned=1</script>",
    "<img src=x onerror=\"alert('s2');window.pwned=1\">",
    "\"><svg onload=alert('s3')>",
    "'><script>alert('s4')</script>",
    "javascript:alert('s5')",
    "<a href=\"javascript:alert('s6')\">s6</a>",
    "</textarea><script>alert('s7')</script>",
    "</title><script>alert('s8')</script>",
    "<iframe srcdoc=\"<script>alert('s9')</script>\"></iframe>",
    "<body onload=alert('s10')>",
    "<details open ontoggle=alert('s11')>",
    "<style>*{background:url(x)}</style>",
    "{{constructor.constructor('alert(13)')()}}",
]
# Template syntax of Jinja2, Mako, ERB, JS template strings; none may be evaluated.
TEMPLATE_SYNTAX = [
    "{{ 7*7 }}",
    "{{ ''.__class__.__mro__ }}",
    "{% for x in range(3) %}loop{% endfor %}",
    "${7*7}",
    "#{7*7}",
    "<%= 7*7 %>",
    "{{email}}",
    "{{ self.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{% import os %}{{ os.system('id') }}",
]
# What a sender may write in a message: a `{{` that starts no merge tag is refused when
# the campaign is saved (tests/sending/test_spintax.py); the rest is text.
WRITABLE = [t for t in SCRIPTS + TEMPLATE_SYNTAX if not template_problems(t)]
FORMULAS = [
    "=1+2",
    "+1+2",
    "-1+2",
    "@SUM(A1:A2)",
    '=HYPERLINK("http://evil.example","click")',
    "=cmd|' /C calc'!A0",
]
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Addresses are valid as they are: quotes, backticks, braces and = are allowed before the @.
HOSTILE_ADDRESSES = [
    "x'onmouseover=alert`1`'@example.com",
    "{{7*7}}@example.com",
    "=1+2@example.com",
    "-2+3@example.com",
    "+cmd@example.com",
]
HOSTILE_AGENT = "<script>alert('ua')</script><img src=x onerror=alert('ua2')>"
HOSTILE_REFERER = "https://evil.example/?q=<script>alert('ref')</script>"

# Elements or attributes that would mean markup got through instead of text.
INJECTED = """() => {
    const found = [];
    for (const element of document.querySelectorAll('*')) {
        for (const attribute of element.attributes) {
            if (attribute.name.startsWith('on')) found.push(element.tagName + ' ' + attribute.name);
            if (['href', 'src', 'action', 'formaction', 'srcdoc'].includes(attribute.name)
                && /^\\s*javascript:/i.test(attribute.value)) found.push(attribute.value);
        }
    }
    for (const script of document.scripts) {
        if (!script.src || new URL(script.src).origin !== location.origin) {
            found.push(script.outerHTML.slice(0, 80));
        }
    }
    // The page's own: the email preview's frame, sandboxed to run nothing, the chart's
    // table of numbers, the plan per day, the new-campaign form's A/B wordings and
    // follow-ups (each with its variant B), and the campaign page's steps editor.
    const tags = ['iframe:not(#preview-frame[sandbox=""])', 'object', 'embed',
                  'details:not(.chart-data):not(#plan-days):not(#ab-test):not(#follow-ups)'
                  + ':not(.step-variant):not(#steps-editor)',
                  'svg:not(.chart)', 'style', 'base'];
    for (const tag of tags) {
        for (const element of document.querySelectorAll(tag)) {
            found.push(element.outerHTML.slice(0, 80));
        }
    }
    if (window.pwned !== undefined) found.push('window.pwned');
    return found;
}"""


def hostile_csv() -> str:
    """One recipient per script payload and per template payload, with formulas beside."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["email", "first_name", "company", "note"])
    for number, script in enumerate(SCRIPTS):
        syntax = TEMPLATE_SYNTAX[number % len(TEMPLATE_SYNTAX)]
        writer.writerow([f"s{number}@example.com", script, syntax, FORMULAS[number % 6]])
    for number, syntax in enumerate(TEMPLATE_SYNTAX):
        writer.writerow([f"t{number}@example.com", syntax, syntax, SCRIPTS[number]])
    for number, address in enumerate(HOSTILE_ADDRESSES):
        writer.writerow([address, FORMULAS[number % 6], SCRIPTS[number], FORMULAS[-1]])
    return buffer.getvalue()


@dataclass
class Site:
    base: str
    directory: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    directory = tmp_path_factory.mktemp("injection")
    environment = clean_environment(
        MAILRAMP_RUN_WORKER="false",
        MAILRAMP_ALLOW_PRIVATE_HOSTS="true",
        MAILRAMP_PUBLIC_BASE_URL=base,
    )
    with serving(port, cwd=directory, env=environment):
        yield Site(base, directory)
    log = (directory / "serve.log").read_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-4000:]


def send_everything_now(site: Site) -> None:
    """Make every record due and run worker passes on the server's database until nothing is
    left, then date the sends a minute back (a click right after is a person's)."""
    scenario.send_everything_now(site.directory, site.base)


@dataclass
class Browsers:
    """The test's page (policy on: violations and script errors collected) and a page whose
    context ignores the Content-Security-Policy (so only escaping stands in the way)."""

    guarded: Any
    bare: Any
    dialogs: list[str] = field(default_factory=list)
    rendered: list[str] = field(default_factory=list)

    def on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def each(self) -> Iterator[Any]:
        yield self.guarded
        yield self.bare

    def check(self, name: str, *shown: Callable[[Any], None]) -> None:
        """Both pages are on the same view: nothing ran, nothing was injected, and the
        hostile text is shown as text."""
        for tab in self.each():
            assert tab.evaluate(INJECTED) == [], (name, tab.url)
            for expectation in shown:
                expectation(tab)
        assert self.dialogs == [], (name, self.dialogs)
        assert self.guarded.problems == [], (name, self.guarded.problems)
        self.rendered.append(name)

    def visit(self, name: str, url: str, *shown: Callable[[Any], None]) -> None:
        for tab in self.each():
            tab.goto(url)
        self.check(name, *shown)


@pytest.fixture
def browsers(page: Any, browser: Any) -> Iterator[Browsers]:  # noqa: F811
    context = browser.new_context(
        bypass_csp=True, timezone_id="America/New_York", viewport={"width": 1200, "height": 800}
    )
    bare = context.new_page()
    found = Browsers(page, bare)
    for tab in found.each():
        tab.on("dialog", found.on_dialog)
    bare.on("pageerror", lambda error: found.dialogs.append(f"script error: {error}"))
    try:
        yield found
    finally:
        context.close()


def _sign_up(tab: Any, site: Site, login: str, name: str) -> None:
    tab.goto(site.base + "/signup")
    tab.fill("#user_name", name)
    tab.fill("#login_id", login)
    tab.fill("#password", "a long enough passphrase")
    tab.click("button[type=submit]")
    tab.wait_for_url("**/mailboxes")


def _sign_in(tab: Any, site: Site, login: str) -> None:
    tab.goto(site.base + "/signin")
    tab.fill("#login_id", login)
    tab.fill("#password", "a long enough passphrase")
    tab.click("button[type=submit]")
    tab.wait_for_url("**/campaigns")


def _link_mailbox(tab: Any, email: str, port: int, display_name: str) -> None:
    tab.fill("#email", email)
    tab.fill("#display_name", display_name)
    tab.fill("#smtp_host", "127.0.0.1")
    tab.fill("#smtp_port", str(port))
    tab.select_option("#smtp_security", "plain")
    tab.fill("#password", "smtp-pass")
    tab.fill("#daily_limit", "500")
    tab.click("text=Link mailbox")
    tab.wait_for_selector(f"tr[data-mailbox='{email}']")


def _new_campaign(
    tab: Any, site: Site, tmp_path: Path, *, fields: dict[str, str], format_: str, people: str
) -> str:
    tab.goto(site.base + "/campaigns/new")
    for selector, value in fields.items():
        tab.fill(selector, value)
    tab.select_option("#message_format", format_)
    start = datetime.now(ZoneInfo("America/New_York")) - timedelta(minutes=5)
    tab.fill("#start_time", start.strftime("%Y-%m-%dT%H:%M"))
    tab.fill("#duration", "2")
    file = tmp_path / f"people-{format_}.csv"
    file.write_text(people)
    tab.set_input_files("#recipients", str(file))
    tab.click("text=Create campaign")
    tab.wait_for_selector("p.notice")
    match = re.search(r"/campaigns/([0-9a-f-]{36})", tab.url)
    assert match is not None, tab.url
    return match.group(1)


def _mail_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    # Browsers send a textarea's line breaks as CRLF.
    return str(part.get_content()).replace("\r\n", "\n")


def _mail(smtp: SmtpServer, address: str, *, html: bool) -> EmailMessage:
    """The message of the HTML campaign, or of the text one, sent to `address`."""
    found = [m for m in smtp.inbox.to(address) if (m.get_content_type() != "text/plain") == html]
    assert len(found) == 1, (address, html, len(found))
    return found[0]


def _body(message: EmailMessage) -> str:
    """The text part without the unsubscribe footer (its token is random text)."""
    return _mail_text(message).split("\n--\nUnsubscribe:", 1)[0]


def test_script_payloads_render_as_text_on_every_page(
    site: Site,
    browsers: Browsers,
    tmp_path: Path,
) -> None:
    smtp = SmtpServer({"inject@acme.com": "smtp-pass"}).start()
    guarded, bare = browsers.guarded, browsers.bare
    user_name = SCRIPTS[1][:60] + SCRIPTS[0][:60]
    display_name = SCRIPTS[2] + SCRIPTS[3]
    campaign_name = SCRIPTS[7] + SCRIPTS[1]
    try:
        _sign_up(guarded, site, "inject@example.com", user_name)
        _sign_in(bare, site, "inject@example.com")
        _link_mailbox(guarded, "inject@acme.com", smtp.port, display_name)
        browsers.visit(
            "mailboxes", site.base + "/mailboxes", lambda tab: _shows(tab, "header", user_name)
        )
        mailbox_id = guarded.request.get(site.base + "/api/v1/mailboxes").json()[0]["_id"]
        browsers.visit(
            "mailbox edit",
            f"{site.base}/mailboxes/{mailbox_id}/edit",
            lambda tab: _value(tab, "#display_name", display_name),
        )

        # The new-campaign form sent back with an error: every typed value in its field.
        typed = {
            "#campaign_name": campaign_name,
            "#subject": SCRIPTS[6] + " {{first_name}}",
            "#message": "\n".join(SCRIPTS),
        }
        for tab in browsers.each():
            tab.goto(site.base + "/campaigns/new")
            for selector, value in typed.items():
                tab.fill(selector, value)
            tab.fill("#duration", "0")
            tab.fill("#start_time", f"{next_monday(system_now(), weeks=4):%Y-%m-%dT%H:%M}")
            tab.click("text=Create campaign")
        browsers.check(
            "new campaign, refused",
            *(
                lambda tab, selector=selector, value=value: _value(tab, selector, value)
                for selector, value in typed.items()
            ),
        )

        people = hostile_csv()
        text_campaign = _new_campaign(
            guarded,
            site,
            tmp_path,
            fields={
                "#campaign_name": campaign_name,
                "#subject": "Offer for {{first_name}} at {{company}}",
                "#message": (
                    "Hi {{first_name}} at {{company}} ({{note|none}}, {{email}}).\n"
                    # Template syntax of other engines is text; a `{{` that starts no merge
                    # tag is refused when the campaign is saved (tests/sending/test_spintax).
                    + "\n".join(WRITABLE)
                    + "\nSee https://acme.example/offer\n"
                ),
            },
            format_="text",
            people=people,
        )
        html_campaign = _new_campaign(
            guarded,
            site,
            tmp_path,
            fields={
                "#campaign_name": SCRIPTS[8],
                "#subject": "{{first_name}}",
                "#message": (
                    '<p>Hi {{first_name}} from {{company}}, <a href="https://acme.example/x">'
                    "see</a></p>"
                ),
            },
            format_="html",
            people=people,
        )
        recipients = len(SCRIPTS) + len(TEMPLATE_SYNTAX) + len(HOSTILE_ADDRESSES)
        send_everything_now(site)
        assert len(smtp.inbox.messages) == 2 * recipients

        # User agents and referrers reach the tracking endpoints and the event log.
        for address in ("s0@example.com", HOSTILE_ADDRESSES[0]):
            html_part = _mail(smtp, address, html=True).get_body(preferencelist=("html",))
            assert html_part is not None
            body = html_part.get_content()
            pixel = re.search(r'<img src="([^"]+/t/o/[^"]+)"', body)
            click = re.search(r'href="([^"]+/t/c/[^"]+)"', body)
            assert pixel is not None and click is not None
            hostile = {"User-Agent": HOSTILE_AGENT, "Referer": HOSTILE_REFERER}
            assert httpx.get(pixel.group(1), headers=hostile).status_code == 200
            assert httpx.get(click.group(1), headers=hostile).status_code == 302
            # (A plain-text email's links are left as written: nothing to follow there.)

        listed = guarded.request.get(
            f"{site.base}/api/v1/campaigns/{html_campaign}/recipients", params={"limit": 100}
        ).json()["items"]
        record = next(item for item in listed if item["recipient_email"] == "s0@example.com")
        browsers.visit(
            "campaign list",
            site.base + "/campaigns",
            lambda tab: _shows(tab, "main", campaign_name, SCRIPTS[8]),
        )
        for campaign_id in (text_campaign, html_campaign):
            browsers.visit(
                "campaign",
                f"{site.base}/campaigns/{campaign_id}",
                lambda tab: _shows(tab, "#recipients", *SCRIPTS, *HOSTILE_ADDRESSES),
            )
        browsers.visit(
            "campaign preview",
            f"{site.base}/campaigns/{text_campaign}",
            lambda tab: _shows(tab, "h1", campaign_name),
            lambda tab: _shows(tab, "pre.preview", *(t for t in SCRIPTS if t in WRITABLE)),
        )
        browsers.visit(
            "events",
            f"{site.base}/campaigns/{html_campaign}?record={record['_id']}",
            lambda tab: _shows(tab, "#events", HOSTILE_AGENT),
        )
        # The notice and status filter come from the URL: a crafted link is shown as text.
        crafted = httpx.QueryParams({"notice": SCRIPTS[1], "status": SCRIPTS[2]})
        browsers.visit(
            "crafted link",
            f"{site.base}/campaigns/{html_campaign}?{crafted}",
            lambda tab: _shows(tab, "p.notice", SCRIPTS[1]),
        )

        # The recipient's unsubscribe page shows the campaign name and their address.
        unsubscribe = re.search(
            r"https?://\S+/t/u/\S+", _mail_text(_mail(smtp, HOSTILE_ADDRESSES[0], html=False))
        )
        assert unsubscribe is not None
        browsers.visit(
            "unsubscribe page",
            unsubscribe.group(0),
            lambda tab: _shows(tab, "main", campaign_name, HOSTILE_ADDRESSES[0]),
        )
        guarded.click("button:has-text('Unsubscribe')")
        browsers.check("unsubscribed")
        assert HOSTILE_ADDRESSES[0] in guarded.inner_text("main")

        # Settings: an API key named with a payload, an address refused and echoed, and the
        # hostile address the unsubscribe put on the suppression list.
        guarded.goto(site.base + "/settings")
        guarded.fill("#name", SCRIPTS[4] + SCRIPTS[5])
        guarded.click("button:has-text('Create key')")
        for tab in browsers.each():
            tab.goto(site.base + "/settings")
            tab.fill("#email", SCRIPTS[2])
            tab.click("button:has-text('Suppress')")
        browsers.check(
            "settings",
            lambda tab: _value(tab, "#email", SCRIPTS[2]),
            lambda tab: _shows(tab, "main", SCRIPTS[4] + SCRIPTS[5], HOSTILE_ADDRESSES[0]),
        )
        screenshot(guarded, "reliability-injection-settings")
        guarded.goto(f"{site.base}/campaigns/{text_campaign}")
        screenshot(guarded, "reliability-injection-campaign")

        # Pages for signed-out visitors: a refused sign-in echoes the login, and bad
        # tracking tokens and ids answer without reflecting markup.
        signed_out = guarded.context.browser.new_context(bypass_csp=True)
        try:
            stranger = signed_out.new_page()
            stranger.on("dialog", browsers.on_dialog)
            stranger.goto(site.base + "/signin")
            stranger.fill("#login_id", SCRIPTS[0])
            stranger.fill("#password", "wrong password")
            stranger.click("button[type=submit]")
            assert stranger.input_value("#login_id") == SCRIPTS[0]
            assert stranger.evaluate(INJECTED) == []
            for path in (
                "/t/c/" + SCRIPTS[1],
                "/t/u/%22%3E%3Csvg%20onload%3Dalert(1)%3E",
                "/campaigns/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            ):
                stranger.goto(site.base + path)
                assert stranger.evaluate(INJECTED) == [], path
            assert browsers.dialogs == []
        finally:
            signed_out.close()
        browsers.rendered.append("signed-out pages")
        print(
            f"\n{len(SCRIPTS)} script payloads, {len(TEMPLATE_SYNTAX)} template payloads, "
            f"{len(HOSTILE_ADDRESSES)} hostile addresses; {len(browsers.rendered)} views "
            f"rendered twice (policy on, policy off): {', '.join(browsers.rendered)}"
        )
    finally:
        smtp.stop()


def _shows(tab: Any, selector: str, *texts: str) -> None:
    shown = tab.inner_text(selector)
    for text in texts:
        assert text in shown, (selector, text)


def _value(tab: Any, selector: str, value: str) -> None:
    assert tab.input_value(selector) == value, selector


def test_template_syntax_in_merge_values_and_messages_arrives_literally(
    site: Site,
    page: Any,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    smtp = SmtpServer({"literal@acme.com": "smtp-pass"}).start()
    try:
        _sign_up(page, site, "literal@example.com", "Literal")
        _link_mailbox(page, "literal@acme.com", smtp.port, "Lit {{ 7*7 }}")
        # The owner's own template syntax of other engines (a `{{` that starts no merge tag
        # is refused when saved, naming where: tests/sending/test_spintax.py).
        owner_lines = "\n".join(t for t in TEMPLATE_SYNTAX if t in WRITABLE and t != "{{email}}")
        message = f"Hi {{{{first_name}}}} of {{{{company}}}}; {{{{note|x}}}}\n{owner_lines}\n"
        rows = ["email,first_name,company,note"]
        for number, syntax in enumerate(TEMPLATE_SYNTAX):
            # A value naming another variable is not expanded: rendering is one pass.
            rows.append(f'r{number}@example.com,"{syntax}","{{{{company}}}}","{{{{email}}}}"')
        rows.append("{{7*7}}@example.com,Braces,Acme,{{first_name}}")
        _new_campaign(
            page,
            site,
            tmp_path,
            fields={
                "#campaign_name": "Literal",
                "#subject": "For {{first_name}}",
                "#message": message,
            },
            format_="text",
            people="\n".join(rows) + "\n",
        )
        send_everything_now(site)
        for number, syntax in enumerate(TEMPLATE_SYNTAX):
            mail = _mail(smtp, f"r{number}@example.com", html=False)
            assert str(mail["Subject"]) == f"For {syntax}"
            # The owner's template syntax untouched; the values as typed, not expanded.
            assert _body(mail) == f"Hi {syntax} of {{{{company}}}}; {{{{email}}}}\n{owner_lines}\n"
        braces = _mail(smtp, "{{7*7}}@example.com", html=False)
        assert _body(braces) == f"Hi Braces of Acme; {{{{first_name}}}}\n{owner_lines}\n"
        assert str(braces["To"]) == "{{7*7}}@example.com"
        assert "Lit {{ 7*7 }}" in str(braces["From"])
        everything = "".join(_body(received.message) for received in smtp.inbox.messages)
        for evaluated in ("49", "<class", "uid=", "loop\nloop", "__globals__': {"):
            assert evaluated not in everything
        print(
            f"\n{len(TEMPLATE_SYNTAX)} template payloads x (subject, body, owner's message) literal"
        )
        assert page.problems == []
    finally:
        smtp.stop()


PLACEHOLDERS = {
    "{{email}}": "e@example.com",
    "{{first_name}}{{first_name}}": "{{email}}{{email}}",
    "{{__class__}}x": "x",
    "{{ mro|x }}": "x",
    "{{lipsum|attr('__globals__')}}": "attr('__globals__')",
}


@pytest.mark.parametrize("owner_template", TEMPLATE_SYNTAX + SCRIPTS + list(PLACEHOLDERS))
def test_the_owners_template_is_placeholders_and_text(owner_template: str) -> None:
    # Not a template language: {{name}} and {{name|default}} become the value or the
    # default (once: a value is never rendered again); everything else is text.
    values = {"email": "e@example.com", "first_name": "{{email}}"}
    rendered = templates.render(owner_template, values)
    assert rendered == PLACEHOLDERS.get(owner_template, owner_template)


def test_csv_exports_escape_formulas_in_every_text_column(
    site: Site,
    page: Any,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    smtp = SmtpServer({"export@acme.com": "smtp-pass"}).start()
    try:
        _sign_up(page, site, "export@example.com", "=Exporter")
        _link_mailbox(page, "export@acme.com", smtp.port, "@Exporter")
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["email", "first_name", "company", "note"])
        for number, formula in enumerate(FORMULAS):
            writer.writerow([f"f{number}@example.com", formula, formula, SCRIPTS[number]])
        for number, address in enumerate(HOSTILE_ADDRESSES[2:]):
            writer.writerow([address, "ok", FORMULAS[number], "ok"])
        smtp.inbox.rcpt_replies["f0@example.com"] = ['550 =HYPERLINK("http://evil") no such user!']
        campaign_id = _new_campaign(
            page,
            site,
            tmp_path,
            fields={
                "#campaign_name": "=Export",
                "#subject": "Hi {{first_name}}",
                "#message": "Hello {{company}}",
            },
            format_="text",
            people=buffer.getvalue(),
        )
        send_everything_now(site)
        _values_starting_with_controls(site, campaign_id)

        downloaded = page.request.get(f"{site.base}/api/v1/campaigns/{campaign_id}/export.csv")
        assert downloaded.status == 200
        assert downloaded.headers["content-type"].startswith("text/csv")
        exported = tmp_path / "export.csv"
        cli = run_mailramp(
            "campaign", "export", campaign_id, "-o", str(exported), cwd=site.directory,
            env=clean_environment(),
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        from_cli = exported.read_bytes().decode("utf-8")
        for source, text in (("API", downloaded.text()), ("CLI", from_cli)):
            table = list(csv.reader(io.StringIO(text, newline="")))
            header, rows = table[0], table[1:]
            assert len(rows) == len(FORMULAS) + len(HOSTILE_ADDRESSES[2:]), source
            cells = [cell for row in rows for cell in row]
            risky = [cell for cell in cells if cell.startswith(FORMULA_PREFIXES)]
            assert risky == [], (source, risky)
            for formula in FORMULAS:
                assert "'" + formula in cells, (source, formula)
            for address in HOSTILE_ADDRESSES[2:]:
                assert "'" + address in cells, (source, address)
            assert "'\t=1+2" in cells and "'\r=3+4" in cells, source
            bounced = next(row for row in rows if row[0] == "f0@example.com")
            assert bounced[header.index("status")] == "bounced", source
            assert "=HYPERLINK" in bounced[header.index("last_error")], source
            marked = [cell for cell in cells if cell.startswith("'")]
            size = f"{len(rows)} rows x {len(header)} columns"
            print(f"\n{source} export: {size}, {len(marked)} cells escaped")
    finally:
        smtp.stop()


def _values_starting_with_controls(site: Site, campaign_id: str) -> None:
    """Values an import cannot make (it trims cells), written straight to the database: a
    tab or CR before a formula, and a provider error that starts with one."""
    from sqlalchemy import text

    from mailramp.config import Settings
    from mailramp.runtime import open_runtime

    settings = Settings(
        database_url=f"sqlite:///{site.directory / 'mailramp.db'}",
        encryption_key_file=site.directory / "mailramp.key",
        public_base_url=site.base,
    )

    async def write() -> None:
        runtime = await open_runtime(settings)
        try:
            async with runtime.store.engine.begin() as connection:  # type: ignore[attr-defined]
                await connection.execute(
                    text(
                        "UPDATE email_tracking SET merge_variables = :values, "
                        "last_error = :error WHERE campaign_id = :campaign "
                        "AND recipient_email = 'f1@example.com'"
                    ),
                    {
                        "values": '{"first_name": "\\t=1+2", "company": "\\r=3+4", "note": "x"}',
                        "error": "-1+2 from the provider",
                        "campaign": campaign_id,
                    },
                )
        finally:
            await runtime.close()

    run_blocking(write())


def test_spreadsheet_safe_marks_every_formula_prefix() -> None:
    for prefix in FORMULA_PREFIXES:
        assert spreadsheet_safe(prefix + "1+2") == "'" + prefix + "1+2"
    assert spreadsheet_safe("plain") == "plain" and spreadsheet_safe(None) == ""
    assert spreadsheet_safe(datetime(2031, 1, 6, tzinfo=UTC)) == "2031-01-06T00:00:00+00:00"
