"""A notes API in Flask with one SQLite database per tenant, on the sync path."""
