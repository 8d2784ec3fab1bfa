"""The heartbeat of one connection (PROTOCOL §4): a ping every period, a close for a client silent a whole period."""

from __future__ import annotations

from likha_realtime.wire.heartbeat import Beat, Heartbeat


def test_the_first_period_always_pings() -> None:
    assert Heartbeat().tick() is Beat.PING


def test_a_client_silent_since_the_last_ping_is_closed_at_the_next_period() -> None:
    heartbeat = Heartbeat()
    assert [heartbeat.tick(), heartbeat.tick()] == [Beat.PING, Beat.CLOSE]


def test_a_message_after_each_ping_keeps_the_connection_alive() -> None:
    heartbeat = Heartbeat()
    beats = []
    for _ in range(5):
        beats.append(heartbeat.tick())
        heartbeat.heard()
    assert beats == [Beat.PING] * 5


def test_any_message_counts_not_only_pong_and_several_count_once() -> None:
    heartbeat = Heartbeat()
    heartbeat.tick()
    heartbeat.heard()
    heartbeat.heard()
    assert heartbeat.tick() is Beat.PING
    assert heartbeat.tick() is Beat.CLOSE  # what was heard before the last ping does not count for the next period


def test_a_message_before_the_first_ping_does_not_excuse_a_later_silence() -> None:
    heartbeat = Heartbeat()
    heartbeat.heard()
    assert [heartbeat.tick(), heartbeat.tick()] == [Beat.PING, Beat.CLOSE]


def test_once_the_client_is_silent_every_later_period_answers_close() -> None:
    heartbeat = Heartbeat()
    heartbeat.tick()
    assert [heartbeat.tick(), heartbeat.tick()] == [Beat.CLOSE, Beat.CLOSE]
