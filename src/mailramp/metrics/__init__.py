"""Per-campaign counters and rates (`campaign_matrix`)."""
