"""ZeroCloud api: the only service that owns PostgreSQL."""
