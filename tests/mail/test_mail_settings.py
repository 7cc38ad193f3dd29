"""The e-mail settings: off by default, and a half-given one stops start-up naming it."""

import pytest

from bot.settings import SettingsError, load_settings


def test_mail_intake_is_off_unless_a_port_or_a_mailbox_is_given():
    settings = load_settings({})
    assert settings.integ_smtp_port is None and settings.integ_imap_url is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"INTEG_SMTP_PORT": "2525"}, "INTEG_SMTP_PORT is set but INTEG_MAIL_DOMAIN is not"),
        ({"INTEG_IMAP_URL": "imaps://u:p@mail.example.edu/INBOX"}, "INTEG_MAIL_DOMAIN is not"),
        ({"INTEG_MAIL_DOMAIN": "x", "INTEG_SMTP_PORT": "25"}, "INTEG_MAIL_DOMAIN: "),
        (
            {"INTEG_MAIL_DOMAIN": "integ.example.edu", "INTEG_IMAP_URL": "imaps://u:p@h:99999/"},
            "its port must be a number",
        ),
        (
            {
                "INTEG_MAIL_DOMAIN": "integ.example.edu",
                "INTEG_IMAP_URL": "imaps://u:p@mail.example.edu/Done",
                "INTEG_IMAP_DONE_FOLDER": "Done",
            },
            "INTEG_IMAP_DONE_FOLDER must differ",
        ),
        (
            {"INTEG_SMTP_TLS_CERT": "/etc/hostname", "INTEG_SMTP_TLS_KEY": "/etc/hostname"},
            "INTEG_SMTP_TLS_CERT/KEY: cannot be loaded",
        ),
        ({"INTEG_MAIL_DOMAIN": "integ.example.edu", "INTEG_IMAP_URL": "https://mail/"}, "imaps://"),
        ({"INTEG_SMTP_USER": "relay"}, "INTEG_SMTP_USER and INTEG_SMTP_PASSWORD go together"),
        ({"INTEG_SMTP_TLS_CERT": "/etc/hosts"}, "INTEG_SMTP_TLS_CERT and INTEG_SMTP_TLS_KEY"),
        ({"INTEG_SMTP_MAX_BYTES": "10"}, "INTEG_SMTP_MAX_BYTES"),
    ],
)
def test_a_mail_setting_given_by_half_stops_start_up_naming_it(env, message):
    with pytest.raises(SettingsError) as refused:
        load_settings(env)
    assert message in str(refused.value)


def test_a_port_in_use_stops_start_up_with_one_line(tmp_path):
    import socket

    from bot.runtime import StartupError, build_runtime

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(
            {
                "DATABASE_URL": f"sqlite:///{tmp_path / 'integ.db'}",
                "INTEG_SMTP_PORT": str(port),
                "INTEG_MAIL_DOMAIN": "integ.example.edu",
            }
        )
        runtime = build_runtime(settings)
        try:
            with pytest.raises(StartupError) as refused:
                runtime.start_workers()
        finally:
            runtime.close()
    assert str(refused.value).startswith(f"INTEG_SMTP_PORT: cannot listen on 127.0.0.1:{port}")
