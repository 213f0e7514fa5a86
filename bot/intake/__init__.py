"""Durable intake: an update is kept before Telegram's delivery is acknowledged, and a crisis
reply is owed (and sent on its own) before the update waits for anything shared.

Both modes go through `Intake.accept`: long polling confirms an offset only after the batch is
kept, and the webhook answers 200 only after its update is kept. Kept means a row in the `inbox`
table, or, while the database is away, a line in this process's spool file (fsynced), drained
into the inbox when the database is back.

On arrival, before any queue, the content rules (no database, no model) triage the text of every
private message and edit. A crisis or emergency gets its reply owed in the same transaction as
the inbox row (`urgent_replies`, one per update) and sent at once by `UrgentReplies`, retried
with backoff until Telegram takes it or the citizen cannot be reached. With the database away the
reply is sent straight from the spool path and the spool records that it went out, so after the
outage the case opens and the reply is not sent twice.

Handling runs from the inbox: one worker per update up to `INTAKE_CONCURRENCY`, one chat's
updates in order, chats with an urgent update first. An update leaves the inbox in the same
transaction that records its id in `processed_updates` and writes its handler's last rows (many
updates in one commit in a surge, `bot.intake.handled`); until then it is leased to this process
(renewed while alive), and a dead process's updates are taken over when their lease runs out.
A handler that fails is retried with backoff and parked after `INTAKE_MAX_ATTEMPTS`.

Handling is at least once: a crash after a handler's effects but before the update leaves the
inbox handles it again. The crisis path is idempotent per update (the reply row, the case reuse,
the trigger message), so there a redelivery is harmless; an FAQ answer may come twice.
"""

from bot.intake.inbox import Intake, citizen_text
from bot.intake.replies import URGENT_REPLY_KEYS, UrgentReplies
from bot.intake.spool import Spool

__all__ = ["URGENT_REPLY_KEYS", "Intake", "Spool", "UrgentReplies", "citizen_text"]
