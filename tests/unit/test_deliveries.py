"""A delivery's handling outlives the consumer callback that aiormq cancels when the
channel closes; settling on the dead channel is left to the broker's redelivery."""

from __future__ import annotations

import asyncio

import pytest
from aiormq.abc import TaskWrapper
from aiormq.exceptions import ChannelInvalidStateError

from consumers.deliveries import Deliveries
from consumers.ports import InboundMessage


class Message:
    """Only what the handler below reads: acking on a channel that may be gone."""

    def __init__(self, *, channel_open: bool = True) -> None:
        self.channel_open = channel_open
        self.acked = False
        self.requeued = False

    async def ack(self) -> None:
        if not self.channel_open:
            raise ChannelInvalidStateError("No active transport in channel")
        self.acked = True

    async def nack(self, requeue: bool = True) -> None:
        if not self.channel_open:
            raise ChannelInvalidStateError("No active transport in channel")
        self.requeued = requeue


class FailingHandler:
    """Raises instead of settling its message."""

    async def handle(self, incoming: InboundMessage) -> None:
        raise KeyError("a bug")


class TwoStepHandler:
    """Writes step one, waits for ``proceed``, writes step two, then acks."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.started = asyncio.Event()
        self.proceed = asyncio.Event()

    async def handle(self, incoming: InboundMessage) -> None:
        assert isinstance(incoming, Message)
        self.steps.append("one")
        self.started.set()
        await self.proceed.wait()
        self.steps.append("two")
        await incoming.ack()


async def test_a_closed_channel_does_not_cut_the_handling_in_half() -> None:
    handler = TwoStepHandler()
    deliveries = Deliveries(handler)
    message = Message()
    # exactly what aiormq does with a consumer callback, and to it when the channel closes
    callback = TaskWrapper(asyncio.create_task(deliveries.handle(message)))
    await handler.started.wait()
    callback.throw(ChannelInvalidStateError("channel closed"))
    with pytest.raises(ChannelInvalidStateError):
        await callback
    assert deliveries.in_flight == 1
    message.channel_open = False
    handler.proceed.set()
    assert await deliveries.drain(within=5) == 0
    assert handler.steps == ["one", "two"]
    assert not message.acked and not message.requeued  # the broker delivers it again


async def test_drain_waits_for_handlings_then_cuts_what_is_left() -> None:
    finishing, stuck = TwoStepHandler(), TwoStepHandler()
    quick, slow = Deliveries(finishing), Deliveries(stuck)
    done_message = Message()
    callbacks = [
        asyncio.create_task(quick.handle(done_message)),
        asyncio.create_task(slow.handle(Message())),
    ]
    await finishing.started.wait()
    await stuck.started.wait()
    finishing.proceed.set()
    assert await quick.drain(within=5) == 0
    assert done_message.acked
    assert await slow.drain(within=0.05) == 1
    assert stuck.steps == ["one"]
    assert slow.in_flight == 0
    results = await asyncio.gather(*callbacks, return_exceptions=True)
    assert results[0] is None
    assert isinstance(results[1], asyncio.CancelledError)


async def test_a_handler_that_raised_gives_its_message_back_to_the_queue() -> None:
    message = Message()
    await Deliveries(FailingHandler()).handle(message)
    assert message.requeued and not message.acked
