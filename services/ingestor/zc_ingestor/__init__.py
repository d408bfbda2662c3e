"""ZeroCloud ingestor: turns EC2 events and the inventory sweep into ResourceChange messages."""
