"""What admins see: the instance's users, the audit log and the workers."""
