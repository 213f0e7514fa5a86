"""Citizens subscribing to alerts through the picker, deep links and /unsubscribe."""

from __future__ import annotations

from sqlalchemy import select

from bot.db.models import Subscription
from tests.e2e.conftest import Harness, bot_message, buttons


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
    await ann.press(picker, "Traffic")
    await harness.settle()
    shown = await bot_message(harness.emu, 601, picker["message_id"])
    assert "Traffic" in shown["text"] and "All districts" in buttons(shown)
    await ann.press(shown, "Harbour")
    await harness.settle()
    shown = await bot_message(harness.emu, 601, picker["message_id"])
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
