"""The rollout (the spec's Phases 2, 6 and 7 and its Rollback Plan): a new image beside
production, the switch, the way back, and cleaning up; production stays defined by compose."""
