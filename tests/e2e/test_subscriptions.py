"""Citizens subscribing to alerts through the picker, deep links and /unsubscribe."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.alerts.catalog import Catalog
from bot.db.models import Subscription
from tests.support import KNOWLEDGE
from tests.support.e2e import Harness, bot_message, buttons, pressed


async def subscriptions(harness: Harness, citizen_id: int) -> set[tuple[str, str]]:
    assert harness.app is not None
    async with harness.app.sessionmaker() as session:
        rows = await session.scalars(
            select(Subscription).where(Subscription.citizen_id == citizen_id)
        )
        return {(s.category, s.district) for s in rows}


async def test_picker_subscribes_and_unsubscribes(harness: Harness) -> None:
    ann = await harness.new_citizen(601)
    picker = await ann.say("/subscribe")
    assert "Choose a category" in picker["text"]
    assert "Traffic" in buttons(picker)
    shown = await pressed(harness, ann, picker, "Traffic")
    assert "Traffic" in shown["text"] and "All districts" in buttons(shown)
    shown = await pressed(harness, ann, shown, "Harbour")
    assert "✅ Harbour" in buttons(shown)
    assert await subscriptions(harness, 601) == {("traffic", "harbour")}
    await ann.press(shown, "✅ Harbour")  # a second tap removes it
    await harness.settle()
    assert await subscriptions(harness, 601) == set()
    shown = await bot_message(harness.emu, 601, picker["message_id"])
    await ann.press(shown, "All districts")
    await harness.settle()
    assert await subscriptions(harness, 601) == {("traffic", "*")}

    listing = await ann.say("/mysubscriptions")
    assert "Traffic · All districts" in listing["text"]
    menu = await ann.say("/unsubscribe")
    assert buttons(menu) == ["❌ Traffic · All districts", "Unsubscribe from everything"]
    await ann.press(menu, "Unsubscribe from everything")
    await harness.settle()
    assert await subscriptions(harness, 601) == set()
    assert "no alert subscriptions" in (await ann.say("/mysubscriptions"))["text"]


async def test_deep_links(harness: Harness) -> None:
    ann = await harness.new_citizen(602)
    reply = await ann.say("/start sub_traffic")
    assert "subscribed to <b>" not in reply["text"]  # markup is rendered, not shown
    assert "Traffic" in reply["text"] and "All districts" in reply["text"]
    reply = await ann.say("/start sub_weather-and-disasters_riverside")
    assert "Riverside" in reply["text"]
    reply = await ann.say("/start sub_traffic")
    assert "already" in reply["text"]
    reply = await ann.say("/start sub_nonsense_nowhere")
    assert "not valid" in reply["text"]
    assert await subscriptions(harness, 602) == {
        ("traffic", "*"),
        ("weather-and-disasters", "riverside"),
    }
    li = await harness.new_citizen(603, "李", language_code="zh-hans")
    reply = await li.say("/start sub_traffic_harbour")
    assert "港湾区" in reply["text"] and "交通" in reply["text"]
    # A plain /start still greets.
    assert "Hello" in (await ann.say("/start"))["text"]


async def test_forged_callbacks_change_nothing(harness: Harness) -> None:
    ann = await harness.new_citizen(604)
    picker = await ann.say("/subscribe")
    await harness.emu.inject_callback(604, picker["message_id"], "sub:toggle:evil:harbour")
    await harness.emu.inject_callback(604, picker["message_id"], "sub:toggle:traffic:atlantis")
    await harness.emu.inject_callback(604, picker["message_id"], "unsub:-5")
    await harness.settle()
    assert await subscriptions(harness, 604) == set()
    # Someone else's subscription id cannot be removed.
    other = await harness.new_citizen(605)
    await other.say("/start sub_traffic")
    assert harness.app is not None
    async with harness.app.sessionmaker() as session:
        sub_id = await session.scalar(select(Subscription.id).where(Subscription.citizen_id == 605))
    menu = await ann.say("/subscribe")
    await harness.emu.inject_callback(604, menu["message_id"], f"unsub:{sub_id}")
    await harness.settle()
    assert await subscriptions(harness, 605) == {("traffic", "*")}


async def test_alerts_lists_active_alerts(harness: Harness) -> None:
    ann = await harness.new_citizen(606)
    assert "no active alerts" in (await ann.say("/alerts"))["text"]


async def _page_to(harness: Harness, user_id: int, message_id: int, wanted: str) -> dict[str, Any]:
    """Press the page arrows of a keyboard until the button `wanted` shows; that message."""
    shown = await bot_message(harness.emu, user_id, message_id)
    for _ in range(12):
        labels = buttons(shown)
        assert len(labels) <= 100  # Telegram's limit: the emulator refuses more
        if wanted in labels:
            return shown
        forward = next(label for label in labels if label.endswith("▶"))
        await harness.emu.user(user_id).press(message_id, text=forward)
        await harness.settle()
        shown = await bot_message(harness.emu, user_id, message_id)
    raise AssertionError(f"{wanted!r} on no page")


async def test_a_city_of_150_districts_is_paged(harness: Harness, tmp_path: Path) -> None:
    """Districts (and the /unsubscribe list) come a page at a time: Telegram refuses a
    keyboard of more than 100 buttons, and a citizen cannot read one anyway."""
    assert harness.app is not None
    big = tmp_path / "knowledge"
    big.mkdir()
    shutil.copy(KNOWLEDGE / "alert_categories.yaml", big)
    wards = "".join(
        f"  - {{id: ward-{n:03d}, en: Ward {n:03d}, zh: 第{n}区}}\n" for n in range(1, 141)
    )
    (big / "districts.yaml").write_text(
        (KNOWLEDGE / "districts.yaml").read_text("utf-8") + wards, "utf-8"
    )
    data = harness.app.dispatcher.workflow_data
    original = data["catalog"]
    data["catalog"] = Catalog.load(big)
    try:
        ann = await harness.new_citizen(611)
        picker = await ann.say("/subscribe")
        await ann.press(picker, "Traffic")
        await harness.settle()
        shown = await _page_to(harness, 611, picker["message_id"], "Ward 140")
        assert "All districts" not in buttons(shown)  # on the first page only
        await ann.press(shown, "Ward 140")
        await harness.settle()
        assert await subscriptions(harness, 611) == {("traffic", "ward-140")}
        shown = await bot_message(harness.emu, 611, picker["message_id"])
        assert "✅ Ward 140" in buttons(shown)  # the same page, with the tick

        # The staff wizard's districts: the same pages, and Done moves on.
        comms = await harness.new_citizen(9201, "Comms Chen")
        wizard = await comms.say("/alert")
        await comms.press(wizard, "Traffic")
        await harness.settle()
        shown = await _page_to(harness, 9201, wizard["message_id"], "Ward 077")
        shown = await pressed(harness, comms, shown, "Ward 077")
        assert "Selected: Ward 077" in shown["text"] and "✅ Ward 077" in buttons(shown)
        shown = await pressed(harness, comms, shown, "Done ✔")
        assert "Extreme" in buttons(shown)  # the severity step
    finally:
        data["catalog"] = original


async def test_a_long_unsubscribe_list_is_paged(harness: Harness) -> None:
    assert harness.app is not None
    ann = await harness.new_citizen(612)
    await ann.say("/start")
    catalog: Catalog = harness.app.dispatcher.workflow_data["catalog"]
    async with harness.app.sessionmaker() as session:
        for category in catalog.categories:
            for district in ["*", *catalog.districts]:
                session.add(Subscription(citizen_id=612, category=category, district=district))
        await session.commit()
    total = len(catalog.categories) * (len(catalog.districts) + 1)
    menu = await ann.say("/unsubscribe")
    first = buttons(menu)
    assert len(first) < total and first[-1] == "Unsubscribe from everything"
    forward = next(label for label in first if label.endswith("▶"))
    await ann.press(menu, forward)
    await harness.settle()
    second = buttons(await bot_message(harness.emu, 612, menu["message_id"]))
    assert second != first and second[-1] == "Unsubscribe from everything"
    await ann.press(await bot_message(harness.emu, 612, menu["message_id"]), second[0])
    await harness.settle()
    assert len(await subscriptions(harness, 612)) == total - 1
