"""The trap link (docs/tracking.md, "The trap link"): in the HTML part only, nothing a person
can see or follow, and — measured with SpamAssassin's shipped rules, local tests only — it
costs nothing beyond its size: the same email with as many spaces in its place hits the
same rules with the same points (`bench/trap_link.py` measures the candidates)."""

from __future__ import annotations

import re
import shutil
from email import message_from_bytes, policy

import pytest
from bench.trap_link import RECORD, SIGNER, TRACKING_DOMAIN, message_with_trap, score_many

from mailramp.tracking.links import TRAP_LINK_INDEX, TRAP_MARKUP, TrackingLinks
from tests.conftest import _unavailable as unavailable


def _part(message: bytes, subtype: str) -> str:
    body = message_from_bytes(message, policy=policy.default).get_body(preferencelist=(subtype,))
    assert body is not None
    return str(body.get_content())


def test_the_trap_link_is_hidden_in_the_html_part_only() -> None:
    url = TrackingLinks(SIGNER, f"https://{TRACKING_DOMAIN}").click_url(RECORD, TRAP_LINK_INDEX)
    email = message_with_trap(TRAP_MARKUP)
    html, text = _part(email, "html"), _part(email, "plain")
    (anchor,) = re.findall(rf'<a href="{re.escape(url)}"[^>]*>[^<]*</a>', html)
    assert anchor.endswith("></a>")  # no text, no image: nothing to see or click
    assert 'style="display:none"' in anchor and 'aria-hidden="true"' in anchor
    assert 'tabindex="-1"' in anchor
    assert url not in text and "/t/c/" not in text
    # The same token form as every click link: nothing tells a scanner to skip it.
    assert re.fullmatch(r"https://links\.acme\.com/t/c/[A-Za-z0-9_-]{40}", url)


@pytest.mark.parametrize("paragraphs", [0, 3])
def test_spamassassin_scores_the_trap_link_as_its_size_alone(paragraphs: int) -> None:
    if shutil.which("spamassassin") is None:
        unavailable("spamassassin is not installed: run scripts/install-services")
    url = TrackingLinks(SIGNER, f"https://{TRACKING_DOMAIN}").click_url(RECORD, TRAP_LINK_INDEX)
    spaces = " " * len(TRAP_MARKUP.format(url=url))
    trapped, padded = score_many(
        [
            message_with_trap(TRAP_MARKUP, paragraphs=paragraphs),
            message_with_trap(spaces, paragraphs=paragraphs),
        ]
    )
    print(
        f"\n[trap link, {paragraphs} paragraphs] with it: {sum(trapped.values()):.3f} "
        f"({','.join(sorted(trapped))}); as many spaces: {sum(padded.values()):.3f}"
    )
    assert trapped == padded
