"""Action items in Jira and GitHub, over real HTTP on SQLite and PostgreSQL: the bot against the Slack
sandbox and a tracker stand-in (bot/devtools/sandbox/jira.py, github.py), webhooks signed both ways."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlmodel import select

from bot.core.models import ActionItem, InboundDelivery, TrackerLink
from bot.devtools.sandbox import SlackSandbox
from bot.devtools.sandbox.github import GitHubStandIn
from bot.devtools.sandbox.jira import JiraStandIn
from bot.devtools.sandbox.tracker_server import post
from bot.devtools.stack import LocalStack
from bot.slack.blocks import Action
from tests.scenarios.conftest import ALICE, BOB, CAROL, assert_manifest_covers, declare
from tests.scenarios.test_incident_channels import query
from tests.scenarios.test_postmortem_loop import FILLED, open_modal, summaries

THREE_ITEMS = {
    **FILLED,
    "action_text_0": {Action.INPUT: "Alert on pool saturation"},
    "action_owner_0": {Action.OWNER_SELECT: ALICE},
    "action_text_1": {Action.INPUT: "Load-test the pool at 2x"},
    "action_owner_1": {Action.OWNER_SELECT: BOB},
    "action_due_1": {Action.DUE_PICKER: "2030-01-15"},
    "action_text_2": {Action.INPUT: "Document the pool size"},
    "action_owner_2": {Action.OWNER_SELECT: CAROL},
}


@dataclass
class Tracked:
    stack: LocalStack
    stand_in: JiraStandIn | GitHubStandIn
    kind: str

    def issues(self) -> list[dict]:
        """The stand-in's issues as people read them: title, text, labels, state (done or open)."""
        if isinstance(self.stand_in, JiraStandIn):
            return [
                {
                    "id": issue.id,
                    "title": issue.fields["summary"],
                    "text": json.dumps(issue.fields["description"]),
                    "labels": issue.fields["labels"],
                    "due": issue.fields.get("duedate"),
                    "assignee": (issue.fields.get("assignee") or {}).get("accountId"),
                    "done": issue.category == "done",
                }
                for issue in self.stand_in.issues.values()
            ]
        return [
            {
                "id": str(issue.number),
                "title": issue.title,
                "text": issue.body,
                "labels": issue.labels,
                "due": "2030-01-15" if "Due: 2030-01-15" in issue.body else None,
                "assignee": None,
                "done": issue.state == "closed",
            }
            for issue in self.stand_in.issues.values()
        ]

    def issue(self, title: str) -> dict:
        [found] = [issue for issue in self.issues() if issue["title"] == title]
        return found

    def close(self, issue_id: str) -> None:
        if isinstance(self.stand_in, JiraStandIn):
            self.stand_in.close(issue_id)
        else:
            self.stand_in.close(int(issue_id))

    def reopen(self, issue_id: str) -> None:
        if isinstance(self.stand_in, JiraStandIn):
            self.stand_in.reopen(issue_id)
        else:
            self.stand_in.reopen(int(issue_id))

    def delete(self, issue_id: str) -> None:
        if isinstance(self.stand_in, JiraStandIn):
            self.stand_in.delete(issue_id)
        else:
            self.stand_in.delete(int(issue_id))

    def wait(self, predicate, message: str) -> None:  # type: ignore[no-untyped-def]
        self.stack.sandbox.wait_for(predicate, timeout=60, message=message)


@pytest.fixture(params=["jira", "github"])
def tracked(request: pytest.FixtureRequest, database_url: str) -> Iterator[Tracked]:
    with LocalStack(database_url, tracker=request.param) as stack:
        assert stack.tracker is not None
        yield Tracked(stack, stack.tracker, request.param)
        stack.tracker.drain()
        assert_manifest_covers(stack.sandbox.calls)


def items(tracked: Tracked) -> dict[str, ActionItem]:
    return {item.text: item for item in query(tracked.stack, select(ActionItem))}


def links(tracked: Tracked) -> list[TrackerLink]:
    return list(query(tracked.stack, select(TrackerLink)))


