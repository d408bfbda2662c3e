"""ZeroCloud reaper: the only writer to AWS: stops and terminates what nobody renewed (issue: Lease lifecycle)."""
