"""RabbitMQ clean-up for benches and tests that declare their own exchange."""

from __future__ import annotations

import aio_pika


async def drop_exchange(amqp_url: str, exchange: str) -> None:
    """Delete ``exchange`` and its dead-letter exchange (``<exchange>.dead``)."""
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        await channel.exchange_delete(exchange)
        await channel.exchange_delete(f"{exchange}.dead")
