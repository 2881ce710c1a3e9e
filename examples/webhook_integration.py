#!/usr/bin/env python3
"""FaceCV Edge webhook integration, end to end: the guide's "Complete Example".

What it does, against a running appliance (``facecv serve``):

1. checks ``GET /health``;
2. creates the webhook ``--webhook-id`` pointing at the example receiver, for ``--event-types``
   (or replaces it with ``PUT`` when it already exists);
3. prints the webhook's signing secret and how to start the receiver with it;
4. sends a test request with ``POST /api/v1/webhooks/test``;
5. records a few sample events of every type with ``POST /api/v1/events/trigger``;
6. polls ``GET /api/v1/webhooks/stats`` until the webhook's backlog is 0, and prints the stats.

It exits 0 when every batch of this run was delivered, 1 otherwise.

Run it::

    # terminal 1: the appliance
    facecv serve
    # terminal 2: the receiver, verifying signatures with a secret you choose
    export FACECV_WEBHOOK_SECRET=$(python3 -c "import base64,os; print('whsec_' + base64.b64encode(os.urandom(32)).decode())")
    python examples/webhook_server.py
    # terminal 3: this script, with the same FACECV_WEBHOOK_SECRET exported
    python examples/webhook_integration.py

Without ``FACECV_WEBHOOK_SECRET`` (or ``--secret``) the appliance generates the secret; the script
prints it so that you can restart the receiver with it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from typing import Any, Optional

import requests

EVENT_TYPES = [
    "face_detected",
    "face_recognized",
    "stranger_alert",
    "attendance_recorded",
    "stream_started",
    "stream_stopped",
]
SECRET_ENV = "FACECV_WEBHOOK_SECRET"


class Api:
    """A small client for the appliance's API."""

    def __init__(self, base: str, token: Optional[str]) -> None:
        self.base = base.rstrip("/")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> requests.Response:
        r = self.session.request(method, f"{self.base}{path}", json=body, timeout=30)
        if r.status_code not in ok:
            raise SystemExit(f"{method} {path} answered {r.status_code}: {r.text}")
        return r


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def webhook_stats(api: Api) -> dict[str, Any]:
    return api.call("GET", "/api/v1/webhooks/stats").json()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Set up a FaceCV webhook and watch events reach the receiver.")
    parser.add_argument("--api", default="http://127.0.0.1:7000", help="the appliance's API (default %(default)s)")
    parser.add_argument(
        "--receiver",
        default="http://127.0.0.1:8080/webhook/face-recognition",
        help="the webhook URL: where the example receiver listens (default %(default)s)",
    )
    parser.add_argument("--token", default=os.environ.get("FACECV_API_TOKEN"), help="the appliance's api.token, sent as Authorization: Bearer")
    parser.add_argument("--webhook-id", default="main_recognition", help="the webhook's id (default %(default)s)")
    parser.add_argument(
        "--event-types",
        default="face_recognized,stranger_alert,attendance_recorded",
        help="comma-separated event types the webhook receives (default %(default)s)",
    )
    parser.add_argument(
        "--secret",
        default=os.environ.get(SECRET_ENV),
        help=f"the signing secret (whsec_...); default ${SECRET_ENV}, else the appliance generates one",
    )
    parser.add_argument("--count", type=int, default=2, help="sample events to trigger per type (default %(default)s)")
    parser.add_argument("--camera-id", default="entrance_camera", help="camera id of the sample events")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the backlog to drain")
    parser.add_argument("--cleanup", action="store_true", help="delete the webhook at the end")
    args = parser.parse_args(argv)

    event_types = [t.strip() for t in args.event_types.split(",") if t.strip()]
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        parser.error(f"unknown event types {unknown}; expected some of {EVENT_TYPES}")
    api = Api(args.api, args.token)

    # 1. Is the appliance up?
    try:
        health = api.call("GET", "/health").json()
    except requests.ConnectionError as e:
        print(f"Cannot reach the appliance at {args.api}: is `facecv serve` running? ({e})", file=sys.stderr)
        return 1
    print(f"Appliance {args.api}: status {health.get('status')}, version {health.get('version')}")

    # 2. Create the webhook, or replace it when the id exists.
    config: dict[str, Any] = {
        "webhook_id": args.webhook_id,
        "url": args.receiver,
        "headers": {},
        "timeout": 30,
        "retry_count": 3,
        "retry_delay": 1.0,
        "batch_size": 10,
        "batch_timeout": 1.0,
        "enabled": True,
        "event_types": event_types,
    }
    if args.secret:
        config["secret"] = args.secret
    r = api.call("POST", "/api/v1/webhooks", config, ok=(200, 409))
    created = r.json() if r.status_code == 200 else {}
    if "secret" in created:
        secret = created["secret"]
        print(f"Created webhook {args.webhook_id} -> {args.receiver}")
    else:
        # It existed: with these settings (200, without the secret) or others (409). The stored
        # secret is never shown again, so a replacement sets one we know.
        secret = config.setdefault("secret", args.secret or new_secret())
        api.call("PUT", f"/api/v1/webhooks/{args.webhook_id}", config)
        print(f"Webhook {args.webhook_id} existed; replaced its configuration -> {args.receiver}")
    print(f"Event types: {', '.join(event_types)}")

    # 3. The secret, and how to start the receiver with it.
    print()
    print(f"Signing secret: {secret}")
    if secret != os.environ.get(SECRET_ENV):
        print("Start the receiver with it so that it verifies every request:")
        print(f"  {SECRET_ENV}='{secret}' python examples/webhook_server.py")
        print(f"  {SECRET_ENV}='{secret}' node examples/webhook_server.js")
    print()

    # 4. A test request, sent now and outside the store.
    test = api.call(
        "POST",
        "/api/v1/webhooks/test",
        {"url": args.receiver, "test_data": {"message": "Test webhook"}},
    ).json()
    print(
        f"Test request: success={test.get('success')} status={test.get('status_code')} "
        f"time={test.get('response_time_ms', 0):.1f} ms error={test.get('error')}"
    )
    if test.get("status_code") == 401:
        print("  (test requests are not signed, so a receiver that verifies signatures answers 401)")
    elif not test.get("success"):
        print(f"  The receiver at {args.receiver} did not accept the test request; is it running?")

    # 5. Sample events of every type; the webhook gets those of its event types.
    before = webhook_stats(api)["webhooks"].get(args.webhook_id, {})
    triggered: dict[str, list[str]] = {}
    for event_type in EVENT_TYPES:
        body = {"event_type": event_type, "count": args.count, "camera_id": args.camera_id}
        events = api.call("POST", "/api/v1/events/trigger", body).json()["events"]
        triggered[event_type] = [e["id"] for e in events]
        wanted = "sent to the webhook" if event_type in event_types else "filtered out by event_types"
        print(f"Triggered {len(events)} {event_type} event(s), {wanted}")
    expected = [i for t in event_types for i in triggered[t]]
    print(f"{len(expected)} event(s) should reach {args.receiver}")

    # 6. Wait for the webhook's backlog to drain: every event delivered, or dead-lettered.
    deadline = time.monotonic() + args.wait
    while True:
        stats = webhook_stats(api)
        mine = stats["webhooks"].get(args.webhook_id, {})
        # Events are committed before trigger answers, and a batch leaves the backlog only once
        # the receiver acknowledged it (or it failed every retry and became a dead letter).
        if mine.get("backlog", 1) == 0:
            break
        if time.monotonic() > deadline:
            print(f"The backlog did not drain within {args.wait:.0f} s: {json.dumps(mine)}", file=sys.stderr)
            return 1
        time.sleep(0.5)

    print()
    print("Webhook statistics:")
    print(json.dumps(stats, indent=2))
    failed = mine.get("failed", 0) - before.get("failed", 0)
    dead = mine.get("dead_letters", 0) - before.get("dead_letters", 0)
    deliveries = api.call("GET", f"/api/v1/webhooks/{args.webhook_id}/deliveries?limit=5").json()["deliveries"]
    if deliveries:
        print("Latest deliveries:")
        for d in deliveries:
            print(f"  {d['at']} {d['msg_id']} attempt {d['attempt']}: {d['events']} event(s), status {d['status']} {d['error'] or ''}")

    if args.cleanup:
        api.call("DELETE", f"/api/v1/webhooks/{args.webhook_id}")
        print(f"Deleted webhook {args.webhook_id}")

    if failed > 0 or dead > 0:
        print(
            f"{failed} event(s) failed after every retry ({dead} new dead letter(s)). Check that the "
            f"receiver runs and has the secret above; resend them with POST /api/v1/webhooks/{args.webhook_id}/replay.",
            file=sys.stderr,
        )
        return 1
    delivered = mine.get("succeeded", 0) - before.get("succeeded", 0)
    print(f"Delivered {delivered} event(s) of the {len(expected)} expected.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
