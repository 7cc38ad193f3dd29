"""Retention: what is kept for a while only, deleted once it is older than a setting, so the
database stays about the same size however long the bot runs. History (alerts and their
transitions, changes, reviews, the audit trail) is kept."""
