"""Secrets never reach a log: a record factory that redacts configured secrets and anything shaped like a
Slack token from every log record, whatever logger or handler it goes through. Installed by BotServer.

http.client prints its debug output (`debuglevel`, e.g. urllib's `HTTPHandler(debuglevel=1)`, which
shows the Authorization header) straight to stdout; once installed, that output goes through the
`http.client` logger instead, and so through the redaction too.
"""

from __future__ import annotations

import http.client
import logging
import re
import threading
from collections.abc import Iterable

REDACTED = "[redacted]"
# Slack tokens: bot/user/refresh tokens (xoxb-, xoxp-, xoxe-...) and app-level tokens (xapp-).
TOKEN_PATTERN = re.compile(r"xox[a-z](?:\.[a-z0-9-]+)?-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+")
MIN_SECRET_LENGTH = 6  # shorter values would blank out ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()
_installed = False
_http_log = logging.getLogger("http.client")


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return TOKEN_PATTERN.sub(REDACTED, text)


def _http_client_print(*args: object, **_kwargs: object) -> None:
    _http_log.debug(" ".join(str(arg) for arg in args))


def install_redaction(secrets: Iterable[str | None]) -> None:
    """Redact `secrets` (and token-shaped strings) from every log record from now on. Idempotent; a second
    call adds its secrets (several servers in one process, as in the tests)."""
    global _installed
    with _lock:
        _secrets.update(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)
        if _installed:
            return
        _installed = True
    make_record = logging.getLogRecordFactory()

    def redacting_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed format: logging reports it later, as it would
            return record
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(redacting_record)
    # http.client's debug output calls the builtin print through its module globals; typeshed does not
    # declare a module attribute `print`, so the assignment needs an ignore.
    http.client.print = _http_client_print  # type: ignore[attr-defined]
