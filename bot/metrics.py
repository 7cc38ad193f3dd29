"""Prometheus metrics, defined once per process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "integ_http_requests_total", "HTTP requests answered", ["endpoint", "status"]
)
HTTP_LATENCY = Histogram(
    "integ_http_request_seconds",
    "Time to answer an HTTP request",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
COMMANDS = Counter("integ_commands_total", "Slash commands answered", ["verb"])
CATALOG_LOADS = Counter("integ_catalog_loads_total", "Catalog loads", ["result"])
INTEGRATIONS = Gauge("integ_integrations", "Integrations in the catalog")
HOOK_EVENTS = Counter("integ_hook_alerts_total", "Alerts received through hooks", ["source"])
INTAKE_BATCH = Histogram(
    "integ_intake_batch_requests",
    "Hook requests committed together in one transaction",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
)
PINGS = Counter("integ_pings_total", "Heartbeat pings answered, by kind", ["kind"])
MAIL = Counter(
    "integ_mail_total",
    "Messages to the SMTP listener, by result (stored, duplicate, refused, failed)",
    ["result"],
)
DATABASE_UP = Gauge(
    "integ_database_up",
    "1 while the database answers; 0 from a failure to answer until a check gets an answer",
)
DUTY_RUNS = Counter(
    "integ_duty_runs_total",
    "Scheduled duties run, by duty and result (ok, failed)",
    ["duty", "result"],
)
DUTY_SECONDS = Histogram(
    "integ_duty_seconds",
    "Time one scheduled duty took",
    ["duty"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
)
DIRECTORY_LOOKUPS = Counter(
    "integ_directory_lookups_total",
    "Who-is-this lookups (users, user groups, channels), by how they were answered "
    "(cached, stale while refreshed, asked, unknown)",
    ["what", "answer"],
)
RETENTION_DELETED = Counter(
    "integ_retention_deleted_total",
    "Rows deleted by the retention duty because they were older than their setting, by table",
    ["table"],
)
