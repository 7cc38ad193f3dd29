"""Working hours: a warning at 02:00 waits for the morning; a critical failure does not."""
