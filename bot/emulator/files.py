"""Files: what bots upload and users send, stored with Telegram-like ids and paths; the media
objects messages carry, getFile and the bytes served at /file/bot<token>/<path>."""

from __future__ import annotations

import struct
from typing import Any

from bot.emulator.errors import bad_request
from bot.emulator.params import Params, Upload
from bot.emulator.state import BotState, StoredFile
from bot.emulator.world import World


def store_upload(world: World, upload: Upload, kind: str) -> StoredFile:
    """Store an uploaded or user-sent file under fresh ids and a download path."""
    file_id, unique = world.ids.file_ids(kind)
    folder = {"photo": "photos", "document": "documents", "voice": "voice"}.get(kind, kind + "s")
    ext = {"photo": "jpg", "voice": "oga", "sticker": "webp"}.get(kind)
    if ext is None:
        ext = upload.filename.rsplit(".", 1)[-1] if "." in upload.filename else "bin"
    path = f"{folder}/file_{len(world.files)}.{ext}"
    width, height = _image_size(upload.data) if kind in {"photo", "sticker"} else (0, 0)
    stored = StoredFile(
        file_id=file_id,
        file_unique_id=unique,
        kind=kind,
        data=upload.data,
        file_path=path,
        file_name=upload.filename,
        mime_type=upload.content_type,
        width=width or (512 if kind == "sticker" else 800),
        height=height or (512 if kind == "sticker" else 600),
    )
    world.files[file_id] = stored
    world.files_by_path[path] = stored
    return stored


def media_object(stored: StoredFile, kind: str) -> Any:
    """The object a message carries for a stored file: a PhotoSize list, a Document, a Voice
    or a Sticker."""
    base = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "file_size": len(stored.data),
    }
    if kind == "photo":
        return [{**base, "width": stored.width, "height": stored.height}]
    if kind == "document":
        doc = dict(base)
        if stored.file_name:
            doc["file_name"] = stored.file_name
        doc["mime_type"] = stored.mime_type or "application/octet-stream"
        return doc
    if kind == "voice":
        return {**base, "duration": stored.duration, "mime_type": "audio/ogg"}
    return {
        **base,
        "type": "regular",
        "width": stored.width,
        "height": stored.height,
        "is_animated": False,
        "is_video": False,
    }


def input_file(world: World, params: Params, name: str, kind: str) -> StoredFile:
    """The file an InputFile parameter names: a new upload or a stored file\'s file_id."""
    upload = params.upload(name)
    if upload is not None:
        return store_upload(world, upload, kind)
    value = params.str(name)
    if not value:
        raise bad_request(f"there is no {name} in the request")
    if value.startswith(("http://", "https://")):
        # The emulator has no internet; Telegram would fetch the URL itself.
        raise bad_request("failed to get HTTP URL content")
    stored = world.files.get(value)
    if stored is None:
        raise bad_request("wrong file identifier/HTTP URL specified")
    if stored.kind != kind and kind != "document":
        raise bad_request(f"can't use file of type {stored.kind.title()} as {kind.title()}")
    return stored


class FileMethods:
    """getFile and file downloads."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def m_getFile(self, state: BotState, params: Params) -> dict[str, Any]:
        """getFile."""
        stored = self.world.files.get(params.str("file_id") or "")
        if stored is None:
            raise bad_request("invalid file_id")
        if len(stored.data) > 20 * 1024 * 1024:
            raise bad_request("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    def file_bytes(self, token: str, path: str) -> bytes | None:
        """Bytes served at /file/bot<token>/<path>, or None."""
        if token not in self.world.bots:
            return None
        stored = self.world.files_by_path.get(path)
        return stored.data if stored is not None else None


def _image_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG or GIF header, or (0, 0) when unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in {b"GIF87a", b"GIF89a"} and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    return 0, 0
