"""The Chinook demo: one tenant database per customer country.

Run it with ``python3 scripts/dev.py demo`` or ``python examples/chinook/demo.py``.
"""