def publish_three(tracked: Tracked) -> str:
    sandbox = tracked.stack.sandbox
    if isinstance(tracked.stand_in, JiraStandIn):
        del tracked.stand_in.users["bob@example.com"]  # an owner Jira does not know
    channel = declare(sandbox)
    view_id = open_modal(sandbox, channel)
    for _ in range(2):
        assert sandbox.view_action(BOB, view_id, Action.ADD_ACTION_ITEM).status == 200
    view_id = sandbox.open_view_for(BOB)["id"]
    sandbox.fill_view(view_id, THREE_ITEMS)
    assert sandbox.submit_view(BOB, view_id).status == 200
    tracked.wait(
        lambda: len(tracked.issues()) == 3 and all(link.issue_id for link in links(tracked)),
        "the three issues were not created",
    )
    return channel


def test_publishing_creates_one_issue_per_item_with_its_fields_and_edits_update_it(tracked: Tracked) -> None:
    sandbox = tracked.stack.sandbox
    channel = publish_three(tracked)
    issue = tracked.issue("Load-test the pool at 2x")
    assert issue["due"] == "2030-01-15" and not issue["done"]
    for text in ("Checkout is down", "SEV2", "Pool exhausted", "checkout", "https://slack.com/archives/"):
        assert text in issue["text"], text
    assert "postmortem" in issue["labels"]
    refs = {link.ref for link in links(tracked)}
    assert len(refs) == 3
    for ref in refs:  # each issue carries its item's key, the one found again after a crash
        [carrying] = [i for i in tracked.issues() if ref in i["labels"] or ref in i["text"]]
        assert carrying
    if tracked.kind == "jira":  # assigned by the owner's e-mail where Jira knows it (not bob's)
        assert tracked.issue("Alert on pool saturation")["assignee"] == "account-alice"
        assert issue["assignee"] is None

    # In Slack: the summary shows each item's issue and its state, and so does `/postmortem actions`.
    key = next(link.issue_key for link in links(tracked) if link.action_item_id == load_test_item(tracked).id)
    tracked.wait(
        lambda: (
            f"Load-test the pool at 2x (<@{BOB}>, due 2030-01-15) · <" in summary_text(sandbox)
            and f"|{key}> open" in summary_text(sandbox)
        ),
        "the summary does not show the issues",
    )
    answer = sandbox.slash_command(BOB, channel, text="actions").json["text"]
    assert f"|{key}> open" in answer
    assert sandbox.open_app_home(BOB).status == 200
    tracked.wait(lambda: f"|{key}> open" in json.dumps(sandbox.app_home(BOB)), "App Home shows no issue")

    view_id = open_modal(sandbox, channel)
    sandbox.fill_view(view_id, {"action_text_2": {Action.INPUT: "Document the pool size in the runbook"}})
    assert sandbox.submit_view(BOB, view_id).status == 200
    tracked.wait(
        lambda: any(i["title"] == "Document the pool size in the runbook" for i in tracked.issues()),
        "the edit did not reach the issue",
    )
    assert len(tracked.issues()) == 3  # updated, not created again

    # A row cleared in the form deletes its item: its issue is closed, the others stay as they are.
    view_id = open_modal(sandbox, channel)
    cleared = {"action_text_0": {Action.INPUT: ""}, "action_owner_0": {Action.OWNER_SELECT: None}}
    sandbox.fill_view(view_id, cleared)
    assert sandbox.submit_view(BOB, view_id).status == 200
    tracked.wait(
        lambda: tracked.issue("Alert on pool saturation")["done"], "the removed item's issue is open"
    )
    assert [issue["done"] for issue in tracked.issues()] == [True, False, False]


