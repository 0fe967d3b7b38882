"""Tokens and the dependencies that authenticate and authorise a request.

Access tokens are short-lived JWTs (HS256) naming the user and role; refresh tokens live longer
and can only be exchanged, once, for a new pair. Each refresh token has its own id (``jti``) and
the id of its sign-in (``fam``): the pair from a refresh continues the family, and user_svc
records every used ``jti``, so a refresh token that comes back a second time is refused and
revokes its family. Only HS256 is accepted (``alg: none`` and any other algorithm are refused),
and ``exp``, ``iat``, ``sub`` and ``typ`` are required.
"""

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway_svc.settings import Settings

ALGORITHM = "HS256"
VERIFIED_TOKENS_KEPT = 10_000
ISSUER = "shop"
TokenType = Literal["access", "refresh"]
ADMINS_ONLY = "admins only"
ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid access token"},
    403: {"description": ADMINS_ONLY},
}
"""What an admin-only route documents besides its own answers."""


@dataclass(frozen=True)
class Principal:
    id: UUID
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "Admin"


@dataclass(frozen=True)
class RefreshGrant:
    """What a valid refresh token carries: whose it is, its own id, its sign-in's id."""

    user_id: UUID
    jti: str
    family: UUID
    expires_at: datetime


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
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        """Access tokens already verified, with their expiry: a client sends the same token
        with every request, and the rate limit and the route both need to know whose it is."""

    def issue(self, user_id: UUID, role: str, family: UUID | None = None) -> TokenPair:
        """A new pair; ``family`` continues a sign-in (a refresh), None starts one (a login)."""
        return TokenPair(
            access_token=self._encode(user_id, role, "access", self._access_ttl),
            refresh_token=self._encode(
                user_id, role, "refresh", self._refresh_ttl, fam=str(family or uuid4())
            ),
            expires_in=self._access_ttl,
        )

    def _encode(self, user_id: UUID, role: str, kind: TokenType, ttl: int, **extra: str) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "role": role,
            "typ": kind,
            "iss": ISSUER,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid4().hex,
            **extra,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str, kind: TokenType) -> Principal:
        if kind == "access" and (known := self._verified.get(token)) is not None:
            principal, expires_at = known
            if time.time() < expires_at:
                return principal
            del self._verified[token]
        claims = self._decode(token, kind)
        try:
            principal = Principal(id=UUID(claims["sub"]), role=str(claims.get("role", "Customer")))
        except ValueError as exc:
            raise InvalidTokenError(str(exc)) from exc
        if kind == "access":
            self._verified[token] = (principal, float(claims["exp"]))
            if len(self._verified) > VERIFIED_TOKENS_KEPT:
                self._verified.popitem(last=False)
        return principal

    def refresh_grant(self, token: str) -> RefreshGrant:
        claims = self._decode(token, "refresh", also_required=("jti", "fam"))
        try:
            return RefreshGrant(
                user_id=UUID(claims["sub"]),
                jti=str(claims["jti"]),
                family=UUID(claims["fam"]),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            )
        except (ValueError, TypeError) as exc:
            raise InvalidTokenError(str(exc)) from exc

    def _decode(
        self, token: str, kind: TokenType, also_required: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "typ", *also_required]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from exc
        if claims["typ"] != kind:
            raise InvalidTokenError(f"not an {kind} token")
        return claims


_bearer = HTTPBearer(auto_error=False, description="the access token from POST /auth/login")


def tokens(request: Request) -> Tokens:
    found: Tokens = request.app.state.tokens
    return found


async def current_user(
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


async def admin_user(principal: Annotated[Principal, Depends(current_user)]) -> Principal:
    if not principal.is_admin:
        raise HTTPException(403, ADMINS_ONLY)
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]
Admin = Annotated[Principal, Depends(admin_user)]
