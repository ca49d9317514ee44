"""Bad input on both inbound endpoints: property-based and fuzzed bodies, content types, headers and
signatures. Never a 5xx, never an exception out of the WSGI app, and the right 4xx: 401 unsigned or badly
signed, 400 signed but malformed, 413 oversized, 400 for an unreadable Content-Length.

The volume runs in-process (WSGI environ dicts straight into the Router, no sockets); a smaller run goes
over HTTP through waitress. Each prints one line: cases, and how many answered 5xx (0)."""

from __future__ import annotations

import http.client
import io
import json
import os
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.devtools.sandbox import slack_signature
from bot.devtools.stack import PAGERDUTY_SECRET, SIGNING_SECRET, LocalStack
from bot.domain.pagerduty import sign
from bot.runtime.server import create_app, create_wsgi_app
from bot.runtime.web import MAX_BODY_BYTES, Router

SLACK, PAGERDUTY = "/slack/events", "/webhooks/pagerduty"
OLD_PAGERDUTY_SECRET = "rotated-out-but-still-configured"
JSON, FORM = "application/json", "application/x-www-form-urlencoded"
IN_PROCESS_CASES = 2500
HTTP_CASES = 150


@dataclass
class Case:
    path: str
    method: str
    body: bytes
    content_type: str
    # none | garbage | valid | stale | future | bad_timestamp | wrong_secret | old_secret | two_values
    signing: str
    length: str = "exact"  # exact | missing | not_a_number | over_limit
    extra_headers: dict[str, str] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        headers = dict(self.extra_headers)
        now = int(time.time())
        if self.path == SLACK:
            stamp = {"stale": now - 6 * 60, "future": now + 6 * 60}.get(self.signing, now)
            secret = "not-the-secret" if self.signing == "wrong_secret" else SIGNING_SECRET
            if self.signing in ("valid", "stale", "future", "wrong_secret", "old_secret", "two_values"):
                headers["X-Slack-Request-Timestamp"] = str(stamp)
                headers["X-Slack-Signature"] = slack_signature(secret, stamp, self.body)
            elif self.signing == "bad_timestamp":
                headers["X-Slack-Request-Timestamp"] = "١٢٣" if len(self.body) % 2 else "12e9"
                headers["X-Slack-Signature"] = slack_signature(SIGNING_SECRET, now, self.body)
            elif self.signing == "garbage":
                headers["X-Slack-Request-Timestamp"] = str(now)
                headers["X-Slack-Signature"] = "v0=ÿ" + "z" * (len(self.body) % 70)
        else:
            valid = sign(self.body, PAGERDUTY_SECRET)
            headers["X-PagerDuty-Signature"] = {
                "valid": valid,
                "old_secret": sign(self.body, OLD_PAGERDUTY_SECRET),
                "two_values": f"v1={'0' * 64}, {valid}",
                "wrong_secret": sign(self.body, "not-the-secret"),
                "garbage": "v1=ÿ, v1=,,v2=" + "f" * (len(self.body) % 90),
                "stale": valid,
                "future": valid,
                "bad_timestamp": valid,
            }.get(self.signing, "")
            if not headers["X-PagerDuty-Signature"]:
                del headers["X-PagerDuty-Signature"]
        return headers

    @property
    def signed(self) -> bool:
        if self.path == SLACK:  # Slack has one secret: the PagerDuty rotation modes sign it validly
            return self.signing in ("valid", "old_secret", "two_values")
        return self.signing in ("valid", "old_secret", "two_values", "stale", "future", "bad_timestamp")

    def expected(self) -> set[int]:
        """The statuses this request may get."""
        if self.length == "not_a_number":
            return {400}
        if self.length == "over_limit":
            return {413}
        if self.path not in (SLACK, PAGERDUTY):
            return {404}
        if self.method != "POST":
            return {405}
        if not self.signed or (self.length == "missing" and self.body):
            return {401}  # without a Content-Length nothing is read, and the signature was over the body
        body = self.body
        if self.path == PAGERDUTY:
            return {400} if _not_a_pagerduty_event(body) else {200, 202, 400}
        # Signed Slack traffic: 400 when it is not a Slack payload; Bolt answers the rest (404: no listener).
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return {400}
        return {200, 400, 404}


