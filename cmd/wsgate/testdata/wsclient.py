"""A wsgate client written with python3-websockets, run by TestPythonClient.

usage: wsclient.py URL MESSAGES [--no-compression]

It connects to URL, subscribes to topic.news, sends an RFC 6455 ping and
waits for its pong, then reads until MESSAGES notifications have arrived and
closes with 1000. Every line it prints to stdout is one JSON object: each
message from the gateway as received (it has "type"), and the client's own
events (they have "event"):

  {"event": "open", "extensions": <Sec-WebSocket-Extensions of the 101 or null>}
  {"event": "pong"}                       the ping was answered
  {"event": "ready"}                      subscribed and ponged: publish now
  {"event": "closed", "code": N, "reason": "..."}  the server's close frame

With --no-compression the client does not offer permessage-deflate, which
websockets otherwise does.
"""

import asyncio
import json
import sys

import websockets

TIMEOUT = 20  # seconds for the whole run


def emit(obj):
    print(json.dumps(obj), flush=True)


def response_headers(ws):
    # websockets before 14 (the legacy API, Debian 12's 10.4) and after.
    headers = getattr(ws, "response_headers", None)
    if headers is None:
        headers = ws.response.headers
    return headers


async def recv(ws):
    raw = await ws.recv()
    print(raw, flush=True)
    return json.loads(raw)


async def run(url, messages, compression):
    async with websockets.connect(url, compression=compression) as ws:
        emit({"event": "open",
              "extensions": response_headers(ws).get("Sec-WebSocket-Extensions")})
        await recv(ws)  # the welcome
        await ws.send(json.dumps({"op": "subscribe", "channel": "topic.news", "ref": 1}))
        await recv(ws)  # the answer
        pong = await ws.ping(b"wsgate-test")
        await pong  # websockets checks the payload matches
        emit({"event": "pong"})
        emit({"event": "ready"})
        n = 0
        while n < messages:
            if (await recv(ws)).get("type") == "message":
                n += 1
        await ws.close(code=1000)
        emit({"event": "closed", "code": ws.close_code, "reason": ws.close_reason})


def main():
    url, messages = sys.argv[1], int(sys.argv[2])
    compression = None if "--no-compression" in sys.argv[3:] else "deflate"
    asyncio.run(asyncio.wait_for(run(url, messages, compression), TIMEOUT))


if __name__ == "__main__":
    main()
