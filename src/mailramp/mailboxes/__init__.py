"""Linked mailboxes: Outlook (Microsoft Graph), Gmail (Gmail API) and any SMTP/IMAP account."""
