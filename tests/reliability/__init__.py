"""The reliability and security battery: faults, bad input and attacks (docs/reliability.md)."""
