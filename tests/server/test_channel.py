"""krait/server/channel.py over a socketpair, with Apps over files in a temp folder and a stand-in for the
worker pool: a request whose job a reload handed back (Reloaded) is routed again with the server's new App
and run on the new generation, never answered by a mix of the two."""

import errno
import os
import socket
import threading

from krait import limits
from krait.config import Route, SiteConfig
from krait.errors import Reloaded
from krait.pool import jobs
from krait.server.channel import Channel
from krait.server.dispatch import App
from krait.server.gate import FairGate
from krait.settings import Settings
from tests.helpers import read_all, write_site


class Server:
    """The attributes of krait.server.listener.Server that a Channel reads."""

    tls = None
    scheme = "http"
    trusted_proxies: frozenset = frozenset()

    def __init__(self, app, pool, settings):
        self.app, self.pool, self.settings = app, pool, settings
        self.gate = FairGate(limits.GATE_SLOTS)

    def logs_access(self):
        return False

    def log_access(self, *args):
        pass


class ReloadingPool:
    """Commits generation 1 (and the server's new App) just as the first job arrives, as a reload may."""

    def __init__(self, server_box, new_app):
        self.server_box, self.new_app = server_box, new_app
        self.generation = 0
        self.ran: list[tuple[str, int | None]] = []

    def run(self, job, timeout, generation=None):
        self.ran.append((job.rel_path, generation))
        if self.generation == 0:
            self.generation = 1
            self.server_box[0].app = self.new_app
        if generation not in (None, self.generation):
            raise Reloaded()
        return jobs.Result(200, "OK", (), job.rel_path.encode(), "text/plain")


def test_a_request_handed_back_by_a_reload_is_routed_again_with_the_new_app(tmp_path):
    site = write_site(tmp_path / "site", {"old.py": "", "new.py": ""})
    settings = Settings(site_root=str(site))
    old = App(settings, SiteConfig(routes=(Route(url="/x", target="/old.py").as_tuple(),)), 0)
    new = App(settings, SiteConfig(routes=(Route(url="/x", target="/new.py").as_tuple(),)), 1)
    box: list = []
    pool = ReloadingPool(box, new)
    server = Server(old, pool, settings)
    box.append(server)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        thread = threading.Thread(target=Channel(server, theirs, ("127.0.0.1", 1)).run)
        thread.start()
        thread.join(10)
        theirs.shutdown(socket.SHUT_WR)
        ours.settimeout(5)
        response = read_all(ours)
    assert response.startswith(b"HTTP/1.1 200 OK\r\n") and response.endswith(b"\r\n\r\nnew.py")
    assert pool.ran == [("old.py", 0), ("new.py", 1)]


def test_a_body_whose_spool_file_cannot_be_finished_is_deleted(tmp_path, monkeypatch):
    # A full disk fails the spool file's last flush (in Body.finish()): its file must go all the same.
    from krait.server import bodies

    site = write_site(tmp_path / "site", {"up.py": ""})
    settings = Settings(site_root=str(site))
    server = Server(App(settings, SiteConfig(routes=(Route("POST", url="/up", target="/up.py").as_tuple(),)), 0),
                    None, settings)
    server.bodies = bodies.BodySpool(threshold=10)
    spooled = []

    def full_disk(suffix, dir):
        path = os.path.join(dir, "spooled" + suffix)
        open(path, "wb").close()
        spooled.append(path)
        return os.open("/dev/full", os.O_WRONLY), path  # every write to it fails with ENOSPC

    monkeypatch.setattr(bodies.tempfile, "mkstemp", full_disk)
    failures = []

    def serve(sock):
        try:
            Channel(server, sock, ("127.0.0.1", 1)).run()
        except OSError as exc:
            failures.append(exc)

    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.sendall(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + b"x" * 100)
        thread = threading.Thread(target=serve, args=(theirs,))
        thread.start()
        thread.join(10)
    assert failures and failures[0].errno == errno.ENOSPC
    assert spooled and not os.path.exists(spooled[0])
    server.bodies.close()
