"""The vendor status page tests' fixtures, shared: a status page on loopback, the fake Web
API on the injected clock, and the pollers."""

from tests.monitors.test_vendor_status import fake_slack, make_poller, poller, site

__all__ = ["fake_slack", "make_poller", "poller", "site"]
