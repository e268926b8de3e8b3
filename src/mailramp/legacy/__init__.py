"""The pre-migration collections `warm_up_emails_table` and `email_campaigns`, read-only."""
