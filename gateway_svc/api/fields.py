"""Field types of the public API that no service can take as they come from a client."""

from typing import Annotated

from pydantic import Field

Text = Annotated[str, Field(pattern=r"^[^\x00]*$")]
"""Free text: PostgreSQL cannot store a NUL character, so a client's NUL is its 422 here rather
than a failed command later. (Lone surrogates, which UTF-8 cannot carry, pydantic refuses.)"""
