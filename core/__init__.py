"""What every luxflow package shares and nothing else: one error hierarchy, the retry policy,
records and positions, the clock and time constants. Depends on nothing of ours."""
