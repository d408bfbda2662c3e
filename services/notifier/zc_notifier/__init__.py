"""ZeroCloud notifier: mail and messages people read about their leases (issue: Lease lifecycle)."""
