#!/usr/bin/env python3
"""FaceCV Edge example webhook receiver (FastAPI).

The receiver from the webhook guide's "Python Webhook Server" section, grown up:

* verifies the Standard Webhooks signature (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature`` headers) over the RAW request body with the ``standardwebhooks``
  package, when ``FACECV_WEBHOOK_SECRET`` is set; a bad or missing signature gets 401;
* deduplicates events by their ``id``: delivery is at-least-once, so a batch can arrive twice;
* logs each event like the guide ("Recognized: John Doe from entrance_camera");
* answers ``{"status": "received"}``.

Run it::

    pip install -r examples/requirements.txt
    FACECV_WEBHOOK_SECRET=whsec_... python examples/webhook_server.py --port 8080

Options: ``--host`` (default 127.0.0.1), ``--port`` (default 8080), and ``--events-file PATH``,
which appends one JSON line per accepted event (verified and not seen before): the event object
exactly as FaceCV sent it. Ids already in that file count as seen when the server starts again.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET_ENV = "FACECV_WEBHOOK_SECRET"
# How many event ids to remember for deduplication; the oldest are forgotten first.
MAX_SEEN = 100_000

logger = logging.getLogger("webhook_server")


class SeenIds:
    """The ids of events already accepted, oldest first, bounded."""

    def __init__(self, limit: int = MAX_SEEN) -> None:
        self._ids: "OrderedDict[str, None]" = OrderedDict()
        self._limit = limit

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        self._ids[event_id] = None
        while len(self._ids) > self._limit:
            self._ids.popitem(last=False)


def load_secret(value: Optional[str]) -> Optional[Webhook]:
    """A verifier for ``whsec_<base64 key>``, or None when no secret is configured."""
    if not value:
        return None
    if not value.startswith("whsec_"):
        raise SystemExit(f"{SECRET_ENV} must start with 'whsec_' (copy it from the create response)")
    try:
        key = base64.b64decode(value[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError):
        raise SystemExit(f"{SECRET_ENV}: the part after 'whsec_' is not valid base64") from None
    if not key:
        raise SystemExit(f"{SECRET_ENV}: the key is empty")
    return Webhook(value)


def describe(event: dict[str, Any]) -> list[str]:
    """The log lines for one event, in the guide's style."""
    kind = event.get("event_type")
    camera = event.get("camera_id")
    data = event.get("data") or {}
    if kind == "face_recognized":
        return [f"Recognized: {face.get('name')} from {camera}" for face in data.get("recognized_faces", [])]
    if kind == "stranger_alert":
        return [f"Stranger alert ({data.get('alert_level')}) from {camera}"]
    if kind == "face_detected":
        return [f"Detected {data.get('face_count')} face(s) from {camera}"]
    if kind == "attendance_recorded":
        return [f"Attendance: {data.get('name')} {data.get('action')} from {camera}"]
    if kind == "stream_started":
        return [f"Stream started on {camera} (source {data.get('source')})"]
    if kind == "stream_stopped":
        return [f"Stream stopped on {camera} ({data.get('reason')})"]
    return [f"Event {kind} from {camera}"]


def create_app(secret: Optional[str] = None, events_file: Optional[Path] = None) -> FastAPI:
    verifier = load_secret(secret)
    seen = SeenIds()
    if events_file is not None and events_file.exists():
        # Events already written count as seen, so a restart does not accept them again.
        with events_file.open(encoding="utf-8") as f:
            for line in f:
                try:
                    seen.add(json.loads(line)["id"])
                except (ValueError, KeyError, TypeError):
                    continue

    app = FastAPI(title="FaceCV webhook receiver")

    async def receive_webhook(request: Request) -> JSONResponse:
        # The signature covers the body exactly as sent: verify the raw bytes, never re-serialised JSON.
        body = await request.body()
        if verifier is not None:
            try:
                verifier.verify(body, dict(request.headers), json_parse=False)
            except (WebhookVerificationError, ValueError, TypeError, binascii.Error) as e:
                logger.warning("Rejected a request to %s: %s", request.url.path, e)
                return JSONResponse({"status": "error", "message": "invalid signature"}, status_code=401)
        try:
            data = json.loads(body)
            events = data.get("events", [])
            if not isinstance(events, list):
                raise ValueError("events is not a list")
        except (ValueError, AttributeError) as e:
            return JSONResponse({"status": "error", "message": f"Invalid JSON: {e}"}, status_code=400)

        new_events: list[dict[str, Any]] = []
        batch_ids: set[str] = set()
        for event in events:
            if not isinstance(event, dict):
                logger.warning("Ignored an event that is not a JSON object: %r", event)
                continue
            event_id = event.get("id")
            if event_id is not None and (event_id in seen or event_id in batch_ids):
                logger.info("Duplicate event %s ignored", event_id)
                continue
            if event_id is not None:
                batch_ids.add(event_id)
            new_events.append(event)

        if events_file is not None and new_events:
            # Written before answering 2xx: if this fails, FaceCV gets a 500 and sends the batch again.
            lines = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in new_events)
            with events_file.open("a", encoding="utf-8") as f:
                f.write(lines)
                f.flush()
                os.fsync(f.fileno())

        for event in new_events:
            if event.get("id") is not None:
                seen.add(event["id"])
            for line in describe(event):
                logger.info(line)
            # Process the event here (store it, notify someone, ...), or hand it to a queue.

        return JSONResponse({"status": "received"})

    # The guide's path, and any other path under /webhook/ (per camera, per site, ...).
    app.add_api_route("/webhook/face-recognition", receive_webhook, methods=["POST"])
    app.add_api_route("/webhook", receive_webhook, methods=["POST"])
    app.add_api_route("/webhook/{path:path}", receive_webhook, methods=["POST"])

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "verifying_signatures": verifier is not None}

    return app


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Example FaceCV webhook receiver (FastAPI).")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    parser.add_argument(
        "--events-file",
        type=Path,
        help="append one JSON line per accepted (verified, new) event to this file",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secret = os.environ.get(SECRET_ENV)
    app = create_app(secret, args.events_file)
    if secret:
        logger.info("Verifying Standard Webhooks signatures with the secret from %s", SECRET_ENV)
    else:
        logger.warning("%s is not set: signatures are NOT verified; anyone can post events", SECRET_ENV)

    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)


if __name__ == "__main__":
    sys.exit(main())
