"""A small threaded TCP proxy that can break PostgreSQL connections on purpose.

``TcpProxy(target_port)`` listens on 127.0.0.1:<free port> and forwards to
the target.  Its :class:`Mode` can be switched at any time:

* ``PASS``: forward both ways.
* ``DROP``: close every existing connection and every new one right after
  accepting it (a clean FIN: the client reads "server closed the connection
  unexpectedly").
* ``RESET``: the same with an RST (``SO_LINGER`` 0): "connection reset by peer".
* ``STALL``: accept and never forward or answer; existing connections stop
  forwarding too (the kernel still acknowledges what the client sends, so
  TCP keepalives and ``tcp_user_timeout`` see a healthy peer).
* ``DROP_AFTER_COMMIT``: forward, but when the client sends a ``COMMIT``
  (simple or extended query protocol), forward it, cut the client off at
  once, and keep the server side open until the server has answered, so the
  commit lands but the client never hears back.  One-shot: the mode returns
  to ``PASS`` afterwards.
* ``DROP_BEFORE_COMMIT``: the same, but the ``COMMIT`` is never forwarded:
  the transaction is rolled back by the server.  Also one-shot.

:meth:`TcpProxy.drop_on` arms a similar one-shot trigger for any statement:
when a client message contains the given bytes, the proxy switches to a mode
(for example ``DROP``) before forwarding it, which starts an outage at an
exact point of a command.

Every accepted connection counts as an attempt (:attr:`TcpProxy.attempts`).
"""

from __future__ import annotations

import enum
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_CANCEL_REQUEST = 80877102
_POLL = 0.05


class Mode(enum.Enum):
    PASS = "pass"
    DROP = "drop"
    RESET = "reset"
    STALL = "stall"
    DROP_AFTER_COMMIT = "drop_after_commit"
    DROP_BEFORE_COMMIT = "drop_before_commit"