def _not_a_pagerduty_event(body: bytes) -> bool:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return True
    return not isinstance(document, dict) or not isinstance(document.get("event"), dict)


# --- strategies ------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)


@st.composite
def truncated_utf8(draw: st.DrawFn) -> bytes:
    encoded = json.dumps(
        {"text": draw(st.text(min_size=1, max_size=60)) + "é😀漢"}, ensure_ascii=False
    ).encode()
    return encoded[: draw(st.integers(min_value=1, max_value=len(encoded) - 1))]


@st.composite
def deep_nesting(draw: st.DrawFn) -> bytes:
    depth = draw(st.sampled_from([50, 900, 5_000, 100_000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    return (opener * depth + "1" + closer * depth).encode()


@st.composite
def huge_number(draw: st.DrawFn) -> bytes:
    digits = "9" * draw(st.sampled_from([20, 400, 4_301, 20_000]))
    template = draw(
        st.sampled_from(
            [
                "{n}",
                '{{"event": {{"id": {n}, "event_type": "incident.triggered"}}}}',
                '{{"type": "event_callback", "event_time": {n}, "event": {{"type": "message"}}}}',
                '{{"event": {{"id": "E1", "event_type": "incident.triggered", "occurred_at": {n}, '
                '"data": {{}}}}}}',
            ]
        )
    )
    return template.format(n=digits).encode()


def _pagerduty_event(draw: st.DrawFn) -> dict:
    event = {
        "id": draw(st.text(min_size=1, max_size=8) | st.sampled_from(["E" * 300, "E\x00", ""])),
        "event_type": draw(
            st.sampled_from(["incident.triggered", "incident.resolved", "incident.annotated", "x" * 200])
        ),
        "resource_type": draw(st.sampled_from(["incident", "service", None])),
        "occurred_at": draw(
            st.sampled_from(["2026-11-23T14:00:00Z", "yesterday", "9999-12-31T23:59:59Z", 5])
        ),
        "agent": draw(st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
        "data": draw(
            st.fixed_dictionaries(
                {
                    "id": st.text(max_size=20) | json_values,
                    "type": st.sampled_from(["incident", "incident_note", 7]),
                    "title": st.text(max_size=300) | st.just("\x00 title with a NUL") | json_values,
                    "number": st.integers(min_value=-(2**70), max_value=2**70) | json_values,
                    "service": json_values,
                    "html_url": st.text(max_size=30) | json_values,
                }
            )
            | json_values
        ),
    }
    drop = draw(st.sets(st.sampled_from(sorted(event)), max_size=2))
    return {k: v for k, v in event.items() if k not in drop}


@st.composite
def pagerduty_shaped(draw: st.DrawFn) -> bytes:
    return json.dumps({"event": _pagerduty_event(draw)}).encode()


@st.composite
def slack_shaped(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(
        st.sampled_from(["command", "interaction", "event", "nulls", "url_verification", "ssl_check"])
    )
    if kind == "command":
        fields = draw(
            st.dictionaries(
                st.sampled_from(["command", "text", "user_id", "channel_id", "trigger_id", "team_id"]),
                st.text(max_size=3000),
                max_size=6,
            )
        )
        fields.setdefault("command", draw(st.sampled_from(["/postmortem", "/other", ""])))
        return urllib.parse.urlencode(fields).encode(), FORM
    if kind == "interaction":
        payload = draw(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(
                        ["block_actions", "view_submission", "message_action", "shortcut", 3]
                    )
                },
                optional={
                    "user": json_values | st.fixed_dictionaries({"id": st.text(max_size=12)}),
                    "view": json_values,
                    "actions": json_values
                    | st.lists(
                        st.fixed_dictionaries({"action_id": st.text(max_size=20), "value": json_values})
                    ),
                    "trigger_id": st.text(max_size=10),
                    "channel": json_values,
                    "callback_id": st.text(max_size=20),
                },
            )
        )
        raw = json.dumps(payload) if draw(st.booleans()) else draw(st.text(max_size=50))
        return urllib.parse.urlencode({"payload": raw}).encode(), FORM
    if kind == "event":
        envelope = {
            "type": "event_callback",
            "event_id": draw(st.text(max_size=300)),
            "event": draw(
                st.fixed_dictionaries(
                    {
                        "type": st.sampled_from(
                            ["message", "reaction_added", "member_left_channel", "app_home_opened"]
                        )
                    },
                    optional={
                        "channel": json_values,
                        "user": json_values,
                        "ts": st.text(max_size=20) | json_values,
                        "item": json_values,
                        "tab": st.sampled_from(["home", "messages"]),
                        "subtype": json_values,
                    },
                )
                | json_values
            ),
        }
        return json.dumps(envelope).encode(), JSON
    if kind == "nulls":  # every object Bolt reads, present and null (Bolt itself raised on these)
        names = draw(
            st.sets(
                st.sampled_from(["event", "view", "container", "message", "state", "actions"]), min_size=1
            )
        )
        payload = {"type": draw(st.sampled_from(["event_callback", "block_actions", "view_submission"]))}
        payload.update(dict.fromkeys(names))
        if draw(st.booleans()):
            return json.dumps(payload).encode(), JSON
        return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode(), FORM
    if kind == "url_verification":
        return json.dumps({"type": "url_verification", "challenge": draw(json_values)}).encode(), JSON
    return b"ssl_check=1&token=x", FORM


@st.composite
def cases(draw: st.DrawFn, *, over_http: bool = False) -> Case:
    path = draw(
        st.sampled_from([SLACK, PAGERDUTY])
        if over_http
        else st.sampled_from([SLACK] * 5 + [PAGERDUTY] * 5 + ["/nowhere"])
    )
    content_type = draw(
        st.sampled_from(
            [
                JSON,
                FORM,
                "text/plain",
                "",
                "multipart/form-data; boundary=x",
                "application/json; charset=latin-1",
                "ÿ/ÿ",
            ]
        )
    )
    shape = draw(st.sampled_from(["bytes", "text", "truncated", "json", "deep", "huge", "shaped"]))
    if shape == "bytes":
        body = draw(st.binary(max_size=600))
    elif shape == "text":
        body = draw(st.text(max_size=600)).encode()
    elif shape == "truncated":
        body = draw(truncated_utf8())
    elif shape == "json":
        body = json.dumps(draw(json_values)).encode()
    elif shape == "deep":
        body = draw(deep_nesting())
    elif shape == "huge":
        body = draw(huge_number())
    elif path == PAGERDUTY:
        body, content_type = draw(pagerduty_shaped()), JSON
    else:
        body, content_type = draw(slack_shaped())
    signing = draw(
        st.sampled_from(
            ["valid"] * 4
            + [
                "none",
                "garbage",
                "stale",
                "future",
                "bad_timestamp",
                "wrong_secret",
                "old_secret",
                "two_values",
            ]
        )
    )
    length = (
        "exact"
        if over_http
        else draw(st.sampled_from(["exact"] * 8 + ["missing", "not_a_number", "over_limit"]))
    )
    method = "POST" if over_http else draw(st.sampled_from(["POST"] * 12 + ["GET", "PUT"]))
    extra = draw(
        st.dictionaries(
            st.sampled_from(
                ["X-Slack-Retry-Num", "X-Slack-Retry-Reason", "User-Agent", "X-Forwarded-For", "Accept"]
            ),
            st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=40),
            max_size=3,
        )
    )
    return Case(path, method, body, content_type, signing, length, extra)


# --- callers ---------------------------------------------------------------------------------------


def environ_for(case: Case) -> dict:
    length = {
        "exact": str(len(case.body)),
        "missing": "",
        "not_a_number": draw_bad_length(case),
        "over_limit": str(MAX_BODY_BYTES + 1),
    }[case.length]
    environ = {
        "REQUEST_METHOD": case.method,
        "PATH_INFO": case.path,
        "QUERY_STRING": "",
        "CONTENT_TYPE": case.content_type,
        "CONTENT_LENGTH": length,
        "wsgi.input": io.BytesIO(case.body),
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    for name, value in case.headers().items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def draw_bad_length(case: Case) -> str:
    return ["-1", "²", "12abc", "1e3", " ", "٣"][len(case.body) % 6]


def call_in_process(router: Router, case: Case) -> tuple[int, bytes]:
    started: list[str] = []

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        started.append(status)

    body = b"".join(router(environ_for(case), start_response))  # an exception here fails the test
    return int(started[0].split()[0]), body


def call_over_http(url: str, case: Case) -> tuple[int, bytes]:
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    try:
        headers = {"Content-Type": case.content_type, **case.headers()}
        encoded = {k: v.encode("utf-8") for k, v in headers.items()}  # raw bytes on the wire
        connection.request(case.method, case.path, body=case.body, headers=encoded)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def fuzz_stack(database_url: str) -> Iterator[LocalStack]:
    with LocalStack(
        database_url, pagerduty_webhook_secrets=[OLD_PAGERDUTY_SECRET, PAGERDUTY_SECRET]
    ) as stack:
        yield stack


FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,
    # New cases on every local run; in CI (`CI=true`, set by .ci/run) the same cases every time, so a run
    # that lands cannot turn red on a shape nobody has seen before: new finds come from local runs.
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


def run(check, cases_count: int, counts: Counter, label: str, capsys: pytest.CaptureFixture) -> None:
    settings(FUZZ_SETTINGS, max_examples=cases_count)(check)()
    with capsys.disabled():
        statuses = " ".join(f"{k}={n}" for k, n in sorted(counts.items(), key=str) if isinstance(k, int))
        print(f"\n[fuzz {label}] cases={counts['cases']} 5xx={counts['5xx']} ({statuses})")
    assert counts["5xx"] == 0


def test_fuzzed_requests_in_process_never_5xx(
    fuzz_stack: LocalStack, database_url: str, capsys: pytest.CaptureFixture
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the in-process volume runs once, on SQLite; the HTTP run covers PostgreSQL")
    process = fuzz_stack.server.process
    router = create_wsgi_app(process, create_app(process.runtime))
    counts: Counter = Counter()

    @given(case=cases())
    def check(case: Case) -> None:
        status, body = call_in_process(router, case)
        counts["cases"] += 1
        counts[status] += 1
        counts["5xx"] += status >= 500
        assert status in case.expected(), (status, body[:300], case)

    run(check, IN_PROCESS_CASES, counts, "in-process", capsys)


def test_fuzzed_requests_over_http_never_5xx(fuzz_stack: LocalStack, capsys: pytest.CaptureFixture) -> None:
    counts: Counter = Counter()

    @given(case=cases(over_http=True))
    def check(case: Case) -> None:
        status, body = call_over_http(fuzz_stack.bot_url, case)
        counts["cases"] += 1
        counts[status] += 1
        counts["5xx"] += status >= 500
        # waitress itself refuses a header value with control characters (DEL) before the bot sees it.
        refused_by_waitress = status == 400 and b"Invalid header" in body
        assert status in case.expected() or refused_by_waitress, (status, body[:300], case)

    run(check, HTTP_CASES, counts, "over HTTP", capsys)


def test_an_oversized_body_gets_413_over_http(fuzz_stack: LocalStack) -> None:
    """Refused from the Content-Length alone: the server answers before reading (and sending the whole body
    would race with it closing the connection)."""
    parsed = urllib.parse.urlsplit(fuzz_stack.bot_url)
    for path in (SLACK, PAGERDUTY):
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        try:
            connection.putrequest("POST", path)
            connection.putheader("Content-Type", JSON)
            connection.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
            connection.endheaders()
            assert connection.getresponse().status == 413
        finally:
            connection.close()


@pytest.mark.parametrize(
    "event",
    [
        {"type": "app_home_opened", "tab": "home"},  # found by the fuzzer: no user
        {"type": "message", "user": "U0ALICE", "text": "hi", "ts": "1.2"},  # no channel
        {"type": "message", "user": "U0ALICE", "channel": "C1", "ts": "yesterday"},
        {"type": "reaction_added", "user": "U0ALICE", "reaction": "pushpin", "item": {"type": "message"}},
    ],
)
def test_events_missing_what_slack_always_sends_get_400(event: dict) -> None:
    from bot.runtime.web import slack_shape_problem

    body = {"type": "event_callback", "event_id": "Ev1", "event": event}
    assert slack_shape_problem(body) is not None
    complete = {
        "channel": "C1",
        "ts": "1700000000.000100",
        "user": "U0ALICE",
        "item": {"type": "message", "channel": "C1", "ts": "1700000000.000100"},
    }
    assert slack_shape_problem({**body, "event": {**event, **complete}}) is None
