"""What an operator runs: smoke and config checks, queue backup and restore, apt pins, and the
rollout (parallel run, canary, burn-in report, cutover, rollback)."""
