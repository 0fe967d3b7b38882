"""What an account takes, wherever it comes from: a registration, or the first admin's settings."""

from typing import Annotated

from pydantic import EmailStr, Field

Email = Annotated[EmailStr, Field(max_length=255)]
"""Deliverable in form; special-use domains such as ``.test`` or ``.local`` are refused."""
Password = Annotated[str, Field(min_length=8, max_length=256)]
