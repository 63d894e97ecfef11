"""Alerts that reach people: the loop's alerts and fills, delivered in the background to a generic
JSON webhook, Telegram, Slack and Discord through an outbox in the state file (docs/console.md)."""
