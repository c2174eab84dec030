"""Operating a running smtp-out: reports over its logs and queue (pure logic, no Docker calls)."""
