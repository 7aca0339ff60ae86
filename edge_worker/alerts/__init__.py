"""Human alerts beyond Linear: Slack, Telegram and a signed JSON webhook.

``events`` (sans-I/O: what happened, its dedupe key, its message), ``channels`` (sans-I/O
request building and signing, plus the httpx send), ``outbox`` (the durable table that makes
each alert go out once), ``notifier`` (record, then deliver with retries and per-channel
rate limits), ``config`` (channels from settings).
"""
