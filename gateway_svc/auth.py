"""Tokens and the dependencies that authenticate and authorise a request.

Access tokens are short-lived JWTs (HS256) naming the user and role; refresh tokens live longer
and can only be exchanged for a new pair. Only HS256 is accepted (``alg: none`` and any other
algorithm are refused), and ``exp``, ``iat``, ``sub`` and ``typ`` are required.
"""

import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Literal
from uuid import UUID, uuid4

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway_svc.settings import Settings

ALGORITHM = "HS256"
ISSUER = "shop"
TokenType = Literal["access", "refresh"]


@dataclass(frozen=True)
class Principal:
    id: UUID
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "Admin"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class InvalidTokenError(Exception):
    pass


class Tokens:
    def __init__(self, settings: Settings) -> None:
        secret = settings.jwt_secret.get_secret_value()
        self.ephemeral = not secret
        self._secret = secret or secrets.token_urlsafe(48)
        self._access_ttl = settings.access_token_ttl_s
        self._refresh_ttl = settings.refresh_token_ttl_s

    def issue(self, user_id: UUID, role: str) -> TokenPair:
        return TokenPair(
            access_token=self._encode(user_id, role, "access", self._access_ttl),
            refresh_token=self._encode(user_id, role, "refresh", self._refresh_ttl),
            expires_in=self._access_ttl,
        )

    def _encode(self, user_id: UUID, role: str, kind: TokenType, ttl: int) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "role": role,
            "typ": kind,
            "iss": ISSUER,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str, kind: TokenType) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "typ"]},
            )
            if claims["typ"] != kind:
                raise InvalidTokenError(f"not an {kind} token")
            return Principal(id=UUID(claims["sub"]), role=str(claims.get("role", "Customer")))
        except (jwt.PyJWTError, ValueError, KeyError) as exc:
            raise InvalidTokenError(str(exc)) from exc


_bearer = HTTPBearer(auto_error=False, description="the access token from POST /auth/login")


def tokens(request: Request) -> Tokens:
    found: Tokens = request.app.state.tokens
    return found


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    try:
        return tokens(request).verify(credentials.credentials, "access")
    except InvalidTokenError:
        raise HTTPException(
            401, "invalid or expired token", headers={"WWW-Authenticate": "Bearer"}
        ) from None


def admin_user(principal: Annotated[Principal, Depends(current_user)]) -> Principal:
    if not principal.is_admin:
        raise HTTPException(403, "admins only")
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]
Admin = Annotated[Principal, Depends(admin_user)]
