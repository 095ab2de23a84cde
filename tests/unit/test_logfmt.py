"""Log lines: one line per event, key=value, levels, journald priorities, secrets redacted."""

from __future__ import annotations

import io
import logging

import pytest

from gatewayd.logfmt import REDACTED, KeyValueFormatter, configure_logging, redact, redact_value


def record(msg: str, *args: object, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("gatewayd.daemon.service", level, __file__, 1, msg, args, None)


def test_message_words_become_msg_and_keys_stay_keys() -> None:
    line = KeyValueFormatter().format(record("job started job=%s hub=%s", "J-1", "hub"))
    assert line.startswith("ts=")
    assert " level=info logger=gatewayd.daemon.service " in line
    assert line.endswith('msg="job started" job=J-1 hub=hub')


def test_a_message_without_keys_is_all_msg() -> None:
    assert KeyValueFormatter().format(record("gatewayd stopped")).endswith('msg="gatewayd stopped"')


def test_a_traceback_stays_on_one_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        import sys

        rec = record("job crashed job=%s", "J-2", level=logging.ERROR)
        rec.exc_info = sys.exc_info()
    line = KeyValueFormatter().format(rec)
    assert "\n" not in line
    assert "level=error" in line and 'exc="Traceback' in line and "ValueError: boom\\n" in line


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("connecting password=hunter22 host=x", "hunter22"),
        ('connecting mqtt.password="two words" host=x', "two words"),
        ("token=abc.def.ghi", "abc.def.ghi"),
        ("broker url=mqtts://kit:s3cretpass@broker.example.net:8883", "s3cretpass"),
        ("Authorization=Bearer-xyz", "Bearer-xyz"),
    ],
)
def test_secrets_are_redacted(text: str, hidden: str) -> None:
    out = redact(text)
    assert hidden not in out
    assert REDACTED in out


def test_a_registered_secret_is_redacted_wherever_it_appears() -> None:
    redact_value("correct-horse-battery")
    line = KeyValueFormatter().format(record("broker said %s", "bad login correct-horse-battery"))
    assert "correct-horse-battery" not in line and REDACTED in line


def test_journald_lines_carry_the_priority_prefix() -> None:
    fmt = KeyValueFormatter(journald=True)
    assert fmt.format(record("x", level=logging.WARNING)).startswith("<4>ts=")
    assert fmt.format(record("x", level=logging.ERROR)).startswith("<3>ts=")
    assert fmt.format(record("x", level=logging.INFO)).startswith("<6>ts=")


def test_configure_logging_writes_key_value_lines_at_the_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(logging.WARNING, out)
        logging.getLogger("gatewayd.test").info("hidden")
        logging.getLogger("gatewayd.test").warning("shown reason=%s", "x")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert "level=warning logger=gatewayd.test msg=shown reason=x" in lines[0]


def test_repr_values_are_double_quoted() -> None:
    line = KeyValueFormatter().format(
        record("request refused command=%s reason=%r", "start_job", 'job.job_id: "a/b" no')
    )
    assert line.endswith(r'msg="request refused" command=start_job reason="job.job_id: \"a/b\" no"')
    line = KeyValueFormatter().format(record("job step job=%s text=%r", "J", "WAN up, 3 s"))
    assert line.endswith('msg="job step" job=J text="WAN up, 3 s"')
