"""The invoices API with one SQLite database per tenant, through dorm-sqlalchemy.

This is ``single_db.py`` switched to dorm-sqlalchemy, and docs/examples.md
shows the diff. Run it from the repository root:

    .venv/bin/python -m uvicorn examples.fastapi_app.app:app --port 8000

INVOICES_TENANT_FROM picks where requests name their tenant: ``path`` (the
default, ``/t/acme/invoices``), ``header`` (``X-Tenant: acme``) or
``subdomain`` (``Host: acme.example.test``, the domain set by
INVOICES_BASE_DOMAIN).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, status
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dorm_sqlalchemy import Dorm, InvalidTenantName

from .migrations import MIGRATIONS
from .models import Base, Customer, Invoice
from .schemas import (
    CustomerCreate,
    CustomerRead,
    CustomerUpdate,
    InvoiceCreate,
    InvoiceRead,
    InvoiceUpdate,
)
from .tenancy import invalid_tenant_name, tenant_routing

__all__ = ["app"]

DATABASE_URL = os.environ.get("INVOICES_DATABASE_URL", "sqlite:///dorm-data/invoices/{tenant}.db")
TENANT_FROM = os.environ.get("INVOICES_TENANT_FROM", "path")
BASE_DOMAIN = os.environ.get("INVOICES_BASE_DOMAIN", "example.test")

dorm = Dorm(DATABASE_URL, migrations=MIGRATIONS)
Session = dorm.async_sessionmaker()
routing = tenant_routing(TENANT_FROM, base_domain=BASE_DOMAIN)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await dorm.aclose()


app = FastAPI(title="Invoices", lifespan=lifespan)
app.add_exception_handler(InvalidTenantName, invalid_tenant_name)
router = APIRouter()


async def get_session(
    tenant: Annotated[str, Depends(routing.resolve)],
) -> AsyncIterator[AsyncSession]:
    async with dorm.tenant(tenant), Session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
ModelT = TypeVar("ModelT", bound=Base)


async def get_or_404(session: AsyncSession, model: type[ModelT], key: int) -> ModelT:
    row = await session.get(model, key)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{model.__name__.lower()} {key} not found")
    return row


async def commit_or_409(session: AsyncSession) -> None:
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, f"conflict: {exc.orig}") from exc


# -- customers ---------------------------------------------------------------


@router.post("/customers", status_code=status.HTTP_201_CREATED, response_model=CustomerRead)
async def create_customer(body: CustomerCreate, session: SessionDep) -> Customer:
    customer = Customer(**body.model_dump())
    session.add(customer)
    await commit_or_409(session)
    return customer


@router.get("/customers", response_model=list[CustomerRead])
async def list_customers(session: SessionDep) -> list[Customer]:
    return list(await session.scalars(select(Customer).order_by(Customer.id)))


@router.get("/customers/{customer_id}", response_model=CustomerRead)
async def get_customer(customer_id: int, session: SessionDep) -> Customer:
    return await get_or_404(session, Customer, customer_id)


@router.patch("/customers/{customer_id}", response_model=CustomerRead)
async def update_customer(customer_id: int, body: CustomerUpdate, session: SessionDep) -> Customer:
    customer = await get_or_404(session, Customer, customer_id)
    for field, value in body.model_dump(exclude_unset=True).items():
        setattr(customer, field, value)
    await commit_or_409(session)
    return customer


@router.delete("/customers/{customer_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_customer(customer_id: int, session: SessionDep) -> None:
    customer = await get_or_404(session, Customer, customer_id)
    invoices = await session.scalar(
        select(func.count()).select_from(Invoice).where(Invoice.customer_id == customer_id)
    )
    if invoices:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"customer {customer_id} has {invoices} invoice(s): delete them first",
        )
    await session.delete(customer)
    await session.commit()


# -- invoices ----------------------------------------------------------------


@router.post("/invoices", status_code=status.HTTP_201_CREATED, response_model=InvoiceRead)
async def create_invoice(body: InvoiceCreate, session: SessionDep) -> Invoice:
    if await session.get(Customer, body.customer_id) is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"customer {body.customer_id} not found: create the customer first",
        )
    invoice = Invoice(**body.model_dump())
    session.add(invoice)
    await session.commit()
    return invoice


@router.get("/invoices", response_model=list[InvoiceRead])
async def list_invoices(session: SessionDep, customer_id: int | None = None) -> list[Invoice]:
    query = select(Invoice).order_by(Invoice.id)
    if customer_id is not None:
        query = query.where(Invoice.customer_id == customer_id)
    return list(await session.scalars(query))


@router.get("/invoices/{invoice_id}", response_model=InvoiceRead)
async def get_invoice(invoice_id: int, session: SessionDep) -> Invoice:
    return await get_or_404(session, Invoice, invoice_id)


@router.patch("/invoices/{invoice_id}", response_model=InvoiceRead)
async def update_invoice(invoice_id: int, body: InvoiceUpdate, session: SessionDep) -> Invoice:
    invoice = await get_or_404(session, Invoice, invoice_id)
    for field, value in body.model_dump(exclude_unset=True).items():
        setattr(invoice, field, value)
    await session.commit()
    return invoice


@router.delete("/invoices/{invoice_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_invoice(invoice_id: int, session: SessionDep) -> None:
    invoice = await get_or_404(session, Invoice, invoice_id)
    await session.delete(invoice)
    await session.commit()


app.include_router(router, prefix=routing.prefix)
