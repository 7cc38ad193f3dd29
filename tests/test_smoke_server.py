from tests.slack_signing import signed_headers, slash_command_body


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
