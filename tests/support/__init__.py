"""Scaffolding the whole suite shares, defined once: waiting for a condition
(``waiting.eventually``), free ports (``ports.free_port``), servers on this machine
(``serving``), the fakes of AWS, of GitHub and of the api's internal endpoints, and the
services' test credentials. bench/ scripts use it too."""
