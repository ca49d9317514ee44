"""Opening an incident channel against the Slack sandbox: a taken name is never another incident's or a
person's channel; only this row's own creation, whose answer was lost, is reused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from bot.devtools.sandbox import SlackSandbox
from bot.domain.incidents import MAX_CHANNEL_NAME, channel_name_variants
from bot.slack.channel_opening import NoFreeChannelName, open_channel
from bot.slack.channels import ChannelDirectory

NAME = "inc-412-checkout-latency"


@pytest.fixture
def sandbox() -> Iterator[SlackSandbox]:
    sandbox = SlackSandbox(signing_secret="secret", bot_token="xoxb-test", app_token="xapp-test").start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def client(sandbox: SlackSandbox) -> WebClient:
    return WebClient(token="xoxb-test", base_url=sandbox.api_url)


def opened(client: WebClient, *, retried: bool, unclaimed: bool = True) -> str:
    channel = open_channel(
        client, ChannelDirectory(client), NAME, create=True, retried=retried, unclaimed=lambda _: unclaimed
    )
    return channel["name"]


def test_a_name_taken_by_a_person_or_another_incident_gets_the_next_variant(client: WebClient) -> None:
    client.conversations_create(name=NAME)  # created by the bot for another incident
    assert opened(client, retried=False) == f"{NAME}-2"
    assert opened(client, retried=True, unclaimed=False) == f"{NAME}-3"


def test_a_retried_row_takes_back_the_channel_it_created_when_no_incident_has_it(
    sandbox: SlackSandbox, client: WebClient
) -> None:
    first = client.conversations_create(name=NAME)["channel"]["id"]  # the answer "was lost"
    assert opened(client, retried=True) == NAME
    assert sandbox.channel_id(NAME) == first
    sandbox.create_channel(f"{NAME}-x")  # a person's channel is never taken back, even on a retry
    name = f"{NAME}-x"
    assert (
        open_channel(
            client, ChannelDirectory(client), name, create=True, retried=True, unclaimed=lambda _: True
        )["name"]
        == f"{name}-2"
    )


def test_variants_stay_within_slacks_limit_and_run_out_with_an_error(client: WebClient) -> None:
    long = "inc-1-" + "x" * 80
    variants = channel_name_variants(long[:MAX_CHANNEL_NAME])
    assert all(len(v) <= MAX_CHANNEL_NAME for v in variants) and len(set(variants)) == len(variants)
    for variant in channel_name_variants(NAME):
        client.conversations_create(name=variant)
    with pytest.raises(NoFreeChannelName):
        opened(client, retried=False)
