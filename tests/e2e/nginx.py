"""Debian's nginx as a subprocess on loopback, in front of several webhook processes.

The configuration is generated from `nginx.conf.in` into a temporary prefix (pid, logs and
temporary files there), so it needs neither root nor anything under /etc or /var.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx.conf.in")


def nginx_binary() -> str | None:
    """The nginx executable (Debian puts it in /usr/sbin, not always on PATH), or None."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    return found if found and os.access(found, os.X_OK) else None


class Nginx:
    """nginx listening on a loopback port, balancing `path` over the upstream ports."""

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
            TEMPLATE.read_text()
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
