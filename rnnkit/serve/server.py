"""The playground's HTTP server: the static page and the JSON API, on Python's standard library alone.

    GET  /                      the page (static/index.html); GET /static/NAME its files, from the package
    GET  /api/limits            what a request may ask for (`api.LIMITS`)
    GET  /api/model             the loaded model's description, or {"loaded": false}
    POST /api/model             a model file's bytes (application/octet-stream): load it instead
    POST /api/trace, /api/gradient-norms               `api.py` (NumPy only)
    POST /api/activations, /api/generate,              `inside.py` (needs a loaded language model)
         /api/model-gradient-norms
    POST /api/classify                                 `inside_classifier.py` (needs a loaded text classifier)

Every error is JSON {"error": "one line"} with a 4xx status (500 for a bug, still one line; the traceback goes
to the server's stderr only): bad JSON, a body over the limit (413, before reading it), unknown paths (404).
The server binds 127.0.0.1 unless told otherwise, and torch is imported only when a model is loaded.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from .api import LIMITS, ApiError, gradient_norms_payload, trace_payload

__all__ = ["STATIC", "Playground", "make_server"]

STATIC = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml",
                 ".png": "image/png"}
# Nothing from elsewhere: the page must work offline, so it may load only what this server sends.
SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class Playground:
    """What the server serves: the API functions and the loaded model (None until one is)."""

    def __init__(self, model_path: str | Path | None = None):
        self.lock = threading.Lock()  # one model; requests that use it take turns
        self.model = None
        if model_path is not None:
            self.load(model_path)

    def load(self, path: str | Path, name: str | None = None) -> dict:
        from .inside import open_model  # torch: only now

        model = open_model(path, name)
        with self.lock:
            self.model = model
        return model.info()

    def upload(self, data: bytes, name: str) -> dict:
        """A model file sent as bytes: written to a temporary file, read by rnnkit's loader, deleted."""
        with tempfile.TemporaryDirectory(prefix="rnnkit-serve-") as folder:
            path = Path(folder) / "model.safetensors"
            path.write_bytes(data)
            return self.load(path, name)

    def info(self) -> dict:
        return self.model.info() if self.model is not None else {"loaded": False}

    def with_model(self, method: str, request, path: str) -> dict:
        if self.model is None:
            raise ApiError("no model is loaded: start with rnnkit serve --model runs/NAME, or upload a "
                           "model.safetensors on the page", HTTPStatus.CONFLICT)
        with self.lock:
            model = self.model
            if not hasattr(model, method):
                needs = "a text classifier" if path == "/api/classify" else "a language model"
                raise ApiError(f"POST {path} needs {needs}; the loaded model {model.info()['name']} is a "
                               f"{model.info()['task']!r} model", HTTPStatus.CONFLICT)
            return getattr(model, method)(request)

    def post(self, path: str, body: bytes, headers) -> dict:
        if path == "/api/model":
            name = unquote(headers.get("X-File-Name") or "") or "uploaded model"
            try:
                return self.upload(body, name[:200])
            except ValueError as e:  # CheckpointError included: not an rnnkit file
                raise ApiError(f"{name[:200]}: {e}".replace(str(tempfile.gettempdir()), "<tmp>")) from None
        request = decode_json(body)
        if path == "/api/trace":
            return trace_payload(request)
        if path == "/api/gradient-norms":
            return gradient_norms_payload(request)
        if path in MODEL_PATHS:
            return self.with_model(MODEL_PATHS[path], request, path)
        raise ApiError(f"no such API: POST {path}", HTTPStatus.NOT_FOUND)


MODEL_PATHS = {"/api/activations": "activations", "/api/generate": "generate",
               "/api/model-gradient-norms": "gradient_norms", "/api/classify": "classify"}  # -> the method
POST_PATHS = ("/api/model", "/api/trace", "/api/gradient-norms", *MODEL_PATHS)


def decode_json(body: bytes):
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ApiError(f"bad JSON: the body is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ApiError(f"bad JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None


def _finite(obj):
    """JSON has no NaN or infinity: they become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def encode_json(obj) -> bytes:
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


class Handler(BaseHTTPRequestHandler):
    """One request; `server.playground` holds the state."""

    server_version = "rnnkit-serve"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet: the terminal shows the address, not every request
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, encode_json(obj), "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": " ".join(str(message).split())})  # one line, always

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        try:
            if path == "/api/limits":
                return self._json(200, LIMITS.to_json())
            if path == "/api/model":
                return self._json(200, self.server.playground.info())
            if path in POST_PATHS:
                return self._error(405, f"{path} takes POST, not GET")
            if path.startswith("/api/"):
                return self._error(404, f"no such API: GET {path}")
            if path in ("/", "/index.html"):
                name = "index.html"
            elif path.startswith("/static/"):
                name = path.removeprefix("/static/")
            else:
                return self._error(404, f"not found: {path}")
            file = STATIC / name
            if not name or "/" in name or "\\" in name or name.startswith(".") or not file.is_file():
                return self._error(404, f"not found: {path}")
            self._send(200, file.read_bytes(), CONTENT_TYPES.get(file.suffix, "application/octet-stream"))
        except Exception as e:  # noqa: BLE001 -- a bug must not leave the client without an answer
            self._internal(e)

    do_HEAD = do_GET

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        if path not in POST_PATHS:
            self._drain()
            return self._error(404, f"no such API: POST {path}")
        length = self.headers.get("Content-Length")
        limit = LIMITS.model_bytes if path == "/api/model" else LIMITS.body_bytes
        if length is None or not length.isdigit():
            self.close_connection = True
            return self._error(411, "the request needs a Content-Length header")
        if int(length) > limit:
            self.close_connection = True  # the body is not read
            what = "a model file" if path == "/api/model" else "a JSON request"
            return self._error(413, f"the body is {int(length):,} bytes; the server's limit for {what} is "
                               f"{limit:,} bytes")
        body = self.rfile.read(int(length))
        try:
            self._json(200, self.server.playground.post(path, body, self.headers))
        except ApiError as e:
            self._error(e.status, str(e))
        except Exception as e:  # noqa: BLE001
            self._internal(e)

    def _drain(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= LIMITS.body_bytes:
            self.rfile.read(int(length))
        else:
            self.close_connection = True

    def _internal(self, e: Exception) -> None:
        traceback.print_exc(file=sys.stderr)
        self._error(500, f"internal error: {type(e).__name__}: {e}")


def make_server(host: str = "127.0.0.1", port: int = 8000, model: str | Path | None = None,
                verbose: bool = False) -> ThreadingHTTPServer:
    """The server, bound and ready for `serve_forever()`; port 0 picks a free one (`server.server_port`)."""
    playground = Playground(model)  # a bad model file fails here, before the port is taken
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.playground, server.verbose = playground, verbose
    return server
