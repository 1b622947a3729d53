"""A fault-injecting HTTP proxy on 127.0.0.1, between an S3 client and a real server (moto).

Retries and outages are tested over real HTTP: botocore sees a genuine 503 response or a genuine
connection reset, never a mocked exception. Faults, each drawn per request from a seeded RNG so a
failing run can be replayed:

- ``fail_first``: the first N requests answer ``status`` (the old, deterministic mode);
- ``error_rate``: that fraction answers 503 SlowDown;
- ``reset_rate``: that fraction has its connection reset before the request is forwarded;
- ``lost_answer_rate``: that fraction is forwarded (the server acts on it) and then reset, so the
  client cannot know whether its write landed: the case that makes retried writes dangerous;
- ``delay_rate`` / ``delay_s``: that fraction is held that long before it is forwarded;
- ``down``: while set (``outage()``), every request is reset: a total outage.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

# Hop-by-hop headers are the proxy's own business (RFC 9110 §7.6.1).
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class Faults:
    error_rate: float = 0.0
    reset_rate: float = 0.0
    lost_answer_rate: float = 0.0
    delay_rate: float = 0.0
    delay_s: float = 0.0
    lose_first: int = 0  # the first N forwarded requests lose their answers
    seed: int = 0


@dataclass
class Counts:
    requests: int = 0  # every request seen, failed or forwarded
    failed: int = 0  # answered with an error status
    resets: int = 0  # connection reset, forwarded or not
    lost_answers: int = 0  # forwarded, then reset
    delayed: int = 0
    refused_down: int = 0  # reset because the proxy was down


class FaultProxy:
    """Forwards to ``upstream``; the first ``fail_first`` requests get ``status`` instead, and
    ``faults`` strike at random after them."""

    def __init__(
        self,
        upstream: str,
        fail_first: int = 0,
        status: int = 503,
        port: int = 0,
        faults: Faults | None = None,
    ) -> None:
        target = urlparse(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.fail_first = fail_first
        self.status = status
        self.faults = faults or Faults()
        self.counts = Counts()
        self.down = False
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def requests(self) -> int:
        return self.counts.requests

    @property
    def failed(self) -> int:
        return self.counts.failed

    @contextmanager
    def outage(self) -> Iterator[None]:
        """Every request is reset while inside: the endpoint is gone."""
        self.down = True
        try:
            yield
        finally:
            self.down = False

    def _decide(self) -> str:
        """What happens to the next request: down, fail, reset, delay+forward, forward, lose."""
        f, c = self.faults, self.counts
        with self._lock:
            c.requests += 1
            if self.down:
                c.refused_down += 1
                c.resets += 1
                return "reset"
            if c.failed < self.fail_first:
                c.failed += 1
                return "fail"
            if c.lost_answers < f.lose_first:
                c.resets += 1
                c.lost_answers += 1
                return "lose"
            draw = self._rng.random()
            for fate, rate in (
                ("fail", f.error_rate),
                ("reset", f.reset_rate),
                ("lose", f.lost_answer_rate),
                ("delay", f.delay_rate),
            ):
                if draw < rate:
                    if fate == "fail":
                        c.failed += 1
                    elif fate == "delay":
                        c.delayed += 1
                    else:
                        c.resets += 1
                        c.lost_answers += fate == "lose"
                    return fate
                draw -= rate
            return "forward"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet test output
                return

            def _reset(self) -> None:
                # SO_LINGER 0: close() sends RST, as a crashed or unplugged server would
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()

            def _error(self, status: int) -> None:
                code = b"SlowDown" if status == 503 else b"InternalError"
                payload = b"<Error><Code>" + code + b"</Code><Message>injected</Message></Error>"
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fate = proxy._decide()
                if fate == "reset":
                    return self._reset()
                if fate == "fail":
                    return self._error(proxy.status if proxy.fail_first else 503)
                if fate == "delay":
                    time.sleep(proxy.faults.delay_s)
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if fate == "lose" or proxy.down:  # the server acted; the client never hears it
                    return self._reset()
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except OSError:  # the socket this handler reset itself
                    self.close_connection = True

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay  # noqa: N815  (http.server API)

        return Handler

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def fault_proxy(
    upstream: str, fail_first: int = 0, status: int = 503, faults: Faults | None = None
) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, fail_first, status, faults=faults).start()
    try:
        yield proxy
    finally:
        proxy.stop()