def test_done_in_the_tracker_is_done_in_slack_and_done_in_slack_closes_the_issue(tracked: Tracked) -> None:
    sandbox = tracked.stack.sandbox
    publish_three(tracked)
    first = tracked.issue("Alert on pool saturation")
    tracked.close(first["id"])
    tracked.wait(lambda: items(tracked)["Alert on pool saturation"].status == "done", "not done in Slack")
    assert items(tracked)["Alert on pool saturation"].completed_by == tracked.kind
    tracked.wait(
        lambda: ":white_check_mark: Alert on pool saturation" in json.dumps(summaries(sandbox)),
        "summary not updated",
    )

    second = items(tracked)["Load-test the pool at 2x"]
    summary = summaries(sandbox)[0]
    postmortems = sandbox.channel_id("postmortems")
    sandbox.click_button(BOB, postmortems, summary["ts"], Action.MARK_ACTION_DONE, value=str(second.id))
    tracked.wait(lambda: tracked.issue("Load-test the pool at 2x")["done"], "the issue was not closed")
    tracked.stand_in.drain()  # the tracker's webhook about the bot's own change came back: nothing moves
    # Still done by bob in Slack: the echoes of the bot's own edit and transition moved nothing (a stale
    # "not done" echo of the edit would have reopened it, and the transition's echo closed it as Jira's).
    assert (load_test_item(tracked).status, load_test_item(tracked).completed_by) == ("done", BOB)
    if isinstance(tracked.stand_in, JiraStandIn):
        assert tracked.stand_in.issues[second_id(tracked, second)].history == ["Backlog", "Shipped"]
    else:
        assert tracked.stand_in.issues[int(second_id(tracked, second))].history == ["open", "closed"]

    tracked.reopen(first["id"])
    tracked.wait(lambda: items(tracked)["Alert on pool saturation"].status == "open", "not reopened")
    tracked.delete(tracked.issue("Document the pool size")["id"])
    tracked.wait(
        lambda: [link.sync for link in links(tracked)].count("unlinked") == 1,
        "the deleted issue stayed linked",
    )
    assert items(tracked)["Document the pool size"].status == "open"
    assert all(status == 200 for status in tracked.stand_in.webhook_answers)


def summary_text(sandbox: SlackSandbox) -> str:
    return json.dumps(summaries(sandbox), ensure_ascii=False)


def load_test_item(tracked: Tracked) -> ActionItem:
    return items(tracked)["Load-test the pool at 2x"]


def second_id(tracked: Tracked, item: ActionItem) -> str:
    [link] = [link for link in links(tracked) if link.action_item_id == item.id]
    assert link.issue_id is not None
    return link.issue_id


