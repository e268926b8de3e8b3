"""Users: sign-up, Clerk sign-in, local passwords, profile changes."""