class _ClientMessages:
    """Splits the client→server byte stream into PostgreSQL protocol messages."""

    def __init__(self) -> None:
        self._buffer = b""
        self._startup = True

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(type, whole message bytes)``; ``type`` is b"" for startup packets."""
        self._buffer += data
        while True:
            if self._startup:
                if len(self._buffer) < 8:
                    return
                (length,) = struct.unpack("!I", self._buffer[:4])
                if len(self._buffer) < length:
                    return
                (code,) = struct.unpack("!I", self._buffer[4:8])
                message, self._buffer = self._buffer[:length], self._buffer[length:]
                if code not in (_SSL_REQUEST, _GSSENC_REQUEST, _CANCEL_REQUEST):
                    self._startup = False  # the StartupMessage itself
                yield b"", message
            else:
                if len(self._buffer) < 5:
                    return
                (length,) = struct.unpack("!I", self._buffer[1:5])
                if len(self._buffer) < 1 + length:
                    return
                message, self._buffer = self._buffer[: 1 + length], self._buffer[1 + length :]
                yield message[:1], message


def is_commit(kind: bytes, message: bytes) -> bool:
    """A simple Query or an extended-protocol Parse whose statement is COMMIT."""
    if kind == b"Q":
        sql = message[5:].rstrip(b"\x00")
    elif kind == b"P":
        body = message[5:]
        _name, _, rest = body.partition(b"\x00")
        sql, _, _ = rest.partition(b"\x00")
    else:
        return False
    return sql.strip().rstrip(b";").strip().upper() in (b"COMMIT", b"END", b"COMMIT TRANSACTION")


class _Link:
    """One proxied connection: client socket, upstream socket, and a pump thread."""

    def __init__(self, proxy: TcpProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.messages = _ClientMessages()
        self.kill: Mode | None = None  # set by the proxy: DROP or RESET
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tcp-proxy-link", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def is_killed(self) -> bool:
        """The proxy asked this link to end (set from another thread)."""
        return self.kill is not None

    def _close(self, how: Mode = Mode.DROP) -> None:
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            with suppress(OSError):
                if how is Mode.RESET:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    sock.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                sock.close()
        self.closed.set()

    def _run(self) -> None:
        try:
            self._pump()
        except OSError:
            pass
        finally:
            self._close(self.kill or Mode.DROP)
            self.proxy._forget(self)

    def _pump(self) -> None:
        proxy = self.proxy
        self.upstream = socket.create_connection(proxy.target, timeout=5)
        self.upstream.settimeout(None)
        while True:
            if self.is_killed():
                return
            if proxy.is_stalled():
                time.sleep(_POLL)
                continue
            readable, _, _ = select.select([self.client, self.upstream], [], [], _POLL)
            if self.is_killed():
                return
            if proxy.is_stalled():
                continue
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                if sock is self.upstream:
                    self.client.sendall(data)
                elif not self._forward_client(data):
                    return

    def _forward_client(self, data: bytes) -> bool:
        """Forward client bytes; False when the connection must end here."""
        assert self.upstream is not None
        proxy = self.proxy
        for kind, message in self.messages.feed(data):
            trigger = proxy._take_trigger(message)
            if trigger is not None:
                # The outage starts before this statement reaches the server:
                # its connection is cut, or (STALL) left open forwarding nothing.
                proxy.set_mode(trigger)
                return trigger is Mode.STALL
            if proxy.mode is Mode.DROP_BEFORE_COMMIT and is_commit(kind, message):
                proxy._commit_dropped()
                return False
            self.upstream.sendall(message)
            if proxy.mode is Mode.DROP_AFTER_COMMIT and is_commit(kind, message):
                proxy._commit_dropped()
                self._cut_client_wait_for_server()
                return False
        return True

    def _cut_client_wait_for_server(self) -> None:
        """The client loses the connection; the server still finishes the COMMIT."""
        with suppress(OSError):
            self.client.shutdown(socket.SHUT_RDWR)
        with suppress(OSError):
            self.client.close()
        assert self.upstream is not None
        answer = b""
        deadline = time.monotonic() + 5
        # ReadyForQuery ('Z') follows CommandComplete: the COMMIT is done.
        while b"Z\x00\x00\x00\x05" not in answer and time.monotonic() < deadline:
            readable, _, _ = select.select([self.upstream], [], [], 0.1)
            if readable:
                chunk = self.upstream.recv(65536)
                if not chunk:
                    break
                answer += chunk
        self.proxy.commit_answers.append(answer)


class TcpProxy:
    """Listens on 127.0.0.1:``port``, forwards to ``target``; see the module docstring."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._stalled: list[socket.socket] = []
        self._mode = Mode.PASS
        self._triggers: list[tuple[bytes, Mode]] = []
        self._stopping = threading.Event()
        self.attempts = 0
        self.attempts_by_mode: dict[Mode, int] = {mode: 0 for mode in Mode}
        self.commits_dropped = 0
        self.triggered_at: float | None = None  # when a drop_on trigger fired (monotonic)
        self.commit_answers: list[bytes] = []
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._thread.start()

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    # -- control ----------------------------------------------------------------
    @property
    def mode(self) -> Mode:
        return self._mode

    def is_stalled(self) -> bool:
        return self._mode is Mode.STALL

    def set_mode(self, mode: Mode) -> None:
        """Switch mode; DROP/RESET also end every open connection (waits until they are)."""
        with self._lock:
            self._mode = mode
            links = list(self._links)
            stalled = self._stalled if mode is not Mode.STALL else []
            if mode is not Mode.STALL:
                self._stalled = []
        for sock in stalled:
            with suppress(OSError):
                sock.close()
        if mode in (Mode.DROP, Mode.RESET):
            for link in links:
                link.kill = mode
            for link in links:
                if link.thread is not threading.current_thread():
                    link.closed.wait(5)

    def drop_on(self, needle: bytes, mode: Mode = Mode.DROP) -> None:
        """One-shot: switch to ``mode`` when a client message contains ``needle``.

        That message is never forwarded; its connection is cut (DROP, RESET)
        or stays open with nothing forwarded either way (STALL)."""
        with self._lock:
            self._triggers.append((needle, mode))

    def _take_trigger(self, message: bytes) -> Mode | None:
        with self._lock:
            for index, (needle, mode) in enumerate(self._triggers):
                if needle in message:
                    del self._triggers[index]
                    self.triggered_at = time.monotonic()
                    return mode
        return None

    def _commit_dropped(self) -> None:
        with self._lock:
            self.commits_dropped += 1
            self._mode = Mode.PASS

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._links) + len(self._stalled)

    @contextmanager
    def mode_during(self, mode: Mode) -> Iterator[None]:
        self.set_mode(mode)
        try:
            yield
        finally:
            self.set_mode(Mode.PASS)

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(5)  # the accept loop notices within one poll
        with suppress(OSError):
            self._listener.close()
        self.set_mode(Mode.DROP)

    # -- accepting ----------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                readable, _, _ = select.select([self._listener], [], [], _POLL)
                if not readable:
                    continue
                client, _ = self._listener.accept()
            except (OSError, ValueError):
                if self._stopping.is_set():
                    return
                continue
            with self._lock:
                mode = self._mode
                self.attempts += 1
                self.attempts_by_mode[mode] += 1
            if mode is Mode.DROP:
                with suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
                client.close()
            elif mode is Mode.RESET:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
            elif mode is Mode.STALL:
                with self._lock:
                    self._stalled.append(client)
            else:
                link = _Link(self, client)
                with self._lock:
                    self._links.add(link)
                link.start()
