"""Postfix's queue: backup and restore (archive), a running relay's queue (relay: listing, hold,
drain, quiesce), and moving a stopped relay's messages into another (transfer)."""
