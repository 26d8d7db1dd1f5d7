"""An invoices API in FastAPI: on one database (``single_db``), then one per tenant (``app``)."""
