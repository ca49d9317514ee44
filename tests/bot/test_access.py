"""The authorization rule and the member cache (bot/access.py), without Slack."""

from __future__ import annotations

import threading

import pytest

from bot.access import NotAllowed, ParticipantCache, may_edit, require_editor


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
    require_editor(user_id="U0NEW", channel_id="C1", admins=(), cache=cache, load=load, what="edit")
    assert load.calls == 2
    require_editor(user_id="U0BOB", channel_id="C1", admins=(), cache=cache, load=load, what="edit")
    assert load.calls == 2  # a yes from the cache
    with pytest.raises(NotAllowed, match=r"Only people in <#C1>"):
        require_editor(user_id="U0EVE", channel_id="C1", admins=(), cache=cache, load=load, what="edit")
    require_editor(user_id="U0ADMIN", channel_id=None, admins=["U0ADMIN"], cache=cache, load=load, what="x")
    with pytest.raises(NotAllowed):
        require_editor(user_id="U0BOB", channel_id=None, admins=(), cache=cache, load=load, what="edit")


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
