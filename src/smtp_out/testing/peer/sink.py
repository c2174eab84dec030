"""A sink MX: accepts every message on port 25 (but for recipients reject*@...) and stores it in /sink.

Each message becomes <n>.eml (the bytes received) and <n>.json (arrival time, peer,
envelope), written to a temporary name and renamed, so readers never see half a file.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from pathlib import Path

from aiosmtpd.controller import Controller

OUT = Path(os.environ.get("SINK_DIR", "/sink"))
_counter = itertools.count(1)


class Store:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        """Recipients whose local part starts with "reject" are refused, so the relay must bounce."""
        if address.split("@")[0].startswith("reject"):
            return "550 5.1.1 No such user here (the sink refuses reject* recipients)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        n = f"{time.time_ns()}-{next(_counter):06d}"
        meta = {
            "arrived": time.time(),
            "peer": session.peer[0],
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
        }
        data = envelope.original_content or envelope.content
        for suffix, blob in ((".eml", data), (".json", json.dumps(meta).encode())):
            tmp = OUT / f".{n}{suffix}.tmp"
            tmp.write_bytes(blob)
            tmp.rename(OUT / f"{n}{suffix}")
        return "250 2.0.0 Ok: stored"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    controller = Controller(Store(), hostname="0.0.0.0", port=25, server_hostname="mx.sink.test")
    controller.start()
    print("sink listening on :25", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
