"""Cases: a citizen handed to the duty officers, one forum topic per case.

`service` (the rules, `HandoffService`), `repository` (the queries), `forum` (topics, cards,
pages, notices), `relay` (messages both ways, edits), `scheduler` (the loop: retries, re-pages,
escalation, wait notices), `cards` (what officers and citizens read), `context` (what they
share), `cli` (`safewell cases`)."""
