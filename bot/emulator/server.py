"""HTTP face of the emulator: the Bot API routes, file downloads and the JSON control API."""

from __future__ import annotations

import base64
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import asdict, fields
from typing import Any

from aiohttp import BodyPartReader, web

from bot.emulator.core import DEFAULT_TOKEN, Emulator, EmulatorConfig
from bot.emulator.errors import ApiError, ControlError
from bot.emulator.faults import DropConnection, Fault
from bot.emulator.limits import Limits
from bot.emulator.params import Params, Upload

__all__ = [
    "DEFAULT_TOKEN",
    "Emulator",
    "EmulatorConfig",
    "EmulatorServer",
    "create_app",
    "start",
]

log = logging.getLogger(__name__)
CONTROL_PREFIX = "/_emulator"
EMULATOR_KEY = web.AppKey("emulator", Emulator)
# Telegram accepts uploads up to 50 MB through the Bot API.
MAX_UPLOAD = 50 * 1024 * 1024


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _api_response(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)


async def _read_params(request: web.Request) -> Params:
    """Collect parameters from the query string and any body encoding Telegram accepts."""
    values: dict[str, Any] = dict(request.query)
    uploads: dict[str, Upload] = {}
    if not request.body_exists:
        return Params(values)
    content_type = request.content_type
    if content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON object") from None
        if isinstance(body, dict):
            values.update(body)
    elif content_type.startswith("multipart/"):
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.filename is not None:
                data = await part.read(decode=False)
                uploads[part.name] = Upload(
                    filename=part.filename,
                    content_type=part.headers.get("Content-Type"),
                    data=bytes(data),
                )
            else:
                values[part.name] = await part.text()
    else:
        form = await request.post()
        values.update({k: v for k, v in form.items() if isinstance(v, str)})
    return Params(values, uploads)


async def _bot_api(request: web.Request) -> web.StreamResponse:
    emulator = request.app[EMULATOR_KEY]
    token = request.match_info["token"]
    method = request.match_info["method"]
    try:
        params = await _read_params(request)
        result = await emulator.call(token, method, params)
    except ApiError as error:
        return _api_response(error.to_json(), status=error.code)
    except DropConnection:
        # Close the socket without an answer, as a network failure between bot and Telegram.
        if request.transport is not None:
            request.transport.abort()
        raise web.HTTPInternalServerError() from None
    except Exception:
        # An emulator bug must still look like a Telegram failure, not an HTML error page.
        log.exception("emulator failed on %s", method)
        return _api_response(
            {"ok": False, "error_code": 500, "description": "Internal Server Error"}, 500
        )
    return _api_response({"ok": True, "result": result})


async def _file_download(request: web.Request) -> web.StreamResponse:
    emulator = request.app[EMULATOR_KEY]
    data = emulator.file_bytes(request.match_info["token"], request.match_info["path"])
    if data is None:
        return _api_response({"ok": False, "error_code": 404, "description": "Not Found"}, 404)
    return web.Response(body=data, content_type="application/octet-stream")


# -------------------------------------------------------------------- control API

Handler = Callable[[web.Request, Emulator, dict[str, Any]], Awaitable[Any]]


