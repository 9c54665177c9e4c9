"""optuna-dashboard on a study's storage, served by a threaded wsgiref server until Ctrl-C."""

from __future__ import annotations

from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna

from larvastudy.errors import SpecError
from larvastudy.signals import forget_stop


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No access log: the terminal keeps the URL and the stop message only."""


def dashboard_server(storage: optuna.storages.BaseStorage, host: str = "127.0.0.1", port: int = 8080) -> WSGIServer:
    """A bound (not yet serving) optuna-dashboard server; port 0 picks a free port."""
    try:
        from optuna_dashboard import wsgi
    except ImportError:
        raise SpecError("optuna-dashboard is not installed; pip install 'larvastudy[dashboard]'") from None
    try:
        return make_server(host, port, wsgi(storage), server_class=_Server, handler_class=_QuietHandler)
    except OSError as error:
        raise SpecError(f"cannot listen on {host}:{port} ({error.strerror or error}); choose another --port") from None


def dashboard_url(server: WSGIServer, study_id: int | None = None) -> str:
    """The page of the server (IPv4 or a host name), or of one study on it."""
    host, port = server.server_address[:2]
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
