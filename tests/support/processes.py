"""Real processes for the crisis-path and scale-out tests and the benchmarks: the bot as a
process of its own (to kill -9, or to measure apart from the emulator), a TCP proxy in front of
PostgreSQL to take the database away and bring it back, Debian's nginx in front of several
webhook processes, and the loopback they meet on (a free port, whether the local Redis answers).
Imports nothing else from the test suite (the benchmarks use it too)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.emulator.server import EmulatorServer
from tests.support import KNOWLEDGE, REPO

# nginx's configuration, filled in per run (`Nginx.config`).
NGINX_TEMPLATE = Path(__file__).with_name("nginx.conf.in")


def free_port() -> int:
    """A loopback port nothing listens on (for a process to bind, or to find closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_answers() -> bool:
    """Whether a Redis server answers PING on 127.0.0.1:6379."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class TcpProxy:
    """Forwards a loopback port to a server; `cut()` drops every connection and refuses new
    ones (the database is away), `restore()` accepts again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, database_url: str) -> str:
        """The same database URL, through this proxy."""
        parsed = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return parsed.render_as_string(hide_password=False)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()


class BotProcess:
    """`python -m bot run` against the emulator, as a separate process that can be killed."""

    def __init__(
        self,
        emulator: EmulatorServer,
        database_url: str,
        workdir: Path,
        forum_id: int,
        webhook_port: int | None = None,
        settings: dict[str, str] | None = None,
        command: tuple[str, ...] = ("-m", "bot", "run"),
        public_url: str | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.emulator = emulator
        self.forum_id = forum_id
        self.settings = settings or {}
        self.database_url = database_url
        self.workdir = workdir
        self.webhook_port = webhook_port
        self.command = command  # what `python` runs (another bot, for the benchmarks)
        # The URL Telegram is told to call (a proxy in front of several processes); by
        # default the process's own port.
        self.public_url = public_url
        self.proc: asyncio.subprocess.Process | None = None
        self.runs = 0

    @property
    def failpoint(self) -> Path:
        return self.workdir / "failpoint"

    def arm(self, stage: str) -> None:
        """The running process kills itself when it next reaches this stage."""
        self.failpoint.write_text(stage)

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BOT_", "DATABASE_", "WEBHOOK_", "OFFICERS_", "INTAKE_"))
        }
        env.update(
            BOT_TOKEN=self.emulator.token,
            BOT_API_BASE_URL=self.emulator.base_url,
            DATABASE_URL=self.database_url,
            OFFICERS_CHAT_ID=str(self.forum_id),
            OFFICERS_LOOP_SECONDS="0.2",
            FAQ_KNOWLEDGE_DIR=str(KNOWLEDGE),
            INTAKE_LEASE_SECONDS="2",
            INTAKE_SPOOL_DIR=str(self.workdir / "spool"),
            SAFEWELL_FAILPOINTS=str(self.failpoint),
            PYTHONPATH=str(REPO),
        )
        env.update(self.settings)
        if self.webhook_port is not None:
            env.update(
                WEBHOOK_URL=self.public_url or f"http://127.0.0.1:{self.webhook_port}",
                WEBHOOK_HOST="127.0.0.1",
                WEBHOOK_PORT=str(self.webhook_port),
            )
        return env

    async def start(self) -> None:
        """Start the process and wait until it takes updates (polls, or set its webhook)."""
        self.runs += 1
        counts = self.emulator.emulator.calls_per_method
        method = "setwebhook" if self.webhook_port is not None else "getupdates"
        before = counts[method]
        with (self.workdir / f"bot-{self.runs}.log").open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *self.command,
                cwd=self.workdir,
                env=self.env(),
                stdout=log,
                stderr=log,
            )
        for _ in range(3000):
            if self.proc.returncode is not None:
                raise AssertionError(f"the bot exited at start: {self.log()}")
            if counts[method] > before and (
                self.webhook_port is None or await self._webhook_ready()
            ):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"the bot did not start: {self.log()}")

    async def _webhook_ready(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.webhook_port)
        except OSError:
            return False
        writer.close()
        return True

    def log(self) -> str:
        path = self.workdir / f"bot-{self.runs}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    async def killed(self, within: float = 30.0) -> int:
        """Wait for the process to die at its failpoint; its exit status."""
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), within)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def kill(self) -> None:
        """kill -9, at whatever point the process is."""
        assert self.proc is not None
        self.proc.kill()

    def __repr__(self) -> str:
        return f"BotProcess(runs={self.runs})"


def nginx_binary() -> str | None:
    """The nginx executable (Debian puts it in /usr/sbin, not always on PATH), or None."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    return found if found and os.access(found, os.X_OK) else None


class Nginx:
    """nginx listening on a loopback port, balancing `path` over the upstream ports.

    The configuration is generated from `nginx.conf.in` into a temporary prefix (pid, logs and
    temporary files there), so it needs neither root nor anything under /etc or /var.
    """

    def __init__(self, prefix: Path, port: int, upstreams: list[int], path: str) -> None:
        self.prefix = prefix
        self.port = port
        self.upstreams = upstreams
        self.path = path
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> Path:
        servers = "\n".join(
            # A refused connection marks the server down for a while; requests go to the rest.
            f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=3s;"
            for p in self.upstreams
        )
        text = (
            NGINX_TEMPLATE.read_text()
            .replace("@PREFIX@", str(self.prefix))
            .replace("@LISTEN@", f"127.0.0.1:{self.port}")
            .replace("@SERVERS@", servers)
            .replace("@WEBHOOK_PATH@", self.path)
        )
        self.prefix.mkdir(parents=True, exist_ok=True)
        path = self.prefix / "nginx.conf"
        path.write_text(text)
        return path

    async def start(self) -> None:
        binary = nginx_binary()
        assert binary is not None, "nginx is not installed"
        conf = self.config()
        log = (self.prefix / "stderr.log").open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            binary,
            "-c",
            str(conf),
            "-p",
            str(self.prefix),
            "-e",
            str(self.prefix / "error.log"),
            stdout=log,
            stderr=log,
        )
        log.close()
        for _ in range(250):
            if self.proc.returncode is not None:
                raise AssertionError(f"nginx exited: {self.log()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            return
        raise AssertionError(f"nginx did not listen: {self.log()}")

    def log(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.prefix / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def upstreams_used(self) -> dict[str, int]:
        """How many webhook requests each upstream answered (from the access log)."""
        counts: dict[str, int] = {}
        path = self.prefix / "access.log"
        if not path.exists():
            return counts
        for line in path.read_text().splitlines():
            fields = line.split("|")
            if len(fields) >= 4 and fields[0] == "200":
                # "$upstream_addr" lists every server tried, the one that answered last.
                addr = fields[1].split(",")[-1].strip()
                counts[addr] = counts.get(addr, 0) + 1
        return counts

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