def _control(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a control handler: JSON in (body and query), {"ok": …} JSON out."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        emulator = request.app[EMULATOR_KEY]
        data: dict[str, Any] = dict(request.query)
        if request.body_exists:
            try:
                body = await request.json()
            except ValueError:
                return _api_response({"ok": False, "error": "body must be JSON"}, 400)
            if isinstance(body, dict):
                data.update(body)
        try:
            result = await handler(request, emulator, data)
        except ControlError as error:
            return _api_response({"ok": False, "error": error.message}, error.status)
        except (KeyError, TypeError, ValueError) as error:
            return _api_response({"ok": False, "error": f"bad request: {error!r}"}, 400)
        return _api_response({"ok": True, "result": result})

    return wrapped


def _int(data: dict[str, Any], key: str, default: int | None = None) -> int | None:
    value = data.get(key)
    if value is None or value == "":
        return default
    return int(value)


def _float(data: dict[str, Any], key: str, default: float) -> float:
    value = data.get(key)
    return default if value is None or value == "" else float(value)


def _path_int(request: web.Request, key: str) -> int:
    return int(request.match_info[key])


async def _c_state(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    return {
        "bots": [
            {**b.user.to_api(), "token": b.token, "webhook_url": b.webhook_url}
            for b in emu.bots.values()
        ],
        "users": [{**u.to_api(), "deactivated": u.deactivated} for u in emu.users.values()],
        "chats": [c.to_api() for c in emu.chats.values()],
        "private_chats": [
            {**c.to_api(), "bot_id": emu.bots[t].user.id, "blocked": c.blocked}
            for (t, _), c in emu.private.items()
            if t in emu.bots
        ],
        "cursor": len(emu.events),
    }


async def _c_reset(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    await emu.reset()
    return True


async def _c_bots(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    state = emu.register_bot(
        str(data["token"]),
        str(data.get("username") or "emulated_bot"),
        str(data.get("first_name") or "Emulated Bot"),
    )
    return state.user.to_api()


async def _c_users(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    user = emu.create_user(
        user_id=_int(data, "id"),
        first_name=str(data.get("first_name") or "Citizen"),
        last_name=data.get("last_name"),
        username=data.get("username"),
        language_code=data.get("language_code", "en"),
        is_premium=bool(data.get("is_premium", False)),
        hide_forwards=bool(data.get("hide_forwards", False)),
    )
    return user.to_api()


async def _c_chats(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    chat = emu.create_chat(
        chat_type=str(data.get("type", "supergroup")),
        title=str(data.get("title") or "Example City duty officers"),
        is_forum=bool(data.get("is_forum", False)),
        members=[int(m) for m in data.get("members") or []],
        admins=[int(a) for a in data.get("admins") or []],
        owner_id=_int(data, "owner_id"),
        chat_id=_int(data, "id"),
        username=data.get("username"),
        bot_tokens=data.get("bot_tokens"),
        bot_is_admin=bool(data.get("bot_is_admin", True)),
        bot_can_manage_topics=bool(data.get("bot_can_manage_topics", True)),
    )
    return chat.to_api()


async def _c_delete_chat(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    emu.delete_chat(_path_int(request, "chat_id"), data.get("token"))
    return True


async def _c_transcript(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    return emu.transcript(_path_int(request, "chat_id"), data.get("token"))


async def _c_age_message(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    return emu.age_message(
        _path_int(request, "chat_id"),
        _path_int(request, "message_id"),
        int(data["seconds"]),
        data.get("token"),
    )


async def _c_topics(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    return emu.topics(_path_int(request, "chat_id"))


async def _c_create_topic(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    return emu.create_topic_as_user(
        int(data["user_id"]),
        _path_int(request, "chat_id"),
        str(data["name"]),
        _int(data, "icon_color", 7322096) or 7322096,
    )


async def _c_topic_action(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    chat_id, thread_id = _path_int(request, "chat_id"), _path_int(request, "thread_id")
    action = request.match_info["action"]
    if action == "delete":
        emu.delete_topic(chat_id, thread_id)
    elif action in {"close", "reopen"}:
        emu.set_topic_closed(chat_id, thread_id, action == "close")
    else:
        raise ControlError(404, f"unknown topic action {action!r}")
    return True


async def _c_wait(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    return await emu.wait_bot_message(
        _path_int(request, "chat_id"),
        thread_id=_int(data, "thread_id"),
        timeout=_float(data, "timeout", 5.0),
        token=data.get("token"),
    )


async def _c_send(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    fields_ = dict(data)
    kind = str(fields_.pop("type", "text"))
    chat_id = _int(fields_, "chat_id")
    thread_id = _int(fields_, "thread_id")
    reply_to = _int(fields_, "reply_to")
    token = fields_.pop("token", None)
    for key in ("chat_id", "thread_id", "reply_to"):
        fields_.pop(key, None)
    encoded = fields_.pop("data_base64", None)
    if encoded:
        fields_["data"] = base64.b64decode(encoded)
    return emu.user_send(
        _path_int(request, "user_id"),
        kind,
        chat_id=chat_id,
        thread_id=thread_id,
        reply_to=reply_to,
        token=token,
        **fields_,
    )


async def _c_edit(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    return emu.user_edit(
        _path_int(request, "user_id"),
        int(data["message_id"]),
        str(data["text"]),
        chat_id=_int(data, "chat_id"),
        token=data.get("token"),
    )


async def _c_press(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    return emu.user_press(
        _path_int(request, "user_id"),
        int(data["message_id"]),
        text=data.get("text"),
        data=data.get("data"),
        chat_id=_int(data, "chat_id"),
        token=data.get("token"),
    )


async def _c_user_action(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    user_id = _path_int(request, "user_id")
    action = request.match_info["action"]
    if action in {"block", "unblock"}:
        emu.set_blocked(user_id, action == "block", data.get("token"))
    elif action in {"deactivate", "reactivate"}:
        emu.set_deactivated(user_id, action == "deactivate")
    else:
        raise ControlError(404, f"unknown user action {action!r}")
    return True


async def _c_callback(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    return emu.inject_callback(
        int(data["user_id"]),
        int(data["message_id"]),
        str(data["data"]),
        chat_id=_int(data, "chat_id"),
        token=data.get("token"),
    )


async def _c_events(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    return await emu.events_after(
        _int(data, "after", 0) or 0,
        timeout=min(_float(data, "timeout", 0.0), 60.0),
        limit=_int(data, "limit", 500) or 500,
    )


async def _c_calls(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    method = str(data.get("method") or "").lower()
    return [c for c in emu.calls if not method or c["method"] == method]


async def _c_stats(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    return emu.stats_snapshot()


async def _c_add_fault(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(Fault)}
    fault = Fault(**{k: v for k, v in data.items() if k in known})
    emu.add_fault(fault)
    return asdict(fault)


async def _c_clear_faults(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    emu.faults.clear()
    return True


async def _c_limits(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    limits = emu.config.limits
    if request.method == "POST":
        for f in fields(Limits):
            if f.name in data:
                value = data[f.name]
                setattr(limits, f.name, bool(value) if f.name == "enabled" else float(value))
        limits.private_burst = int(limits.private_burst)
        limits.group_per_minute = int(limits.group_per_minute)
        emu.limiter.reset()
    return asdict(limits)


async def _c_file(request: web.Request, emu: Emulator, data: dict[str, Any]) -> Any:
    stored = emu.files.get(request.match_info["file_id"])
    if stored is None:
        raise ControlError(404, "no such file")
    return {
        "file_id": stored.file_id,
        "kind": stored.kind,
        "file_name": stored.file_name,
        "mime_type": stored.mime_type,
        "data_base64": base64.b64encode(stored.data).decode(),
    }


def create_app(emulator: Emulator | None = None) -> web.Application:
    """The aiohttp application serving the Bot API and the control API of ``emulator``."""
    app = web.Application(client_max_size=MAX_UPLOAD)
    app[EMULATOR_KEY] = emulator or Emulator()
    p = CONTROL_PREFIX
    app.router.add_route("*", "/bot{token}/{method}", _bot_api)
    app.router.add_get("/file/bot{token}/{path:.+}", _file_download)
    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/state", _c_state),
        ("POST", "/reset", _c_reset),
        ("POST", "/bots", _c_bots),
        ("POST", "/users", _c_users),
        ("POST", "/users/{user_id}/send", _c_send),
        ("POST", "/users/{user_id}/edit", _c_edit),
        ("POST", "/users/{user_id}/press", _c_press),
        ("POST", "/users/{user_id}/{action}", _c_user_action),
        ("POST", "/chats", _c_chats),
        ("DELETE", "/chats/{chat_id}", _c_delete_chat),
        ("GET", "/chats/{chat_id}/transcript", _c_transcript),
        ("POST", "/chats/{chat_id}/messages/{message_id}/age", _c_age_message),
        ("GET", "/chats/{chat_id}/topics", _c_topics),
        ("POST", "/chats/{chat_id}/topics", _c_create_topic),
        ("POST", "/chats/{chat_id}/topics/{thread_id}/{action}", _c_topic_action),
        ("GET", "/chats/{chat_id}/wait", _c_wait),
        ("POST", "/callbacks", _c_callback),
        ("GET", "/events", _c_events),
        ("GET", "/calls", _c_calls),
        ("GET", "/stats", _c_stats),
        ("POST", "/faults", _c_add_fault),
        ("DELETE", "/faults", _c_clear_faults),
        ("GET", "/limits", _c_limits),
        ("POST", "/limits", _c_limits),
        ("GET", "/files/{file_id}", _c_file),
    ]
    for verb, path, handler in routes:
        app.router.add_route(verb, p + path, _control(handler))
    return app


class EmulatorServer:
    """Runs an emulator on a loopback port: ``async with EmulatorServer() as server: …``."""

    def __init__(
        self,
        emulator: Emulator | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.emulator = emulator or Emulator()
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """Root URL, e.g. http://127.0.0.1:PORT; give it to TelegramAPIServer.from_base."""
        return f"http://{self.host}:{self.port}"

    @property
    def token(self) -> str:
        """The default bot's token."""
        return self.emulator.default_token

    async def start(self) -> str:
        """Bind (a free port when port is 0), serve, and return the base URL."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        # handler_cancellation: a client that hangs up ends its long poll, as on Telegram.
        self._runner = web.AppRunner(
            create_app(self.emulator),
            shutdown_timeout=1.0,
            handler_cancellation=True,
            access_log=None,
        )
        await self._runner.setup()
        site = web.SockSite(self._runner, sock)
        await site.start()
        return self.base_url

    async def stop(self) -> None:
        """Release long polls, stop webhook delivery and close the port."""
        await self.emulator.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def start(
    emulator: Emulator | None = None, host: str = "127.0.0.1", port: int = 0
) -> EmulatorServer:
    """Start an emulator server and return it (call ``stop()`` when done)."""
    server = EmulatorServer(emulator, host, port)
    await server.start()
    return server
