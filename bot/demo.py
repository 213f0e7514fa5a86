"""`safewell demo`: the emulator, the real bot and a web page to play every role side by side.

Telegram is unreachable in many test set-ups, so the demo starts the local Bot API emulator,
creates the Example City officers' forum with sample people, runs the bot exactly as
`safewell run` does (polling the emulator) and serves a page on 127.0.0.1 where a person acts as
citizens, officers and communications staff. The page only shows chats, so it works unchanged
with every feature of the bot.

The page talks to this module's small aiohttp app, which proxies a whitelist of the emulator's
control API (the emulator itself listens on another loopback port).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.app import Safewell, build, run_polling
from bot.config import ConfigError, Settings, load_settings
from bot.db import repo
from bot.db.models import Role
from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import CONTROL_PREFIX, EmulatorServer

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "emulator" / "web"
REPO_KNOWLEDGE = Path(__file__).resolve().parents[1] / "knowledge"
DEFAULT_PORT = 8088
FORUM_ID = -1001000000001
FORUM_TITLE = "Example City duty officers"
FIRST_CITIZEN_ID = 1001
# How long the page's long poll on the emulator's events may last.
EVENTS_TIMEOUT = 25.0

DEMO_KEY = web.AppKey("demo", object)
_LANGUAGE_RE = re.compile(r"[a-z]{2,3}(-[a-zA-Z0-9]{1,8})?")
# Control API routes the page may use: observe, act as a person. Nothing that resets the world,
# injects faults or forges callbacks, so a stray request cannot break the demo.
_PROXY_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("GET", re.compile(r"state")),
    ("GET", re.compile(r"events")),
    ("GET", re.compile(r"chats/-?\d+/transcript")),
    ("GET", re.compile(r"chats/-?\d+/topics")),
    ("POST", re.compile(r"users/\d+/send")),
    ("POST", re.compile(r"users/\d+/press")),
)
_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Person:
    """A sample person of the demo (all fictional, Example City)."""

    id: int
    name: str
    role: str  # "citizen", "officer", "staff" or "admin"
    language_code: str = "en"

    def to_json(self) -> dict[str, Any]:
        """The person as the page sees them."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "language_code": self.language_code,
        }


OFFICERS = (Person(9001, "Officer Wang", "officer"), Person(9002, "Officer Li", "officer"))
STAFF = (Person(9201, "Comms Chen", "staff"),)
ADMINS = (Person(9100, "Admin Sun", "admin"),)
CITIZENS = (
    Person(FIRST_CITIZEN_ID, "Ann Lee", "citizen", "en"),
    Person(FIRST_CITIZEN_ID + 1, "李明", "citizen", "zh-hans"),
)


@dataclass
class DemoOptions:
    """How to run the demo; the defaults suit `safewell demo` on a laptop."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  # 0 picks a free port
    emulator_port: int = 0
    database_url: str | None = None  # None: a fresh SQLite file in a temporary directory
    knowledge_dir: Path | None = None  # None: FAQ_KNOWLEDGE_DIR, else the repository's sample
    env_file: str | Path | None = None  # settings file for everything the demo does not fix
    limits: bool = True  # Telegram's flood limits in the emulator


@dataclass
class Demo:
    """A running demo: the emulator, the bot and the page; `stop()` releases everything."""

    url: str
    emulator: EmulatorServer
    app: Safewell
    settings: Settings
    runner: web.AppRunner
    polling: asyncio.Task[None]
    citizens: list[Person]
    client: aiohttp.ClientSession
    tempdir: tempfile.TemporaryDirectory[str] | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def people(self) -> list[Person]:
        """Everyone the page can act as."""
        return [*self.citizens, *OFFICERS, *STAFF, *ADMINS]

    async def add_citizen(self, name: str, language_code: str) -> Person:
        """Create one more citizen in the emulator (they write to the bot from the page)."""
        new_id = max(p.id for p in self.citizens) + 1
        person = Person(new_id, name, "citizen", language_code)
        self.emulator.emulator.create_user(new_id, first_name=name, language_code=language_code)
        self.citizens.append(person)
        return person

    async def stop(self) -> None:
        """Stop polling (in-flight updates finish), then the page, then the emulator."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(RuntimeError):  # polling may have stopped on its own
            self.app.stop()
        with contextlib.suppress(Exception):
            await self.polling
        # Release the page's long polls before closing the page server, so it need not wait.
        await self.emulator.emulator.shutdown()
        await self.runner.cleanup()
        await self.client.close()
        await self.emulator.stop()
        if self.tempdir is not None:
            self.tempdir.cleanup()


