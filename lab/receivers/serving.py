"""The HTTP server every stand-in runs on: cheroot's (CherryPy's WSGI server).

Real clients speak HTTP/1.1 as the real services accept it: keep-alive
connections, ``Transfer-Encoding: chunked`` bodies (``@sentry/node`` sends its
envelopes so) and ``Content-Encoding: gzip``. cheroot takes the first two and
refuses bodies over the size limit with 413; the Content-Encoding is undone here
(`decode_body`), bounded too, so that a stand-in answers 415 for an encoding it
cannot undo. cheroot is threaded and pure Python, so it also runs under the test
session's gevent patching (pyinfra's), where asyncio servers cannot share a thread.

A stand-in is a `RequestHandler` subclass with ``do_<METHOD>`` methods that
return a `Reply` (or hand it to ``self._send(reply)``, as on http.server). They
see the request as http.server's handlers did: ``self.server``,
``self.command``, ``self.path`` (raw path and query), ``self.headers``,
``self.client_address``, and the body through ``self.body()``.

`StandinServer` keeps socketserver's surface, which tests, the CLIs and the lab's
daemons use: bound when built (port 0 picks one, see ``server_address``),
``serve_forever()``, ``shutdown()`` from another thread, ``server_close()``.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import zlib
from http import HTTPStatus
from http.client import HTTPMessage
from typing import Any
from urllib.parse import urlsplit

from cheroot import wsgi

try:  # the SDKs compress with brotli when it is installed on their side
    import brotli  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None

MAX_BODY_BYTES = 5 * 1024 * 1024


class Reply:
    """What to answer: status, body (bytes or a JSON-able value), content type, extra headers."""

    def __init__(self, status: int, body: Any, content_type: str = "application/json", headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.content_type, self.headers = status, body, content_type, dict(headers or {})

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode() + b"\n"


# A handler returns this to drop the connection without an answer (a service that is down).
DROP_CONNECTION = Reply(0, b"")


class BodyError(ValueError):
    """The request body cannot be read as sent (bad or unknown Content-Encoding)."""

    status = 400


class UnsupportedEncoding(BodyError):
    status = 415


class BodyTooLarge(BodyError):
    status = 413


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit:
        raise BodyTooLarge(f"the decoded body is larger than {limit} bytes")
    if not inflater.eof:
        raise zlib.error("the compressed body is truncated")
    return out


def decode_body(body: bytes, content_encoding: str, limit: int = MAX_BODY_BYTES) -> bytes:
    """Undo Content-Encoding (gzip, deflate, br) into at most `limit` bytes; BodyError otherwise."""
    encoding = content_encoding.strip().lower()
    try:
        if encoding in ("", "identity"):
            return body
        if encoding in ("gzip", "x-gzip"):
            return _inflate(body, 16 + zlib.MAX_WBITS, limit)
        if encoding == "deflate":
            try:
                return _inflate(body, zlib.MAX_WBITS, limit)  # zlib-wrapped, as the RFC says
            except zlib.error:
                return _inflate(body, -zlib.MAX_WBITS, limit)  # raw deflate, as some clients send
        if encoding == "br" and brotli is not None:
            out = brotli.decompress(body)
            if len(out) > limit:
                raise BodyTooLarge(f"the decoded body is larger than {limit} bytes")
            return out
    except (OSError, EOFError, zlib.error) as exc:
        raise BodyError(f"body is not valid {encoding}: {exc}") from None
    except Exception as exc:  # brotli.error is not an OSError
        if brotli is not None and isinstance(exc, brotli.error):
            raise BodyError(f"body is not valid {encoding}: {exc}") from None
        raise
    raise UnsupportedEncoding(f"unsupported Content-Encoding {content_encoding!r}")


class RequestHandler:
    """One request, as the stand-in sees it; subclasses add ``do_<METHOD>`` methods returning a Reply."""

    service = "standin"  # says what it is: never mistaken for the real service
    max_body_bytes = MAX_BODY_BYTES

    def __init__(self, server: StandinServer, request: _Request, raw_body: bytes) -> None:
        self.server = server
        self.command = request.method
        self.path = request.raw_path
        self.headers = request.headers
        self.client_address = (request.remote, 0)
        self._raw_body = raw_body
        self._sent: Reply | None = None

    def body(self) -> bytes:
        """The request body with its Content-Encoding undone (BodyError when it cannot be)."""
        return decode_body(self._raw_body, self.headers.get("Content-Encoding", ""), self.max_body_bytes)

    def handle(self) -> Reply:
        method = getattr(self, f"do_{self.command}", None)
        if method is None:
            return Reply(405, {"error": f"{self.command} not allowed"})
        result = method()
        if result is None and self._sent is None:
            raise RuntimeError(f"{type(self).__name__}.do_{self.command} gave no reply")
        return result if result is not None else self._sent

    def _send(self, reply: Reply) -> Reply:
        """Answer with `reply` (http.server's handlers answered so; returning it does the same)."""
        self._sent = reply
        return reply

    def log_path(self) -> str:
        """The path as logged: without the query, where clients may put keys."""
        return urlsplit(self.path).path


class _Gateway(wsgi.Gateway_10):
    """cheroot's WSGI 1.0 gateway that also hands the app the connection, to drop it on purpose."""

    def get_environ(self):
        environ = super().get_environ()
        environ["standin.connection"] = self.req.conn
        return environ


def _request_headers(environ: dict[str, Any]) -> HTTPMessage:
    """The request's headers as http.server gave them (case-insensitive ``get``)."""
    headers = HTTPMessage()
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").title()] = value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers[key.replace("_", "-").title()] = value
    return headers


class StandinServer:
    """cheroot's threaded WSGI server with socketserver's surface; requests go to `handler_class`."""

    def __init__(self, address: tuple[str, int], handler_class: type[RequestHandler], **config: Any) -> None:
        self.handler_class = handler_class
        self.config = config
        self._server = wsgi.Server(address, self._app, numthreads=8, server_name=handler_class.service)
        self._server.gateway = _Gateway
        self._server.max_request_body_size = handler_class.max_body_bytes
        self._server.expiration_interval = 0.05  # how soon shutdown() is noticed (the default is 0.5 s)
        self._server.prepare()  # binds: a taken port fails here, port 0 is resolved
        self.server_address = tuple(self._server.bind_addr[:2])

    def _app(self, environ: dict[str, Any], start_response) -> list[bytes]:
        request = _Request(environ)
        handler = self.handler_class(self, request, environ["wsgi.input"].read())
        try:
            reply = handler.handle()
        except BodyError as exc:
            reply = Reply(exc.status, {"error": str(exc)})
        outcome = "dropped" if reply is DROP_CONNECTION else reply.status
        sys.stderr.write(f"{handler.service}: {request.remote} \"{request.method} {handler.log_path()}\" {outcome}\n")
        if reply is DROP_CONNECTION:
            # Like a service that is down: the connection ends with no answer at all.
            environ["standin.connection"].socket.shutdown(socket.SHUT_RDWR)
            reply = Reply(503, b"", "text/plain")  # never reaches the client
        payload = reply.payload()
        headers = {"Content-Type": reply.content_type, "Content-Length": str(len(payload)), **reply.headers}
        start_response(f"{reply.status} {HTTPStatus(reply.status).phrase}", list(headers.items()))
        return [payload]

    @property
    def socket(self) -> socket.socket:
        """The listening socket (socketserver's attribute: a test wraps it in TLS)."""
        return self._server.socket

    @socket.setter
    def socket(self, value: socket.socket) -> None:
        self._server.socket = value

    def serve_forever(self, poll_interval: float | None = None) -> None:
        """Serve until `shutdown()`."""
        del poll_interval  # socketserver's argument; shutdown is noticed within expiration_interval
        self._server.serve()

    def shutdown(self) -> None:
        """Stop serving (from another thread): the listener closes, open connections end."""
        self._server.stop()

    def server_close(self) -> None:
        """Release the listening socket (a no-op after shutdown())."""
        self._server.stop()


class _Request:
    """What a handler reads of a WSGI request."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.method = environ["REQUEST_METHOD"]
        self.raw_path = environ["REQUEST_URI"]  # as sent: not percent-decoded, with the query
        self.headers = _request_headers(environ)
        self.remote = environ.get("REMOTE_ADDR", "")


def start_in_thread(server: StandinServer) -> threading.Thread:
    """Serve in a daemon thread (for tests); stop with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def read_secret_file(path: str | None) -> str | None:
    """A secret's value from its file (so it is not on the command line), or None."""
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        return f.read().strip() or None


def serve(server: StandinServer, banner: str) -> int:
    """Serve until interrupted; the CLI entry points end here."""
    print(banner, file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
