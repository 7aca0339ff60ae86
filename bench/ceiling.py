"""The intake ceiling: the same HTTP stack doing only the signature check.

Served by ``bench/intake.py`` to measure how fast a webhook endpoint can possibly answer
on this machine, so the durable intake's figure can be read against it.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from edge_worker.webhooks.verify import signature_matches

SECRET = os.environ.get("EDGE_WORKER_LINEAR__WEBHOOK_SECRET", "").encode()


async def receive(request: Request) -> JSONResponse:
    body = await request.body()
    if not signature_matches(SECRET, body, request.headers.get("linear-signature")):
        return JSONResponse({"error": "bad signature"}, status_code=401)
    return JSONResponse({"status": "accepted"})


app = Starlette(routes=[Route("/webhooks/linear", receive, methods=["POST"])])