def demo_settings(options: DemoOptions, emulator: EmulatorServer, database_url: str) -> Settings:
    """Settings for the bot: the user's file for the rest, the emulator and the demo for these."""
    knowledge = options.knowledge_dir
    if knowledge is None:
        configured = load_settings(env_file=options.env_file).faq.knowledge_dir
        knowledge = configured if configured.is_dir() else REPO_KNOWLEDGE
    overrides: dict[str, dict[str, Any]] = {
        "bot": {
            "token": emulator.token,
            "api_base_url": emulator.base_url,
            "admin_ids": [p.id for p in ADMINS],
        },
        "database": {"url": database_url},
        # Never a production Redis or webhook: the demo is one self-contained process.
        "redis": {"url": None},
        "webhook": {"url": None},
        "officers": {"chat_id": FORUM_ID, "backup_chat_id": None},
        "faq": {"knowledge_dir": knowledge},
    }
    return load_settings(env_file=options.env_file, **overrides)


def _populate(emulator: Emulator) -> None:
    """The sample world: the officers' forum, staff and citizens."""
    for person in (*OFFICERS, *STAFF, *ADMINS, *CITIZENS):
        emulator.create_user(person.id, first_name=person.name, language_code=person.language_code)
    emulator.create_chat(
        chat_type="supergroup",
        title=FORUM_TITLE,
        is_forum=True,
        members=[p.id for p in (*OFFICERS, *ADMINS)],
        admins=[p.id for p in ADMINS],
        chat_id=FORUM_ID,
    )
    # Staff and admins have started the bot, as in a real bureau: an alert needing two people
    # reaches the other one for approval without anyone writing to the bot first.
    for person in (*STAFF, *ADMINS):
        emulator.private_chat(person.id)


async def _register_staff(app: Safewell) -> None:
    async with app.sessionmaker() as session:
        for people, role in ((OFFICERS, Role.OFFICER), (STAFF, Role.STAFF), (ADMINS, Role.ADMIN)):
            for person in people:
                await repo.add_role(session, person.id, role, display_name=person.name)
        await session.commit()


async def start_demo(options: DemoOptions | None = None) -> Demo:
    """Start the emulator, the bot and the page; returns a handle whose `url` is the page."""
    options = options or DemoOptions()
    # The page's port first: a busy port is said at once, before minutes of loading.
    page_socket = _listen(options.host, options.port)
    emulator = EmulatorServer(
        Emulator(EmulatorConfig(limits=Limits(enabled=options.limits))), port=options.emulator_port
    )
    await emulator.start()
    tempdir: tempfile.TemporaryDirectory[str] | None = None
    app: Safewell | None = None
    try:
        database_url = options.database_url
        if database_url is None:
            tempdir = tempfile.TemporaryDirectory(prefix="safewell-demo-")
            database_url = f"sqlite+aiosqlite:///{Path(tempdir.name) / 'demo.sqlite3'}"
        settings = demo_settings(options, emulator, database_url)
        _populate(emulator.emulator)
        app = await build(settings)
        try:
            await _register_staff(app)
        except BaseException:
            await app.close()
            raise
        polling = asyncio.create_task(run_polling(app, handle_signals=False), name="demo-polling")
        client = aiohttp.ClientSession()
        demo = Demo(
            url="",
            emulator=emulator,
            app=app,
            settings=settings,
            runner=web.AppRunner(
                create_page_app(), shutdown_timeout=1.0, handler_cancellation=True, access_log=None
            ),
            polling=polling,
            citizens=list(CITIZENS),
            client=client,
            tempdir=tempdir,
        )
        demo.runner.app[DEMO_KEY] = demo
        await _polling_started(emulator.emulator, polling)
        await demo.runner.setup()
        await web.SockSite(demo.runner, page_socket).start()
        port = demo.runner.addresses[0][1]
        demo.url = f"http://{_url_host(options.host)}:{port}/"
        return demo
    except BaseException:
        page_socket.close()
        if app is None:
            await emulator.stop()
            if tempdir is not None:
                tempdir.cleanup()
        raise


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket for the page, or a one-line error naming the option."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as error:
        raise ConfigError(
            f"--port: cannot listen on {host}:{port} ({error.strerror}); "
            "choose another port, or 0 for a free one"
        ) from None


async def _polling_started(emulator: Emulator, polling: asyncio.Task[None]) -> None:
    """Wait for the bot's first getUpdates: stopping polling before it started would hang."""
    for _ in range(500):
        if polling.done():
            polling.result()  # the bot failed to start: raise its error
            raise RuntimeError("the bot stopped before polling")
        if any(call["method"] == "getupdates" for call in emulator.calls):
            return
        await asyncio.sleep(0.02)
    raise RuntimeError("the bot did not start polling the emulator within 10 s")


def _url_host(host: str) -> str:
    if host in {"0.0.0.0", "::", ""}:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


