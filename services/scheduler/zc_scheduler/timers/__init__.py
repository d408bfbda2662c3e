"""Timers: lease warnings and expiries, and the periodic sweep job."""
