"""The authorization rule and the member cache (bot/domain/access.py), without Slack."""

from __future__ import annotations

import threading

from bot.domain.access import NotAllowed, ParticipantCache, may_edit, refusal


def test_participants_and_admins_may_edit_others_may_not() -> None:
    assert may_edit(user_id="U0BOB", participants={"U0BOB"}, admins=())
    assert may_edit(user_id="U0ADMIN", participants=set(), admins=["U0ADMIN"])
    assert not may_edit(user_id="U0EVE", participants={"U0BOB"}, admins=["U0ADMIN"])


class Loader:
    def __init__(self, members: set[str]) -> None:
        self.members = members
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, channel: str) -> set[str]:
        with self._lock:
            self.calls += 1
        return set(self.members)


def test_the_cache_answers_for_ttl_seconds_then_asks_again() -> None:
    now = [100.0]
    cache = ParticipantCache(ttl=60, clock=lambda: now[0])
    load = Loader({"U0BOB"})
    assert cache.members("C1", load) == {"U0BOB"}
    now[0] += 59
    load.members = {"U0BOB", "U0ALICE"}
    assert cache.members("C1", load) == {"U0BOB"} and load.calls == 1
    now[0] += 2
    assert cache.members("C1", load) == {"U0BOB", "U0ALICE"} and load.calls == 2
    cache.forget("C1")
    assert cache.members("C1", load) and load.calls == 3


def test_a_refusal_is_always_checked_against_a_fresh_list() -> None:
    cache = ParticipantCache(ttl=60, clock=lambda: 0.0)
    load = Loader({"U0BOB"})
    cache.members("C1", load)
    load.members = {"U0BOB", "U0NEW"}  # joined a second ago; the cache does not know yet
    assert "U0NEW" in cache.members_seen_by("C1", "U0NEW", load)
    assert load.calls == 2
    assert "U0BOB" in cache.members_seen_by("C1", "U0BOB", load)
    assert load.calls == 2  # a yes from the cache
    assert not may_edit(user_id="U0EVE", participants=cache.members_seen_by("C1", "U0EVE", load), admins=())
    assert load.calls == 3


def test_an_action_items_owner_may_close_it_without_being_a_participant() -> None:
    assert may_edit(user_id="U0ALICE", participants=(), admins=(), owner_id="U0ALICE")
    assert not may_edit(user_id="U0EVE", participants=(), admins=(), owner_id="U0ALICE")
    message = str(refusal(channel_id="C1", what="edit"))
    assert message.startswith(":no_entry: Only people in <#C1>") and isinstance(
        refusal(channel_id=None, what="x"), NotAllowed
    )


def test_the_cache_is_safe_across_threads() -> None:
    cache = ParticipantCache(ttl=60)
    load = Loader({f"U{n}" for n in range(50)})
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for round_ in range(300):
                channel = f"C{(worker + round_) % 7}"
                assert "U3" in cache.members(channel, load)
                if round_ % 50 == 0:
                    cache.forget(channel)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert 7 <= load.calls < 8 * 300  # cached between forgets
