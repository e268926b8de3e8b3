"""Each user's suppression list: addresses none of their campaigns may send to again."""
