"""Outbound pacing with a manual clock: frames go out at real-time pace with a small lead."""

import asyncio

import numpy as np

from telephony.connection import ConnectionClosed
from voicebot.clock import ManualClock
from voicebot.playout import Playout, stop_task


class Link:
    def __init__(self, clock):
        self.clock = clock
        self.log = []

    async def send_audio(self, pcm):
        self.log.append(("audio", round(self.clock.now(), 3), int(pcm[0])))

    async def mark(self, name):
        self.log.append(("mark", round(self.clock.now(), 3), name))


async def settle():
    for _ in range(20):
        await asyncio.sleep(0)


async def run_for(clock, seconds, step=0.01):
    for _ in range(round(seconds / step)):
        clock.advance(step)
        await settle()


def frames(count, start=1):
    return np.concatenate([np.full(320, start + i, dtype=np.int16) for i in range(count)])


async def test_frames_are_paced_with_the_configured_lead_and_marks_follow_audio():
    clock = ManualClock()
    link = Link(clock)
    first = []
    playout = Playout(
        link, clock, lead_ms=100, on_first_frame=lambda owner, at: first.append((owner, at))
    )
    task = asyncio.create_task(playout.run())
    await playout.play(frames(50), "r1")
    await playout.mark("r1.0", "r1")
    await settle()
    await run_for(clock, 1.2)
    audio = [entry for entry in link.log if entry[0] == "audio"]
    assert len(audio) == 50
    assert [entry[2] for entry in audio] == list(range(1, 51))
    # The first 100 ms (5 frames + the one due now) go at once; then one frame per 20 ms.
    assert [t for _, t, _ in audio[:6]] == [0.0] * 6
    late = [t - (i * 0.02 - 0.1) for i, (_, t, _) in enumerate(audio) if i >= 6]
    assert max(late) <= 0.011 and min(late) >= -1e-9
    assert link.log[-1][0] == "mark" and link.log[-1][2] == "r1.0"
    assert first == [("r1", 0.0)]
    assert abs(playout.played_until() - 1.0) < 1e-9
    await stop_task(task)


async def test_flush_stops_the_current_item_and_drops_queued_ones():
    clock = ManualClock()
    link = Link(clock)
    playout = Playout(link, clock, lead_ms=40)
    task = asyncio.create_task(playout.run())
    await playout.play(frames(25), "r1")
    await playout.mark("r1.0", "r1")
    await playout.play(frames(25, start=100), "r1")
    await settle()
    await run_for(clock, 0.2)
    sent_before = len(link.log)
    playout.flush()
    await run_for(clock, 1.0)
    assert len(link.log) == sent_before
    assert all(entry[0] == "audio" and entry[2] < 100 for entry in link.log)
    # After a flush the next reply starts at once.
    await playout.play(frames(3, start=500), "r2")
    await settle()
    assert [entry[2] for entry in link.log[sent_before:]] == [500, 501, 502]
    await stop_task(task)


async def test_a_new_talk_spurt_after_silence_is_re_anchored():
    clock = ManualClock()
    link = Link(clock)
    playout = Playout(link, clock, lead_ms=0)
    task = asyncio.create_task(playout.run())
    await playout.play(frames(2), "r1")
    await settle()
    await run_for(clock, 2.0)
    await playout.play(frames(2, start=10), "r2")
    await settle()
    # Nothing is owed from the past: the new reply's first frame goes out immediately.
    assert link.log[-1][1] == 2.0
    await stop_task(task)


class DeadLink(Link):
    """A carrier connection that fails on the third frame (the peer went away)."""

    async def send_audio(self, pcm):
        if len(self.log) >= 2:
            raise ConnectionClosed("send failed: peer gone")
        await super().send_audio(pcm)


async def test_a_link_that_fails_stops_the_playout_without_failing_the_call():
    clock = ManualClock()
    playout = Playout(DeadLink(clock), clock, lead_ms=100, capacity=4)
    task = asyncio.create_task(playout.run())
    for index in range(10):  # more than the queue holds: producers must not block forever
        await asyncio.wait_for(playout.play(frames(5, start=index * 5), "r1"), 1)
        await playout.mark(f"r1.{index}", "r1")
        await run_for(clock, 0.1)
    assert playout.link_closed and not task.done()  # no exception escaped the sender loop
    await stop_task(task)
