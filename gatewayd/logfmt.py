"""Log lines for people and journald: one line per event, ``key=value``, secrets redacted.

Every module logs with the standard library (``_log.info("job started job=%s", ...)``);
this formatter turns a record into ``ts=... level=info logger=... msg="job started"
job=...``. Newlines (tracebacks included) are escaped so an event is never split over
lines. Under systemd (``$JOURNAL_STREAM`` set) each line starts with the ``<N>``
priority prefix that journald reads, so ``journalctl -p warning`` works.

Secrets never reach a line: values of keys that name a secret (``password=``,
``token=``...), credentials inside URLs, and any value registered with
``redact_value`` (the MQTT password once it is read) are replaced by ``<redacted>``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["KeyValueFormatter", "configure_logging", "redact", "redact_value"]

REDACTED = "<redacted>"

_SECRET_KEY = re.compile(
    r"(?i)\b([\w.-]*(?:password|passwd|secret|token|api_key|apikey|authorization|"
    r"credential)[\w.-]*)=(\"[^\"]*\"|'[^']*'|\S+)"
)
_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+):[^@\s/]+@")
_LEADING_KEY = re.compile(r"(?:^|\s)[A-Za-z_][\w.]*=")
_BARE = re.compile(r"^[^\s\"=\\]+$")
# key='value' as %r writes it: rewritten as key="value", the quoting logfmt readers expect.
_SINGLE_QUOTED = re.compile(r"(?<![\w'\"])([A-Za-z_][\w.]*)='((?:[^'\\]|\\.)*)'")

# syslog priorities, as journald reads them from a "<N>" prefix.
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def redact_value(value: str | None) -> None:
    """Never print ``value`` again in a log line (short values would hide too much text)."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    text = _SECRET_KEY.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, REDACTED)
    return text


def _quote(value: str) -> str:
    if value and _BARE.match(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def _double_quoted(m: re.Match[str]) -> str:
    inner = m.group(2).replace("\\'", "'").replace('"', '\\"')
    return f'{m.group(1)}="{inner}"'


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... msg="..." key=value ...``, on one line."""

    def __init__(self, *, journald: bool = False) -> None:
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        # "job started job=X hub=Y": the words before the first key=value are the event.
        m = _LEADING_KEY.search(message)
        head, tail = (message[: m.start()], message[m.start() :]) if m else (message, "")
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        parts = [
            f"ts={ts.replace('+00:00', 'Z')}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(head.strip())}",
        ]
        if tail.strip():
            tail = _SINGLE_QUOTED.sub(_double_quoted, tail.strip())
            parts.append(tail.replace("\r", "\\r").replace("\n", "\\n"))
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        if record.stack_info:
            parts.append(f"stack={_quote(self.formatStack(record.stack_info))}")
        line = redact(" ".join(parts))
        if self.journald:
            line = f"<{_PRIORITY.get(record.levelno, 6)}>{line}"
        return line


def configure_logging(level: int, stream: TextIO | None = None) -> logging.Handler:
    """Route every logger to one key=value handler on ``stream`` (stderr by default)."""
    target = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(target)
    handler.setFormatter(KeyValueFormatter(journald=_under_journald(target)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def _under_journald(stream: TextIO) -> bool:
    """True when ``stream`` is the journal stream systemd gave us (``$JOURNAL_STREAM``)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not dev or not ino:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return f"{st.st_dev}:{st.st_ino}" == value
