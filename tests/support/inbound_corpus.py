"""The real inbound corpus (`../shared/corpus/inbound`, read in place, never copied) and a
scorecard of what the classifier makes of it, for the threshold test and the benchmark.

The corpus is read where the project's instructions put it, `../shared/corpus/inbound` (or
MAILRAMP_INBOUND_CORPUS); a clean clone elsewhere finds it beside the repository it was
cloned from. The corpus's `expected.tsv` gives each message's kind and each failed
recipient's status; `tests/tracking/data/inbound_recipients.tsv` adds the failed
recipients' addresses, read from each message by hand (with a second reading, `also`, where
the message supports two: the address mailed and the one it was forwarded to).
"""

from __future__ import annotations

import csv
import os
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mailramp.tracking.inbound import Inbound, InboundKind, classify_inbound

ROOT = Path(__file__).resolve().parents[2]
IN_SHARED = Path("shared") / "corpus" / "inbound"


def _origin() -> Path | None:
    """The repository this checkout was cloned from, when it is a folder on this machine."""
    try:
        url = subprocess.run(
            ["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    path = Path(url.removeprefix("file://"))
    return path if url and path.is_absolute() and path.exists() else None


def corpus_folder() -> Path:
    """Where the corpus is: MAILRAMP_INBOUND_CORPUS, else `../shared/corpus/inbound` beside
    the project, or beside the repository a clean clone was made from."""
    if os.environ.get("MAILRAMP_INBOUND_CORPUS"):
        return Path(os.environ["MAILRAMP_INBOUND_CORPUS"])
    for project in (ROOT, _origin()):
        if project is not None and (project.parent / IN_SHARED).exists():
            return project.parent / IN_SHARED
    return ROOT.parent / IN_SHARED  # missing: the test says where it looked


CORPUS = corpus_folder()
RECIPIENTS = ROOT / "tests" / "tracking" / "data" / "inbound_recipients.tsv"

BOUNCE_KINDS = frozenset({"hard", "soft"})
# What each expected kind must be classified as.
WANTED = {
    "hard": {InboundKind.HARD_BOUNCE, InboundKind.SOFT_BOUNCE},
    # The corpus counts delay warnings (the server is still trying) as soft bounces;
    # mailramp keeps them apart, as delay reports, since the message may yet arrive.
    "soft": {InboundKind.HARD_BOUNCE, InboundKind.SOFT_BOUNCE, InboundKind.DELAYED},
    "auto-reply": {InboundKind.AUTO_REPLY},
    "feedback-report": {InboundKind.COMPLAINT},
    # A delivery, or a report that only says the address could take mail (Postfix's
    # `sendmail -bv`, "Action: deliverable"): never a bounce.
    "delivered-dsn": {InboundKind.DELIVERED, InboundKind.UNRELATED},
}


@dataclass
class Expected:
    """One message's expected verdict: its kind, and per failed recipient (in order) the
    status and the address(es) that count as right."""

    kind: str
    statuses: list[str] = field(default_factory=list)
    recipients: list[set[str]] = field(default_factory=list)


def expected(corpus: Path = CORPUS) -> dict[str, Expected]:
    """file → its expected verdict."""
    verdicts: dict[str, Expected] = {}
    with (corpus / "expected.tsv").open(newline="") as table:
        for row in csv.DictReader(table, delimiter="\t"):
            verdict = verdicts.setdefault(row["file"], Expected(row["kind"]))
            verdict.statuses.append(row["status"])
    with RECIPIENTS.open(newline="") as table:
        for row in csv.DictReader(table, delimiter="\t"):
            readings = {row["recipient"], *([row["also"]] if row["also"] else [])}
            verdicts[row["file"]].recipients.append(readings)
    return verdicts


@dataclass
class Scorecard:
    """Counts per expected kind (`messages`, `recognised`) and, over the bounces,
    per failed recipient: `recipients`, `recipient_right`, `status_class_right`;
    per bounce message: `with_original_id`; and how often classifying raised."""

    messages: Counter[str] = field(default_factory=Counter)
    recognised: Counter[str] = field(default_factory=Counter)
    got: dict[str, Counter[str]] = field(default_factory=dict)
    recipients: int = 0
    recipient_right: int = 0
    status_class_right: int = 0
    with_original_id: int = 0
    crashes: int = 0
    misses: list[str] = field(default_factory=list)

    def share(self, kind: str) -> float:
        """The share of `kind`'s messages recognised, in percent."""
        return 100 * self.recognised[kind] / self.messages[kind] if self.messages[kind] else 0

    @property
    def bounces(self) -> int:
        return sum(self.messages[kind] for kind in BOUNCE_KINDS)

    @property
    def bounces_recognised(self) -> int:
        return sum(self.recognised[kind] for kind in BOUNCE_KINDS)

    def add(self, name: str, verdict: Expected, inbound: Inbound | None) -> None:
        self.messages[verdict.kind] += 1
        if inbound is None:
            self.crashes += 1
            self.misses.append(f"{name}: raised")
            return
        self.got.setdefault(verdict.kind, Counter())[inbound.kind.value] += 1
        if inbound.kind in WANTED[verdict.kind]:
            self.recognised[verdict.kind] += 1
        else:
            self.misses.append(f"{name}: {verdict.kind} classified as {inbound.kind.value}")
        if verdict.kind not in BOUNCE_KINDS:
            return
        if inbound.references:
            self.with_original_id += 1
        for index, (status, readings) in enumerate(
            zip(verdict.statuses, verdict.recipients, strict=True)
        ):
            self.recipients += 1
            failure = inbound.failures[index] if index < len(inbound.failures) else None
            if failure is not None and failure.recipient in readings:
                self.recipient_right += 1
            else:
                found = failure.recipient if failure else None
                self.misses.append(f"{name} #{index + 1}: recipient {found} not {readings}")
            if failure is not None and failure.status[:1] == status[:1]:
                self.status_class_right += 1
            elif failure is not None:
                self.misses.append(f"{name} #{index + 1}: status {failure.status} not {status}")


def score(corpus: Path = CORPUS) -> Scorecard:
    """Classify every message of the corpus and count what came out right."""
    card = Scorecard()
    for name, verdict in expected(corpus).items():
        try:
            inbound: Inbound | None = classify_inbound((corpus / name).read_bytes())
        except Exception:
            inbound = None
        card.add(name, verdict, inbound)
    return card


def table(card: Scorecard) -> str:
    """The scorecard as the Markdown table docs/tracking.md shows."""
    lines = ["| expected | messages | recognised | classified as |", "|---|---|---|---|"]
    for kind in ("hard", "soft", "feedback-report", "auto-reply", "delivered-dsn"):
        spread = ", ".join(f"{k} {n}" for k, n in card.got.get(kind, Counter()).most_common())
        lines.append(
            f"| {kind} | {card.messages[kind]} | {card.recognised[kind]} "
            f"({card.share(kind):.1f}%) | {spread} |"
        )
    bounces = card.bounces or 1
    recipients = card.recipients or 1
    lines += [
        "",
        f"bounces recognised: {card.bounces_recognised} of {card.bounces} "
        f"({100 * card.bounces_recognised / bounces:.1f}%)",
        f"failed recipient right: {card.recipient_right} of {card.recipients} "
        f"({100 * card.recipient_right / recipients:.1f}%)",
        f"status class right: {card.status_class_right} of {card.recipients} "
        f"({100 * card.status_class_right / recipients:.1f}%)",
        f"original Message-ID found: {card.with_original_id} of {card.bounces} bounces",
        f"crashes: {card.crashes}",
    ]
    return "\n".join(lines)
