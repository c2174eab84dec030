"""Postfix's queue: backup and restore (archive), what a running relay's queue holds (listing:
postqueue -j), holding, draining and quiescing a running relay (relay), and moving a stopped
relay's messages into another (transfer)."""