async def run_demo(options: DemoOptions | None = None) -> None:
    """`safewell demo`: start, print the URL, run until Ctrl-C or SIGTERM, shut down cleanly."""
    demo = await start_demo(options)
    # The one line a newcomer needs, set apart from the logs; the per-update lines are noise
    # to them (shown with --log-level DEBUG).
    print(f"\n==> Safewell demo: open {demo.url}   (Ctrl-C stops it)\n", flush=True)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("bot.intake.inbox").setLevel(logging.WARNING)
    log.info("emulator (Bot API and control API) at %s", demo.emulator.base_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        waiter = asyncio.create_task(stop.wait())
        # The bot stopping on its own (a crash) also ends the demo.
        await asyncio.wait({waiter, demo.polling}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
        await demo.stop()


# ---------------------------------------------------------------------------- the page's server


def _demo(request: web.Request) -> Demo:
    demo = request.app[DEMO_KEY]
    assert isinstance(demo, Demo)
    return demo


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Only this machine's browser: other sites must not drive the demo from a visitor's tab.

    A Host check defeats DNS rebinding; requiring JSON bodies on writes forces a CORS preflight
    that this server never approves, so cross-site forms and fetches cannot act as a person.
    """
    host = (request.host or "").rsplit(":", 1)[0].strip("[]").lower()
    if host not in {"127.0.0.1", "localhost", "::1"} and host != _bound_host(request):
        return web.json_response({"ok": False, "error": "unexpected Host header"}, status=403)
    if request.method == "POST" and request.content_type != "application/json":
        return web.json_response({"ok": False, "error": "send JSON"}, status=415)
    response: web.StreamResponse = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _bound_host(request: web.Request) -> str | None:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return str(sockname[0]) if sockname else None


async def _index(request: web.Request) -> web.StreamResponse:
    response = web.FileResponse(WEB_DIR / "index.html")
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["Cache-Control"] = "no-cache"
    return response


async def _info(request: web.Request) -> web.Response:
    demo = _demo(request)
    bot = demo.emulator.emulator.default_bot.user
    by_role: dict[str, list[dict[str, Any]]] = {}
    for person in demo.people:
        by_role.setdefault(person.role + "s", []).append(person.to_json())
    return web.json_response(
        {
            "ok": True,
            "result": {
                "bot": {"id": bot.id, "name": bot.first_name, "username": bot.username},
                "forum": {"id": FORUM_ID, "title": FORUM_TITLE},
                "emulator_url": demo.emulator.base_url,
                "languages": demo.settings.bot.languages,
                **by_role,
            },
        }
    )


async def _add_citizen(request: web.Request) -> web.Response:
    demo = _demo(request)
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"ok": False, "error": "body must be JSON"}, status=400)
    name = str(body.get("name") or "").strip()[:64]
    language = str(body.get("language_code") or "en").strip()
    if not name:
        return web.json_response({"ok": False, "error": "a citizen needs a name"}, status=400)
    if not _LANGUAGE_RE.fullmatch(language):
        return web.json_response({"ok": False, "error": "language_code like en or zh"}, status=400)
    person = await demo.add_citizen(name, language)
    return web.json_response({"ok": True, "result": person.to_json()})


async def _proxy(request: web.Request) -> web.StreamResponse:
    """Forward a whitelisted control API call to the emulator and its answer back."""
    demo = _demo(request)
    tail = request.match_info["tail"]
    if not any(m == request.method and p.fullmatch(tail) for m, p in _PROXY_ROUTES):
        return web.json_response({"ok": False, "error": "not available from the page"}, status=404)
    query = dict(request.query)
    if tail == "events":
        query["timeout"] = str(min(float(query.get("timeout") or 0), EVENTS_TIMEOUT))
    body = await request.read() if request.body_exists else None
    try:
        async with demo.client.request(
            request.method,
            f"{demo.emulator.base_url}{CONTROL_PREFIX}/{tail}",
            params=query,
            data=body,
            headers={"Content-Type": "application/json"} if body else None,
            timeout=aiohttp.ClientTimeout(total=EVENTS_TIMEOUT + 10),
        ) as upstream:
            payload = await upstream.read()
            status = upstream.status
    except (aiohttp.ClientError, TimeoutError):
        return web.json_response({"ok": False, "error": "emulator unavailable"}, status=502)
    return web.Response(body=payload, status=status, content_type="application/json")


async def _file(request: web.Request) -> web.StreamResponse:
    """A photo or sticker's bytes for an <img>; other files download as attachments."""
    demo = _demo(request)
    stored = demo.emulator.emulator.files.get(request.match_info["file_id"])
    if stored is None:
        return web.json_response({"ok": False, "error": "no such file"}, status=404)
    kind = next((t for magic, t in _IMAGE_MAGIC if stored.data.startswith(magic)), None)
    if kind is None and stored.data[:4] == b"RIFF" and stored.data[8:12] == b"WEBP":
        kind = "image/webp"
    if kind is not None:
        return web.Response(body=stored.data, content_type=kind)
    name = re.sub(r"[^\w.-]", "_", stored.file_name or "file")
    return web.Response(
        body=stored.data,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def create_page_app() -> web.Application:
    """The page's aiohttp app: static files, the demo's info and the control API proxy."""
    app = web.Application(middlewares=[_guard], client_max_size=20 * 1024 * 1024)
    app.router.add_get("/", _index)
    app.router.add_get("/api/demo", _info)
    app.router.add_post("/api/citizens", _add_citizen)
    app.router.add_get("/api/files/{file_id}", _file)
    app.router.add_route("*", "/api/emu/{tail:.+}", _proxy)
    app.router.add_static("/static/", WEB_DIR, show_index=False, follow_symlinks=False)
    return app
