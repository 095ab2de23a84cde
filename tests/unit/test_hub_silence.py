"""The silent-hub rule (domain notes): 10 s without a valid frame while a request waits, or
three timed-out requests in a row; one timeout alone is not silence."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gatewayd_drivers.commshub.silence import SilenceWatch


def test_one_or_two_timeouts_are_not_silence() -> None:
    watch = SilenceWatch()
    watch.request_sent(0.0)
    watch.timed_out()
    assert watch.check(3.0, outstanding=False) is None
    watch.request_sent(3.5)
    watch.timed_out()
    assert watch.check(6.5, outstanding=False) is None


def test_three_timeouts_in_a_row_are_silence() -> None:
    watch = SilenceWatch()
    watch.frame_received(0.0)
    for i in range(3):
        watch.request_sent(1.0 + 3 * i)
        watch.timed_out()
    silence = watch.check(9.5, outstanding=False)
    assert silence is not None
    assert silence.timeouts_in_a_row == 3 and silence.quiet_s == 9.5
    assert "3 requests in a row" in silence.reason


def test_an_answer_between_timeouts_breaks_the_run() -> None:
    watch = SilenceWatch()
    for _ in range(2):
        watch.timed_out()
    watch.frame_received(5.0)
    watch.answered()
    watch.timed_out()
    watch.timed_out()
    assert watch.check(12.0, outstanding=False) is None


def test_ten_quiet_seconds_with_a_request_waiting_are_silence() -> None:
    watch = SilenceWatch()
    watch.frame_received(0.0)
    watch.request_sent(2.0)
    assert watch.quiet_deadline() == 12.0
    assert watch.check(11.9, outstanding=True) is None
    silence = watch.check(12.0, outstanding=True)
    assert silence is not None and "10.0 s" in silence.reason and silence.quiet_s == 12.0


def test_quiet_seconds_with_nothing_asked_are_not_silence() -> None:
    # A hub with nothing to say and nothing asked of it is merely idle.
    watch = SilenceWatch()
    watch.frame_received(0.0)
    assert watch.check(60.0, outstanding=False) is None
    assert watch.quiet_deadline() is None


def test_any_valid_frame_restarts_the_quiet_period() -> None:
    watch = SilenceWatch()
    watch.request_sent(0.0)
    watch.frame_received(9.0)  # an event, say: the hub is alive
    watch.request_sent(9.5)
    assert watch.check(19.0, outstanding=True) is None
    assert watch.check(19.5, outstanding=True) is not None


@given(
    st.lists(
        st.tuples(st.sampled_from(["send", "frame", "answer", "timeout"]), st.floats(0, 5)),
        max_size=40,
    )
)
def test_silence_needs_three_timeouts_or_ten_quiet_seconds(
    steps: list[tuple[str, float]],
) -> None:
    watch = SilenceWatch()
    now = 0.0
    last_frame = 0.0
    first_unanswered: float | None = None
    run = 0
    for step, dt in steps:
        now += dt
        if step == "send":
            watch.request_sent(now)
            first_unanswered = now if first_unanswered is None else first_unanswered
        elif step == "frame":
            watch.frame_received(now)
            last_frame, first_unanswered = now, None
        elif step == "answer":
            watch.answered()
            run = 0
        else:
            watch.timed_out()
            run += 1
        silence = watch.check(now, outstanding=True)
        quiet = first_unanswered is not None and now - first_unanswered >= 10.0
        assert (silence is not None) == (run >= 3 or quiet), (step, now, last_frame)
