"""Rules for mailboxes: linking, credentials (encrypted), primary choice, status, unlinking."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import SecretStr

from mailramp.accounts.repository import UserRepository
from mailramp.errors import ConflictError, DuplicateError, NotFoundError, ValidationError, found
from mailramp.kit.clock import Clock, utc_now
from mailramp.kit.dns import DnsUnavailable, normal_name
from mailramp.kit.ids import new_object_id
from mailramp.kit.secrets import SecretBox, secret_context
from mailramp.kit.types import parse_input
from mailramp.kit.validation import enum_arg, object_id_arg
from mailramp.mailboxes.domain_checks import RECHECK_AFTER as DNS_RECHECK_AFTER
from mailramp.mailboxes.domain_checks import DomainChecks
from mailramp.mailboxes.models import SECRET_FIELDS, BrakeKind, Mailbox, MailboxStatus
from mailramp.mailboxes.ramp import limit_today, ramp_of
from mailramp.mailboxes.repository import MailboxRepository
from mailramp.mailboxes.schemas import NOT_CLEARABLE, RAMP_FIELDS, MailboxCreate, MailboxUpdate
from mailramp.mailboxes.tracking_domain import FIELD as TRACKING_DOMAIN
from mailramp.mailboxes.tracking_domain import (
    RECHECK_AFTER,
    STORED_FIELDS,
    TrackingDomains,
    parse_tracking_domain,
    verdict,
)

TABLE = "linkbox_box_table"


@dataclass(frozen=True)
class MailboxCredentials:
    """Decrypted secrets, for a provider about to connect. `SecretStr` keeps them out of
    repr and logs; nothing returns this over an interface."""

    mailbox_id: str
    password: SecretStr | None = field(default=None, repr=False)
    access_token: SecretStr | None = field(default=None, repr=False)
    refresh_token: SecretStr | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RotationReport:
    """What `rotate_secrets` did."""

    rotated: int
    skipped_changed: int


class MailboxStore(MailboxRepository, UserRepository, Protocol):
    """What MailboxService reads and writes."""


class MailboxUsers(Protocol):
    """Who still sends from a mailbox: the campaigns domain answers (`CampaignService`)."""

    async def mailbox_can_send_changed(self, user_id: str, mailbox_id: str) -> None:
        """The mailbox started or stopped being able to send: campaigns that share their
        recipients among it and other mailboxes share their waiting emails again."""
        ...

    async def running_on_mailbox(
        self, user_id: str, mailbox_id: str, *, limit: int
    ) -> tuple[int, list[str]]:
        """How many unfinished campaigns send from the mailbox, and the first names."""
        ...


class MailboxService:
    """Links and manages a user's mailboxes."""

    def __init__(
        self,
        store: MailboxStore,
        secrets: SecretBox,
        *,
        in_use: MailboxUsers,
        clock: Clock = utc_now,
        tracking_domains: TrackingDomains | None = None,
        domain_checks: DomainChecks | None = None,
        ramp_new_mailboxes: bool = False,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._in_use = in_use
        self._clock = clock
        self._domains = tracking_domains
        self._domain_checks = domain_checks
        self._ramp_new = ramp_new_mailboxes

    # -- linking ----------------------------------------------------------------------

    async def create_mailbox(self, user_id: str, **fields: Any) -> Mailbox:
        """Link a mailbox for the user. The user's first linked mailbox becomes primary.

        Linking an address the user unlinked before brings that mailbox back (its campaign
        history stays attached) with the new credentials.
        """
        owner = await self._owner(user_id)
        data = parse_input(MailboxCreate, fields)
        existing = await self._store.get_mailbox_by_email(owner, data.email)
        now = self._clock()
        if existing is not None:
            if existing.is_linked:
                raise DuplicateError("email", data.email, kind="linked mailbox")
            return await self._relink(existing, data, now)
        mailbox_id = new_object_id()
        plain = _without_unset_ramp(data.model_dump(exclude=set(SECRET_FIELDS)))
        plain.setdefault("already_warm", not self._ramp_new)
        mailbox = Mailbox(
            id=mailbox_id,
            mailbox_id=mailbox_id,
            user_id=owner,
            **plain,
            **self._encrypted(mailbox_id, data),
            is_primary=False,
            is_active=True,
            status=MailboxStatus.ACTIVE,
            created_at=now,
            updated_at=now,
        )
        return await self._store.insert_mailbox(mailbox)

    async def _relink(self, existing: Mailbox, data: MailboxCreate, now: Any) -> Mailbox:
        changes = _without_unset_ramp(data.model_dump(exclude=set(SECRET_FIELDS)))
        changes |= dict.fromkeys(SECRET_FIELDS)
        changes |= self._encrypted(existing.id, data)
        changes |= {
            "is_active": True,
            "status": MailboxStatus.ACTIVE,
            "status_reason": None,
            "unlinked_at": None,
            "updated_at": now,
        }
        return await self._updated(existing.user_id, existing.id, changes)

    def _encrypted(self, mailbox_id: str, data: MailboxCreate | MailboxUpdate) -> dict[str, str]:
        encrypted = {}
        for name in SECRET_FIELDS:
            value: SecretStr | None = getattr(data, name)
            if value is not None and name in data.model_fields_set:
                encrypted[name] = self._secrets.encrypt(
                    value.get_secret_value(), context=secret_context(TABLE, mailbox_id, name)
                )
        return encrypted

    # -- reading ----------------------------------------------------------------------

    async def get_mailbox(self, user_id: str, mailbox_id: str) -> Mailbox:
        """The user's mailbox (linked or unlinked); another user's is 'not found'."""
        return found(
            await self._store.get_mailbox(
                object_id_arg(user_id, field="user_id"),
                object_id_arg(mailbox_id, field="mailbox_id"),
            ),
            "mailbox",
            mailbox_id,
        )

    async def list_mailboxes(
        self, user_id: str, *, include_unlinked: bool = False
    ) -> list[Mailbox]:
        """The user's mailboxes, primary first."""
        return await self._store.list_mailboxes(
            object_id_arg(user_id, field="user_id"), include_unlinked=include_unlinked
        )

    async def credentials(self, user_id: str, mailbox_id: str) -> MailboxCredentials:
        """The mailbox's decrypted secrets, for a provider connection."""
        mailbox = await self.get_mailbox(user_id, mailbox_id)
        values: dict[str, SecretStr] = {}
        for name in SECRET_FIELDS:
            ciphertext = getattr(mailbox, name)
            if ciphertext is not None:
                context = secret_context(TABLE, mailbox.id, name)
                values[name] = SecretStr(self._secrets.decrypt(ciphertext, context=context))
        return MailboxCredentials(mailbox_id=mailbox.id, **values)

    # -- changing ---------------------------------------------------------------------

    async def update_mailbox(self, user_id: str, mailbox_id: str, **fields: Any) -> Mailbox:
        """Change settings or replace credentials; fields not given stay."""
        mailbox = await self._linked(user_id, mailbox_id)
        data = parse_input(MailboxUpdate, fields)
        changes: dict[str, Any] = {
            name: getattr(data, name) for name in data.model_fields_set if name not in SECRET_FIELDS
        }
        for name in NOT_CLEARABLE:
            if name in changes and changes[name] is None:
                raise ValidationError(name, "cannot be cleared", value=None)
        if "dkim_selectors" in changes:
            changes["dkim_selectors"] = list(dict.fromkeys(changes["dkim_selectors"] or ()))
        if changes.get("brake_rules") is not None:
            changes["brake_rules"] = changes["brake_rules"].model_dump()
        imap_after = changes.get("imap_host", mailbox.imap_host)
        if imap_after is not None and data.password is None and not mailbox.has_password:
            # A relay linked without a login has no password to read an inbox with.
            raise ValidationError(
                "password",
                "is required to read replies over IMAP (imap_host); this mailbox sends "
                "without a login",
            )
        changes |= self._encrypted(mailbox.id, data)
        changes["updated_at"] = self._clock()
        return await self._updated(mailbox.user_id, mailbox.id, changes)

    async def set_tracking_domain(
        self, user_id: str, mailbox_id: str, domain: str | None
    ) -> Mailbox:
        """Give the mailbox its own tracking domain (checked in DNS now; used once it leads
        here), or take it away (None or empty: links use the public address again)."""
        mailbox = await self._linked(user_id, mailbox_id)
        if domain is None or not domain.strip():
            cleared = dict.fromkeys(STORED_FIELDS) | {"updated_at": self._clock()}
            return await self._updated(mailbox.user_id, mailbox.id, cleared)
        domains = self._tracking_domains()
        name = parse_tracking_domain(domain)
        if name == domains.target:
            raise ValidationError(
                TRACKING_DOMAIN, f"{name} is mailramp's own address already", value=domain
            )
        kept = mailbox.tracking_domain_verified_at if name == mailbox.tracking_domain else None
        check = await domains.check(name)
        now = self._clock()
        changes = {TRACKING_DOMAIN: name, "updated_at": now}
        changes |= verdict(check, verified_at=kept, now=now)
        return await self._updated(mailbox.user_id, mailbox.id, changes)

    async def check_tracking_domain(self, user_id: str, mailbox_id: str) -> Mailbox:
        """Check the mailbox's tracking domain in DNS again and record what was found."""
        mailbox = await self._linked(user_id, mailbox_id)
        if mailbox.tracking_domain is None:
            raise ConflictError("this mailbox has no tracking domain", field=TRACKING_DOMAIN)
        check = await self._tracking_domains().check(mailbox.tracking_domain)
        verified = mailbox.tracking_domain_verified_at
        changes = verdict(check, verified_at=verified, now=self._clock())
        return await self._updated(mailbox.user_id, mailbox.id, changes)

    async def serves_tracking_domain(self, domain: str) -> bool:
        """Whether `domain` is a linked mailbox's verified tracking domain (whoever owns it):
        what a reverse proxy asks before it gets a certificate for the name."""
        return await self._store.tracking_domain_in_use(normal_name(domain))

    async def recheck_tracking_domain(self, mailbox: Mailbox) -> Mailbox:
        """The mailbox as the worker should send from it: its tracking domain checked again
        first when the last check is older than RECHECK_AFTER (or as it is, when there is
        none or no resolver here)."""
        if mailbox.tracking_domain is None or self._domains is None:
            return mailbox
        checked = mailbox.tracking_domain_checked_at
        if checked is not None and self._clock() - checked < RECHECK_AFTER:
            return mailbox
        check = await self._domains.check(mailbox.tracking_domain)
        verified = mailbox.tracking_domain_verified_at
        changes = verdict(check, verified_at=verified, now=self._clock())
        return await self._updated(mailbox.user_id, mailbox.id, changes)

    def _tracking_domains(self) -> TrackingDomains:
        if self._domains is None:
            raise ConflictError(
                "tracking domains cannot be checked here (no DNS resolver configured)",
                field=TRACKING_DOMAIN,
            )
        return self._domains

    # -- the sending domain's DNS ------------------------------------------------------

    async def check_domain(self, user_id: str, mailbox_id: str) -> Mailbox:
        """Check the mailbox's sending domain in DNS now (MX, SPF, DKIM, DMARC, tracking
        domain) and record the verdicts; when DNS does not answer the previous ones stand
        and `dns_check_problem` says why."""
        mailbox = await self._linked(user_id, mailbox_id)
        if self._domain_checks is None:
            raise ConflictError(
                "domains cannot be checked here (no DNS resolver configured)", field="dns_checks"
            )
        return await self._check_domain(mailbox, self._domain_checks)

    async def recheck_domains(self, *, limit: int = 20) -> int:
        """Check again the domains of linked mailboxes whose last check is older than a
        day (never checked first); returns how many were checked."""
        if self._domain_checks is None:
            return 0
        now = self._clock()
        due = await self._store.mailboxes_due_dns_check(now - DNS_RECHECK_AFTER, limit=limit)
        for mailbox in due:
            await self._check_domain(mailbox, self._domain_checks)
        return len(due)

    async def _check_domain(self, mailbox: Mailbox, checks: DomainChecks) -> Mailbox:
        now = self._clock()
        if mailbox.is_demo:
            changes: dict[str, Any] = {
                "dns_check_problem": f"{mailbox.domain} is the demo's reserved domain: no DNS "
                "to check",
                "dns_checked_at": now,
            }
            return await self._updated(mailbox.user_id, mailbox.id, changes)
        try:
            found = await checks.check(mailbox)
        except DnsUnavailable as error:
            changes = {
                "dns_check_problem": f"DNS did not answer ({error}); the previous checks stand",
                "dns_checked_at": now,
            }
        else:
            changes = {
                "dns_checks": [check.model_dump(mode="json") for check in found],
                "dns_checked_at": now,
                "dns_check_problem": None,
            }
        return await self._updated(mailbox.user_id, mailbox.id, changes)

    async def set_primary(self, user_id: str, mailbox_id: str) -> Mailbox:
        """Make this linked mailbox the user's primary; the previous primary stops being one."""
        mailbox = await self._linked(user_id, mailbox_id)
        return found(
            await self._store.set_primary_mailbox(mailbox.user_id, mailbox.id),
            "mailbox",
            mailbox_id,
        )

    async def pause(self, user_id: str, mailbox_id: str, *, reason: str | None = None) -> Mailbox:
        """Stop sending from the mailbox until it is activated again."""
        return await self.set_status(user_id, mailbox_id, MailboxStatus.INACTIVE, reason=reason)

    async def activate(self, user_id: str, mailbox_id: str) -> Mailbox:
        """Send from the mailbox again."""
        return await self.set_status(user_id, mailbox_id, MailboxStatus.ACTIVE)

    async def apply_action(self, user_id: str, mailbox_id: str, action: str) -> Mailbox:
        """Do what a mailbox's status button (`Mailbox.status_action`) or the API names:
        `pause` or `activate`."""
        match action:
            case "pause":
                return await self.pause(user_id, mailbox_id)
            case "activate":
                return await self.activate(user_id, mailbox_id)
        raise NotFoundError("mailbox action", action)

    async def set_status(
        self, user_id: str, mailbox_id: str, status: str, *, reason: str | None = None
    ) -> Mailbox:
        """Mark the mailbox active, inactive or in error (`error` needs a reason)."""
        new_status = enum_arg(MailboxStatus, status, field="status")
        reason = reason.strip() if reason else None
        if new_status is MailboxStatus.ERROR and not reason:
            raise ValidationError("reason", "is required when status is 'error'")
        mailbox = await self._linked(user_id, mailbox_id)
        changes = {
            "status": new_status,
            "status_reason": reason,
            "is_active": new_status is MailboxStatus.ACTIVE,
        }
        return await self._changed_sending(mailbox, changes)

    # -- the ramp and the brake ----------------------------------------------------------

    async def limit_today(self, mailbox: Mailbox) -> int:
        """The most the mailbox may send today: its ramped limit (mailboxes/ramp.py), or its
        `daily_limit` when it is already warm."""
        if ramp_of(mailbox) is None:
            return mailbox.daily_limit
        days = await self._store.mailbox_days(mailbox.id)
        return limit_today(mailbox, days, self._clock())

    async def brake(self, mailbox: Mailbox, kind: BrakeKind, reason: str) -> Mailbox:
        """Stop the mailbox's campaign sends (its warm-up goes on) until its owner resumes
        it; its campaigns' waiting emails move to their other mailboxes."""
        changes = {"brake_kind": kind, "brake_reason": reason, "braked_at": self._clock()}
        return await self._changed_sending(mailbox, changes)

    async def resume_sending(
        self, user_id: str, mailbox_id: str, *, rate: float | None = None
    ) -> Mailbox:
        """Lift the mailbox's brake: campaigns send from it again. `rate` is what the brake
        watched now; the same brake waits 7 days unless it rises above it."""
        mailbox = await self._linked(user_id, mailbox_id)
        if mailbox.braked_at is None:
            raise ConflictError("this mailbox is not held by a brake", field="braked_at")
        changes = {
            "brake_reason": None,
            "braked_at": None,
            "brake_resumed_at": self._clock(),
            "brake_resumed_rate": rate,
        }
        return await self._changed_sending(mailbox, changes)

    async def _changed_sending(self, mailbox: Mailbox, changes: dict[str, Any]) -> Mailbox:
        changed = await self._updated(
            mailbox.user_id, mailbox.id, changes | {"updated_at": self._clock()}
        )
        if changed.can_send != mailbox.can_send:
            await self._in_use.mailbox_can_send_changed(changed.user_id, changed.id)
        return changed

    async def mark_used(self, user_id: str, mailbox_id: str) -> Mailbox:
        """Record that the mailbox just sent or synced (`last_used`)."""
        mailbox = await self.get_mailbox(user_id, mailbox_id)
        return await self._updated(mailbox.user_id, mailbox.id, {"last_used": self._clock()})

    async def unlink_mailbox(self, user_id: str, mailbox_id: str) -> Mailbox:
        """Unlink the mailbox: its secrets are erased, it can no longer send, and another
        linked mailbox becomes primary. Refused while a campaign that is not finished uses it."""
        mailbox = await self._linked(user_id, mailbox_id)
        total, first_names = await self._in_use.running_on_mailbox(
            mailbox.user_id, mailbox.id, limit=5
        )
        if total:
            names = ", ".join(repr(name) for name in first_names)
            raise ConflictError(
                f"{total} campaign(s) still use this mailbox ({names}); "
                "cancel them or let them complete before unlinking it",
                field="mailbox_id",
            )
        now = self._clock()
        changes: dict[str, Any] = dict.fromkeys(SECRET_FIELDS)
        changes |= {
            "is_primary": False,
            "is_active": False,
            "status": MailboxStatus.INACTIVE,
            "status_reason": "unlinked",
            "token_expires_at": None,
            "unlinked_at": now,
            "updated_at": now,
        }
        return await self._updated(mailbox.user_id, mailbox.id, changes)

    # -- keys -------------------------------------------------------------------------

    async def rotate_secrets(self) -> RotationReport:
        """Re-encrypt every stored secret of every user under the newest key."""
        rotated = skipped = 0
        async for mailbox_id, name, ciphertext in self._store.iter_mailbox_secrets():
            context = secret_context(TABLE, mailbox_id, name)
            new = self._secrets.rotate(ciphertext, context=context)
            if await self._store.replace_mailbox_secret(mailbox_id, name, old=ciphertext, new=new):
                rotated += 1
            else:
                skipped += 1  # changed meanwhile, so already under the newest key
        return RotationReport(rotated=rotated, skipped_changed=skipped)

    async def check_secrets(self, *, sample: int | None = 20) -> int:
        """Decrypt up to `sample` stored secrets (all when None); raises SecretKeyError naming
        the first that fails. Returns how many were checked."""
        checked = 0
        async with aclosing(self._store.iter_mailbox_secrets()) as secrets:
            async for mailbox_id, name, ciphertext in secrets:
                if sample is not None and checked >= sample:
                    break
                self._secrets.decrypt(ciphertext, context=secret_context(TABLE, mailbox_id, name))
                checked += 1
        return checked

    # -- helpers ----------------------------------------------------------------------

    async def _owner(self, user_id: str) -> str:
        owner = object_id_arg(user_id, field="user_id")
        user = await self._store.get_user(owner)
        if user is None:
            raise NotFoundError("user", user_id)
        if not user.is_active:
            raise ConflictError(f"user {user_id!r} is deactivated", field="user_id")
        return owner

    async def _linked(self, user_id: str, mailbox_id: str) -> Mailbox:
        mailbox = await self.get_mailbox(user_id, mailbox_id)
        if not mailbox.is_linked:
            raise NotFoundError("linked mailbox", mailbox_id)
        return mailbox

    async def _updated(self, user_id: str, mailbox_id: str, changes: Mapping[str, Any]) -> Mailbox:
        return found(
            await self._store.update_mailbox(user_id, mailbox_id, changes), "mailbox", mailbox_id
        )


def _without_unset_ramp(fields: dict[str, Any]) -> dict[str, Any]:
    """Linking fields without the ramp and warm-up settings left unset (the defaults
    apply)."""
    return {k: v for k, v in fields.items() if not (k in RAMP_FIELDS and v is None)}