def deliver(
    tracked: Tracked,
    payload: dict | bytes,
    *,
    delivery_id: str | None,
    secret: str | None = None,
    event_name: str = "issues",
) -> tuple[int, dict]:
    """POST a delivery signed as the tracker signs it (with `secret`, else the configured one)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    key = (secret or tracked.stand_in.webhook_secret).encode()
    signature = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    if tracked.kind == "jira":
        headers = {"X-Hub-Signature": signature, "X-Atlassian-Webhook-Identifier": delivery_id}
    else:
        headers = {
            "X-Hub-Signature-256": signature,
            "X-GitHub-Delivery": delivery_id,
            "X-GitHub-Event": event_name,
        }
    request = urllib.request.Request(
        f"{tracked.stack.bot_url}/webhooks/{tracked.kind}",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", **{k: v for k, v in headers.items() if v is not None}},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def event(tracked: Tracked, issue_id: str, done: bool) -> dict:
    if tracked.kind == "jira":
        category = "done" if done else "new"
        fields = {"status": {"name": "Whatever", "statusCategory": {"key": category}}}
        return {
            "webhookEvent": "jira:issue_updated",
            "issue": {"id": issue_id, "key": "OPS-1", "fields": fields},
            "changelog": {"items": [{"field": "status", "toString": "Whatever"}]},
        }
    return {
        "action": "closed" if done else "reopened",
        "issue": {"number": int(issue_id), "state": "closed" if done else "open"},
        "repository": {"full_name": tracked.stand_in.repository},
    }


def test_a_delivery_sent_twice_is_applied_once_and_a_bad_signature_changes_nothing(tracked: Tracked) -> None:
    publish_three(tracked)
    issue_id = tracked.issue("Alert on pool saturation")["id"]

    def status() -> str:
        return items(tracked)["Alert on pool saturation"].status

    closed, reopened = str(uuid.uuid4()), str(uuid.uuid4())
    assert deliver(tracked, event(tracked, issue_id, True), delivery_id=closed) == (
        200,
        {"status": "applied"},
    )
    assert status() == "done"
    assert deliver(tracked, event(tracked, issue_id, False), delivery_id=reopened)[1] == {"status": "applied"}
    assert status() == "open"
    # The first delivery again (the tracker retried it): already applied, the item stays open.
    assert deliver(tracked, event(tracked, issue_id, True), delivery_id=closed) == (
        200,
        {"status": "duplicate"},
    )
    assert status() == "open"

    if tracked.kind == "jira":  # an update that does not move the status (an edit) says nothing new
        edit = {**event(tracked, issue_id, True), "changelog": {"items": [{"field": "summary"}]}}
        assert deliver(tracked, edit, delivery_id=str(uuid.uuid4())) == (200, {"status": "ignored"})
        assert status() == "open"
    forged = deliver(tracked, event(tracked, issue_id, True), delivery_id=str(uuid.uuid4()), secret="wrong")
    assert forged[0] == 401 and status() == "open"
    unsigned = post(f"{tracked.stack.bot_url}/webhooks/{tracked.kind}", b"{}", {})
    assert unsigned == 401
    assert (
        deliver(tracked, {"webhookEvent": "jira:issue_updated", "action": "closed"}, delivery_id="x")[0]
        == 400
    )
    assert status() == "open"
    archived = query(tracked.stack, select(InboundDelivery).where(InboundDelivery.source == tracked.kind))
    assert {row.delivery_id for row in archived} >= {closed, reopened}


JIRA_BAD = [
    {"webhookEvent": "jira:issue_updated", "issue": {"id": ["10001"]}},
    {"webhookEvent": "jira:issue_updated", "issue": None},
    {
        "webhookEvent": "jira:issue_updated",
        "issue": {"id": "10001", "fields": {"status": "Done"}},
        "changelog": {"items": [{"field": "status"}]},
    },
]
GITHUB_BAD = [
    {"action": "closed", "issue": {"number": True}, "repository": {"full_name": "acme/ops"}},
    {"action": "closed", "issue": None, "repository": {"full_name": "acme/ops"}},
    {"action": "closed", "issue": {"number": 1}, "repository": None},
]


def test_malformed_or_foreign_deliveries_get_4xx_or_are_ignored_never_5xx(tracked: Tracked) -> None:
    publish_three(tracked)
    before = {text: item.status for text, item in items(tracked).items()}
    for body in (b"not json", b"[1, 2]", b"\xff\xfe", b'{"deep": ' * 2000 + b"1" + b"}" * 2000):
        assert deliver(tracked, body, delivery_id=str(uuid.uuid4()))[0] == 400, body[:20]
    for payload in JIRA_BAD if tracked.kind == "jira" else GITHUB_BAD:
        assert deliver(tracked, payload, delivery_id=str(uuid.uuid4()))[0] == 400, payload
    if tracked.kind == "jira":
        ignored = [{"webhookEvent": "comment_created", "comment": {}}]
        unknown = {"webhookEvent": "jira:issue_deleted", "issue": {"id": "99999", "key": "OPS-99"}}
    else:
        ignored = [
            {"action": "labeled", "issue": {"number": 1}, "repository": {"full_name": "acme/ops"}},
            {"action": "closed", "issue": {"number": 1}, "repository": {"full_name": "someone/else"}},
        ]
        unknown = {"action": "deleted", "issue": {"number": 999}, "repository": {"full_name": "acme/ops"}}
        assert deliver(tracked, {"zen": "hi"}, delivery_id="ping", event_name="ping") == (
            200,
            {"status": "ignored"},
        )
        missing_id = deliver(tracked, event(tracked, "1", True), delivery_id=None)
        assert missing_id[0] == 400
    for payload in ignored:
        assert deliver(tracked, payload, delivery_id=str(uuid.uuid4())) == (200, {"status": "ignored"})
    assert deliver(tracked, unknown, delivery_id=str(uuid.uuid4())) == (200, {"status": "unchanged"})
    assert {text: item.status for text, item in items(tracked).items()} == before


def test_without_the_webhook_secret_the_route_answers_503_so_the_tracker_retries(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with LocalStack(
        f"sqlite:///{tmp_path / 'bot.db'}", tracker="github", github_webhook_secret=None
    ) as stack:
        assert stack.tracker is not None
        status = post(f"{stack.bot_url}/webhooks/github", b"{}", {"X-Hub-Signature-256": "sha256=00"})
        assert status == 503
