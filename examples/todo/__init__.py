"""DORM's todo template on dorm-sqlalchemy: one todo list per tenant, mirrored to an aggregate."""
