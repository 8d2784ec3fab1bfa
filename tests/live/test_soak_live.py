"""The soak (bench/soak.py, ``make soak``) for 60 s at a size a 2-core CI machine carries: every subscriber receives
exactly the events it should, counted per session, through reconnects; RSS flat after the warm-up; no ERROR line.

Size: 300 subscribed connections over 2 daphne processes, 20 writes/s for 60 s on 30 products (10 subscribers
each), 10 % of the connections (30) reconnecting every 15 s (120 reconnects), RSS sampled every 10 s after a 20 s
warm-up. The counting is the full soak's: exact, whatever the machine's speed (only the bounds of waiting grow).
"""

from __future__ import annotations

import asyncio

import pytest

from bench.soak import Options, Session, Soak, report, soak, values_follow, verdict

SIZE = Options(
    connections=300,
    processes=2,
    rate=20.0,
    seconds=60.0,
    reconnect_fraction=0.1,
    reconnect_period=15.0,
    products=30,
    sample_period=10.0,
    warmup=20.0,
)


@pytest.mark.reliability
@pytest.mark.timeout(900)
def test_sixty_second_soak_delivers_every_event_exactly_once() -> None:
    result, problems = soak(SIZE)
    print(report(result, problems))
    assert problems == [], report(result, problems)
    assert result["lost"] == result["duplicated"] == result["unexpected_frames"] == 0
    assert result["events_received"] == result["events_expected"] > 0
    assert result["reconnects"] == 4 * 30 and result["sessions"] == 300 + 120
    assert result["monitor_received"] == [result["writes"]] * 2


# -- the counting itself (no server): a lost, a duplicated or a misplaced frame fails the run ---------------------


def tallied(*sessions: Session) -> dict[str, object]:
    async def build() -> dict[str, object]:
        counter = Soak(SIZE, [], "", "", [1])
        counter.closed = list(sessions)
        return counter.tally()

    return asyncio.run(build())


def session(expected: list[int], values: list[int]) -> Session:
    return Session(product=1, server=0, expected=expected, values=values)


def test_the_count_finds_lost_and_duplicated_events() -> None:
    exact = tallied(session([3, 5, 8], [3, 8, 8]))  # frames re-read when delivered: 5's frame may show 8
    assert (exact["lost"], exact["duplicated"], exact["value_order_errors"]) == (0, 0, 0)
    lost = tallied(session([3, 5, 8], [5, 8]))
    assert (lost["lost"], lost["duplicated"]) == (1, 0)
    duplicated = tallied(session([3, 5], [3, 5, 5]))
    assert (duplicated["lost"], duplicated["duplicated"]) == (0, 1)


@pytest.mark.parametrize(
    ("expected", "values", "follows"),
    [
        ([3, 5, 8], [3, 5, 8], True),
        ([3, 5, 8], [5, 8, 8], True),
        ([3, 5, 8], [3, 8, 5], False),  # out of order
        ([3, 5, 8], [3, 3, 8], False),  # 5's frame cannot show an older value than 5: 3's frame came twice
        ([3, 5, 8], [3, 5, 5], False),  # the last frame must show the last write
        ([], [], True),
    ],
)
def test_frame_values_follow_the_writes(expected: list[int], values: list[int], follows: bool) -> None:
    assert values_follow(values, expected) is follows


def test_the_verdict_fails_on_any_loss_error_line_or_growth() -> None:
    base = {
        "lost": 0,
        "duplicated": 0,
        "value_order_errors": 0,
        "unexpected_frames": 0,
        "failed_writes": 0,
        "error_lines": 0,
        "drained": True,
        "monitor_received": [10, 10],
        "monitor_expected_each": 10,
        "servers_alive": [True, True],
        "rss_growth_pct": [1.0, 4.99],
    }
    assert verdict(base, SIZE) == []
    assert verdict({**base, "lost": 1}, SIZE) == ["lost: 1"]
    assert verdict({**base, "error_lines": 2}, SIZE) == ["error_lines: 2"]
    assert verdict({**base, "rss_growth_pct": [5.0, 0.0]}, SIZE) == [
        "process 0: RSS grew 5.0 % after the warm-up (limit 5.0 %)"
    ]
    assert verdict({**base, "monitor_received": [10, 9]}, SIZE) == ["monitors received [10, 9], expected 10"]
