"""ZeroCloud's shared contracts: settings, messages, the bus, AWS access, logging, errors."""
