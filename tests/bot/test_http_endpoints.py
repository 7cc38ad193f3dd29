from tests.helpers.slack_signing import signed_headers, slash_command_body


def test_healthz_answers_200_when_the_database_answers(slack_server):
    with slack_server.client() as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["database"] is True


def test_a_signed_status_command_answers_with_the_integration_state(slack_server):
    body = slash_command_body("status crm")
    with slack_server.client() as client:
        response = client.post("/slack/events", content=body, headers=signed_headers(body))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["response_type"] == "ephemeral"
    assert "Slate to Banner admissions" in str(answer["blocks"])


def _sample(metrics_text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in metrics_text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_answered_commands_in_prometheus_text_format(slack_server):
    with slack_server.client() as client:
        before = client.get("/metrics").text
        body = slash_command_body("status crm")
        client.post("/slack/events", content=body, headers=signed_headers(body))
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    assert _sample(after, "integ_commands_total", verb="status") == (
        _sample(before, "integ_commands_total", verb="status") + 1
    )
    assert _sample(after, "integ_http_requests_total", endpoint="slack_events", status="200") > 0
    assert _sample(after, "integ_integrations") == 9


def test_a_slack_request_over_one_mebibyte_is_refused_with_413(slack_server):
    body = slash_command_body("status " + "x" * (1024 * 1024))
    with slack_server.client() as client:
        response = client.post("/slack/events", content=body, headers=signed_headers(body))
        assert response.status_code == 413
        assert client.get("/healthz").status_code == 200
