"""Which follow-ups a campaign has after a change.

Steps keep the numbers they were given (`FollowUp.step`): a number is never reused while
an email of that step exists, so a person's emails stay one per (person, step) whatever is
removed and added. Steps go out in the order they were added.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailramp.campaigns.models import FollowUp, Variant
from mailramp.campaigns.schemas import FollowUpInput
from mailramp.errors import ValidationError


def follow_ups_after(
    given: Sequence[FollowUpInput], existing: Sequence[FollowUp], first_free: int
) -> list[FollowUp]:
    """The campaign's follow-ups once `given` replaces them: each one naming an existing
    `step` keeps its number, one without gets the next free number; ValidationError for
    a step number the campaign does not have, or an order other than the steps'."""
    known = {follow_up.step for follow_up in existing}
    result: list[FollowUp] = []
    number = first_free
    for index, step in enumerate(given):
        if step.step is None:
            assigned, number = number, number + 1
        elif step.step in known:
            assigned = step.step
        else:
            raise ValidationError(
                f"campaign_steps[{index}].step",
                f"the campaign has no step {step.step} (its follow-ups are "
                f"{sorted(known) or 'none'}); leave `step` out to add one",
                value=step.step,
            )
        if result and assigned < result[-1].step:
            raise ValidationError(
                f"campaign_steps[{index}]",
                "steps keep the order they were added in: a new step goes after the "
                "existing ones (to move one, remove it and add it again)",
            )
        result.append(
            FollowUp(
                step=assigned,
                delay_days=step.delay_days,
                delay_hours=step.delay_hours,
                subject=step.subject,
                message=step.message,
                variants=[
                    # One subject rule per step: in the thread, none; else the variant's
                    # own, or the step's.
                    Variant(subject=step.subject and (v.subject or step.subject), message=v.message)
                    for v in step.variants or []
                ],
            )
        )
    return result
