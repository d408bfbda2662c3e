"""ZeroCloud scheduler: durable lease timers and sweep jobs."""
