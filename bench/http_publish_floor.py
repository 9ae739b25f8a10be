"""The least an HTTP front on aiohttp + aio-pika can do per command: the gateway's floor.

One ``POST /v1/commands`` handler that reads the body, takes the user from it as the
routing key and publishes it with confirms, ``mandatory`` and persistence to the
commands exchange, then answers 202. No authentication, validation, database, log line
or metrics: what is left is the cost of aiohttp and aio-pika themselves, so the
benchmark can say how far the gateway is from the best any gateway on this stack can
do on the same machine, in the same run.

    .venv/bin/python bench/http_publish_floor.py PORT AMQP_URL
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

import aio_pika
import uvloop
from aiohttp import web

from schemas.topology import COMMANDS_EXCHANGE


async def serve(port: int, amqp_url: str) -> None:
    """Serve on 127.0.0.1:``port`` (0: any free port) until cancelled; prints
    ``ready PORT`` once bound."""
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    exchange = await channel.get_exchange(COMMANDS_EXCHANGE, ensure=False)

    async def accept(request: web.Request) -> web.Response:
        body = await request.read()
        command_id = str(uuid.uuid4())
        message = aio_pika.Message(
            body, message_id=command_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        await exchange.publish(message, json.loads(body)["user"], mandatory=True, timeout=5)
        return web.json_response({"id": command_id}, status=202)

    app = web.Application()
    app.router.add_post("/v1/commands", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server  # the bound port (port 0: the kernel chose it while binding)
    bound = server.sockets[0].getsockname()[1] if server is not None else port
    print(f"ready {bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await connection.close()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), sys.argv[2]))
