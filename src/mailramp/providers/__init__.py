"""The adapters that send from and read a mailbox: SMTP and IMAP, Microsoft Graph, the Gmail
API. The protocols they implement are in `mailboxes/transport.py`; the errors they raise
are drawn in `errors.py` (`ProviderError`); `registry.py` picks one for a mailbox."""
