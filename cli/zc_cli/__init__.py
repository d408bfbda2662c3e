"""zerocloud-cli: ZeroCloud's REST API from a terminal, and the sandbox."""
