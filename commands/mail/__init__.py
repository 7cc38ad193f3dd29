"""E-mail intake: what jobs and vendors' connectors that can only send mail report."""
