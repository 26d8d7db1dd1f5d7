"""The tenants' schema as numbered SQL migrations, applied just in time by dorm-sqlalchemy.

Each tenant is brought to the highest version the first time the process
opens it. To change the schema, append a version and never edit a released
one: tenants already at version 2 would not see the edit.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

MIGRATIONS: dict[int, list[str]] = {
    1: [
        """
        CREATE TABLE customers (
            id INTEGER NOT NULL PRIMARY KEY,
            name VARCHAR(200) NOT NULL,
            email VARCHAR(320) NOT NULL,
            UNIQUE (email)
        )
        """,
        """
        CREATE TABLE invoices (
            id INTEGER NOT NULL PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers (id),
            description VARCHAR(200) NOT NULL,
            amount_cents INTEGER NOT NULL,
            paid BOOLEAN NOT NULL
        )
        """,
    ],
    # Listing one customer's invoices scanned the whole table.
    2: [
        "CREATE INDEX ix_invoices_customer_id ON invoices (customer_id)",
    ],
}
