"""Tenant names: the canonical form and the rule every name must pass.

Tenant names arrive from URLs, headers and users, so they are treated as
hostile. A name is canonicalised by folding ASCII letters to lower case, then
checked against one rule:

* 1 to 63 characters (a DNS label, so a tenant can also be a subdomain);
* ASCII letters, digits, ``-`` and ``_`` only;
* the first character is a letter or a digit, so no name starts with ``.``,
  ``-`` or ``_`` (names starting with ``_`` are kept for the library's own
  files, such as a migration template or a mirror outbox);
* not a device name that Windows reserves (``con``, ``nul``, ``com1`` ...).

Because canonical names contain no upper-case letters, no path separators and
no dots, two distinct tenants never map to the same file, even on file systems
that ignore case, and no tenant file can land outside the root directory.
"""

from __future__ import annotations

import functools
import re
from typing import TypeAlias

from .errors import InvalidTenantName

__all__ = ["TenantName", "canonical_tenant", "is_valid_tenant"]

TenantName: TypeAlias = str
"""A canonical tenant name: the output of :func:`canonical_tenant`."""

MAX_LENGTH = 63

_TENANT_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")

_WINDOWS_DEVICE_NAMES = frozenset(
    ["con", "prn", "aux", "nul"]
    + [f"com{i}" for i in range(10)]
    + [f"lpt{i}" for i in range(10)]
)


def canonical_tenant(name: str) -> TenantName:
    """Return the canonical form of ``name``, or raise :class:`InvalidTenantName`.

    The result is cached, so calling this on every request costs a dict
    lookup once a name has been seen.
    """
    if not isinstance(name, str):
        raise InvalidTenantName(name, f"expected a str, got {type(name).__name__}")
    if type(name) is not str:
        # A subclass may override lower() or __eq__: check its plain value.
        name = str.__str__(name)
    return _canonical_str(name)


@functools.lru_cache(maxsize=4096)
def _canonical_str(name: str) -> TenantName:
    if not name:
        raise InvalidTenantName(name, "the name is empty")
    if len(name) > MAX_LENGTH:
        raise InvalidTenantName(
            name[:20] + "...", f"the name has {len(name)} characters, more than {MAX_LENGTH}"
        )
    if not name.isascii():
        raise InvalidTenantName(name, "the name contains non-ASCII characters")

    canonical = name.lower()
    if not _TENANT_RE.fullmatch(canonical):
        bad = sorted({ch for ch in canonical if not (ch.isalnum() or ch in "-_")})
        if bad:
            reason = f"the name contains {', '.join(repr(ch) for ch in bad)}"
        else:
            reason = f"the name starts with {canonical[0]!r}"
        raise InvalidTenantName(name, reason)
    if canonical in _WINDOWS_DEVICE_NAMES:
        raise InvalidTenantName(name, "the name is a device name reserved by Windows")
    return canonical


def is_valid_tenant(name: object) -> bool:
    """Tell whether ``name`` passes the tenant naming rule."""
    try:
        canonical_tenant(name)  # type: ignore[arg-type]
    except InvalidTenantName:
        return False
    return True
