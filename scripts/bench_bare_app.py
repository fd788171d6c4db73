"""The bare endpoint ``scripts/bench.py`` compares the revocation endpoint against.

A Starlette app whose ``POST /token/revoke`` reads the body, parses it as the service
does (UTF-8, ``urllib.parse.parse_qsl``; ``request.form()`` would need python-multipart,
which is not installed) and answers 200 with the same ``Cache-Control``/``Pragma``
headers and an empty body (``POST /token/introspect``, for ``bench.py --peer``: the same,
answering ``{"active":true}``). No middleware, no authentication, no store: what is left is
the cost of uvicorn + Starlette + reading the form, the floor for any endpoint.

Run under the service's uvicorn settings (``app/serve.py``): uvloop, httptools, access
log off, no server header, ``log_config=None``::

    python scripts/bench_bare_app.py --port 8001 [--workers 1]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_FIELDS = 64
ACTIVE = b'{"active":true}'


async def revoke(request: Request) -> Response:
    return await answer(request, Response(status_code=200, headers=NO_STORE))


async def introspect(request: Request) -> Response:
    """The same form, answered with the smallest RFC 7662 body (``bench.py --peer``)."""
    return await answer(request, Response(ACTIVE, headers=NO_STORE, media_type="application/json"))


async def answer(request: Request, ok: Response) -> Response:
    body = await request.body()
    try:
        form = dict(
            parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                errors="strict",
                max_num_fields=MAX_FIELDS,
            )
        )
    except ValueError:  # UnicodeDecodeError included
        return Response(status_code=400, headers=NO_STORE)
    if not form.get("token"):
        return Response(status_code=400, headers=NO_STORE)
    return ok


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/token/revoke", revoke, methods=["POST"]),
        Route("/token/introspect", introspect, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)


def main() -> int:
    p = argparse.ArgumentParser(description="bare Starlette form endpoint for scripts/bench.py")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    uvicorn.run(
        "bench_bare_app:app",
        app_dir=str(Path(__file__).resolve().parent),
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
