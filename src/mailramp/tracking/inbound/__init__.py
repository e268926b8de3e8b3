"""What a message in a sender's inbox is — a reply, an automatic reply, a bounce, a delay
report, a complaint or something else — and which sent message it is about.

`classify.py` decides (its docstring gives the order); `reports.py` reads the
machine-readable reports (RFC 3464 DSNs, RFC 5965 complaints, Amazon SES notifications),
`text.py` the failure notices in plain words, `automatic.py` the auto-responders, and
`status.py` turns codes and words into an enhanced status code and a reason.
"""

from mailramp.tracking.inbound.classify import classify_inbound
from mailramp.tracking.inbound.models import Failure, Inbound, InboundKind
from mailramp.tracking.inbound.status import BounceReason

__all__ = ["BounceReason", "Failure", "Inbound", "InboundKind", "classify_inbound"]
