"""CINC API client package (no Django): OAuth2 helpers, one call per
endpoint, typed errors, record parsing and a shared rate limiter.

See ``docs/architecture.md`` for how the portal uses it.
"""

from .client import CincClient, CreateResult, Page
from .errors import (
    CincError,
    DuplicateEmail,
    Forbidden,
    InvalidFields,
    MalformedResponse,
    MissingScope,
    NotBroker,
    NotFound,
    OAuthError,
    RateLimited,
    RecordError,
    Unauthorized,
    UpstreamError,
)
from .oauth import (
    TokenSet,
    build_authorize_url,
    exchange_code,
    make_pkce_pair,
    refresh_tokens,
)
from .ratelimit import FileStore, MemoryStore, RateLimiter, RedisStore, parse_reset
from .records import (
    AgentRecord,
    LeadRecord,
    lead_payload,
    parse_agent,
    parse_lead,
    parse_many,
)

__all__ = [
    "AgentRecord",
    "CincClient",
    "CincError",
    "CreateResult",
    "DuplicateEmail",
    "FileStore",
    "Forbidden",
    "InvalidFields",
    "LeadRecord",
    "MalformedResponse",
    "MemoryStore",
    "MissingScope",
    "NotBroker",
    "NotFound",
    "OAuthError",
    "Page",
    "RateLimited",
    "RateLimiter",
    "RecordError",
    "RedisStore",
    "TokenSet",
    "Unauthorized",
    "UpstreamError",
    "build_authorize_url",
    "exchange_code",
    "lead_payload",
    "make_pkce_pair",
    "parse_agent",
    "parse_lead",
    "parse_many",
    "parse_reset",
    "refresh_tokens",
]
