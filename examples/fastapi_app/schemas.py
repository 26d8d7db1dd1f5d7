"""Pydantic schemas: what the invoices API accepts and returns."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "CustomerCreate",
    "CustomerRead",
    "CustomerUpdate",
    "InvoiceCreate",
    "InvoiceRead",
    "InvoiceUpdate",
]

Name = Annotated[str, Field(min_length=1, max_length=200)]
Email = Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Description = Annotated[str, Field(min_length=1, max_length=200)]
AmountCents = Annotated[int, Field(ge=0, description="amount in cents, so that sums are exact")]


class Changes(BaseModel):
    """A partial update: fields left out keep their value, and null is rejected."""

    @field_validator("*", mode="before")
    @classmethod
    def reject_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("null is not allowed: leave the field out to keep its value")
        return value


class CustomerCreate(BaseModel):
    name: Name
    email: Email


class CustomerUpdate(Changes):
    name: Name | None = None
    email: Email | None = None


class CustomerRead(CustomerCreate):
    model_config = ConfigDict(from_attributes=True)

    id: int


class InvoiceCreate(BaseModel):
    customer_id: int
    description: Description
    amount_cents: AmountCents
    paid: bool = False


class InvoiceUpdate(Changes):
    description: Description | None = None
    amount_cents: AmountCents | None = None
    paid: bool | None = None


class InvoiceRead(InvoiceCreate):
    model_config = ConfigDict(from_attributes=True)

    id: int
