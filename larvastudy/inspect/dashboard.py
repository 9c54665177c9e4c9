"""optuna-dashboard on a study's storage, served by a threaded wsgiref server until Ctrl-C.

optuna-dashboard has no authentication: anyone who reaches its port can read every study in the
storage and change or delete them through its API. The server therefore listens on this machine
only (loopback) unless the caller exposes it, and an exposed server is read-only: it answers every
request that would change something (POST, PUT, PATCH, DELETE) with 403.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna

from larvastudy.errors import SpecError
from larvastudy.signals import forget_stop


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No access log: the terminal keeps the URL and the stop message only."""


#: HTTP methods that only read.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is this machine's own (``''`` and ``0`` mean every interface)."""
    if host.strip() in ("", "0", "*"):
        return False
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        raise SpecError(f"--host {host!r} is not an address or host name of this machine") from None
    return all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses)


def read_only(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """``app`` answering every request but a read (:data:`READ_METHODS`) with 403 Forbidden."""
    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET").upper() in READ_METHODS:
            return app(environ, start_response)
        body = b"read-only: this dashboard is exposed to the network without authentication\n"
        start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    return guarded


def dashboard_server(storage: optuna.storages.BaseStorage, host: str = "127.0.0.1", port: int = 8080,
                     expose: bool = False) -> WSGIServer:
    """A bound (not yet serving) optuna-dashboard server; port 0 picks a free port. A ``host`` other than
    loopback is refused unless ``expose``, and then the server is read-only (see the module)."""
    local = is_loopback(host)
    if not (local or expose):
        raise SpecError(f"--host {host!r} would serve the dashboard to the network, and optuna-dashboard has no "
                        "login: anyone reaching the port could delete studies; add --expose to serve it read-only")
    try:
        from optuna_dashboard import wsgi
    except ImportError:
        raise SpecError("optuna-dashboard is not installed; pip install 'larvastudy[dashboard]'") from None
    app = wsgi(storage) if local else read_only(wsgi(storage))
    try:
        return make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)
    except OSError as error:
        raise SpecError(f"cannot listen on {host}:{port} ({error.strerror or error}); choose another --port") from None


def dashboard_url(server: WSGIServer, study_id: int | None = None) -> str:
    """The page of the server (IPv4 or a host name), or of one study on it."""
    host, port = server.server_address[:2]
    host = host.decode() if isinstance(host, bytes) else host
    base = f"http://{host}:{port}/dashboard"
    return base if study_id is None else f"{base}/studies/{study_id}"


def serve(server: WSGIServer) -> None:
    """Serve until Ctrl-C, SIGTERM or SIGHUP (a KeyboardInterrupt: the way to stop it, not an interruption), then
    close the socket."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        forget_stop()
    finally:
        server.server_close()
