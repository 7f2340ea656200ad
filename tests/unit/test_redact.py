from concertops.redact import redact_text, redact_url


def test_redact_url_masks_only_the_password() -> None:
    assert (
        redact_url("mysql+pymysql://app:s3cr%40t@db:3306/x?charset=utf8")
        == "mysql+pymysql://app:***@db:3306/x?charset=utf8"
    )
    assert redact_url("redis://:pw@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact_url("http://prom:9090") == "http://prom:9090"
    assert redact_url(None) == ""


def test_redact_text_masks_urls_inside_messages_and_known_secrets() -> None:
    text = "(1045) access denied for mysql+pymysql://app:hunter2@db/x; token=abc123"
    out = redact_text(text, secrets=("abc123",))
    assert "hunter2" not in out
    assert "abc123" not in out
    assert "app:***@db" in out


def test_passwords_in_a_query_string_or_a_bare_dsn_are_masked() -> None:
    assert redact_url("mysql+pymysql://app@db/x?password=PW&charset=utf8") == (
        "mysql+pymysql://app@db/x?password=***&charset=utf8"
    )
    assert redact_url("mysql+pymysql://app:PW@db/x?passwd=PW2") == "mysql+pymysql://app:***@db/x?passwd=***"
    out = redact_text("INC-7 rotated app:PW@db-1 and mysql://a:PW@h/x?password=PW;")
    assert "PW" not in out and "app:***@db-1" in out
    assert redact_text("at 10:30 see https://wiki/x") == "at 10:30 see https://wiki/x"


def test_credentials_in_free_text_and_the_profiles_own_secrets_are_masked() -> None:
    from concertops.config import load_profile
    from concertops.redact import redact_text

    assert redact_text("paused: password=hunter2, token: abc123") == "paused: password=***, token: ***"
    assert (
        redact_text("max_active_tokens=20 and 260 WAITING tokens")
        == "max_active_tokens=20 and 260 WAITING tokens"
    )
    load_profile(env={"CONCERTOPS_DATABASE_URL": "mysql+pymysql://app:Sw0rd%40fish@db/x"})
    # Pasted bare into a reason, with no key word around it: masked because the profile holds it.
    assert redact_text("the DBA said Sw0rd@fish was rotated") == "the DBA said *** was rotated"
