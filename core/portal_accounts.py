"""Customers' portal sign-in: passwords, sessions and password-reset links.

A customer signs in with the e-mail address or the phone number on their account and a
password of their own (argon2, like staff passwords). E-mail addresses are compared
without case; phone numbers on their digits, and on the last nine digits when both have
that many, so ``0712 345 678`` and ``+254712345678`` are the same number. When several
accounts share the address or number, the password decides which one signs in. A failed
sign-in never says which part was wrong.

Sessions and reset links keep only the SHA-256 of their token, like staff sessions
(:mod:`core.sessions`). A reset link works once, for an hour; using it sets the new
password and ends every open portal session of the customer. Asking for a link gives the
same answer whether or not the address is known.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from peewee import fn

from core import audit, messages, notifications, passwords
from core.clock import utcnow
from core.db import database
from core.errors import ValidationError
from core.models import Customer, CustomerLogin, PasswordReset, PortalSession


MIN_PASSWORD = 10
MAX_PASSWORD = 200
LIFETIME = dt.timedelta(hours=12)  # since the last request, like the session cookie
RENEW_AFTER = dt.timedelta(minutes=5)
RESET_LIFETIME = dt.timedelta(hours=1)
RESETS_PER_HOUR = 3  # links sent to one customer per hour; more requests send nothing
PHONE_KEY_DIGITS = 9
KEEP_ENDED = dt.timedelta(days=30)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- who an identifier names -----------------------------------------------------------

def _digits(text: str | None) -> str:
    return re.sub(r"\D", "", text or "")


def _phone_key(text: str | None) -> str:
    """What two phone numbers are compared on: their last nine digits, or all when fewer."""
    digits = _digits(text)
    return digits[-PHONE_KEY_DIGITS:] if len(digits) >= PHONE_KEY_DIGITS else digits


def throttle_key(identifier: str | None) -> str:
    """The name the login rate limit counts failures under: the e-mail as typed, a phone's key."""
    identifier = (identifier or "").strip()
    if "@" in identifier or not _digits(identifier):
        return identifier.lower()
    return "tel:" + _phone_key(identifier)


def matching(identifier: str | None, with_login: bool = True) -> list[Customer]:
    """The customers whose e-mail or phone is ``identifier`` (with a portal password, by default)."""
    identifier = (identifier or "").strip()[:254]
    if not identifier:
        return []
    query = Customer.select()
    if with_login:
        query = query.join(CustomerLogin, on=(CustomerLogin.customer == Customer.id))
    if "@" in identifier:
        return list(query.where(fn.LOWER(Customer.email) == identifier.lower()).order_by(Customer.id))
    key = _phone_key(identifier)
    if len(key) < 6:  # too short to be anyone's number
        return []
    bare = fn.REPLACE(fn.REPLACE(fn.REPLACE(fn.REPLACE(Customer.phone, " ", ""), "-", ""), "+", ""), ".", "")
    rows = query.where(Customer.phone.is_null(False) & bare.endswith(key)).order_by(Customer.id)
    return [c for c in rows if _phone_key(c.phone) == key]


# --- passwords ---------------------------------------------------------------------------

def check_password(password, field: str = "password") -> str:
    """A password long enough to keep, or :class:`ValidationError`."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValidationError(f"{field} must be at least {MIN_PASSWORD} characters", field)
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"{field} is longer than {MAX_PASSWORD} characters", field)
    return password


def has_login(customer: Customer) -> bool:
    """Whether ``customer`` has a portal password."""
    return CustomerLogin.select().where(CustomerLogin.customer == customer.id).exists()


def set_password(customer: Customer, password: str, *, end_sessions: bool = True) -> CustomerLogin:
    """Set (or replace) the portal password of ``customer``, audited; ends their portal sessions."""
    check_password(password)
    hashed = passwords.hash_password(password)
    with database.atomic():
        login = CustomerLogin.get_or_none(CustomerLogin.customer == customer.id)
        if login is None:
            login = CustomerLogin.create(customer=customer.id, password_hash=hashed)
            action = "customer.portal_password_set"
        else:
            login.password_hash, login.updated_at = hashed, utcnow()
            login.save()
            action = "customer.portal_password_changed"
        if end_sessions:
            revoke_all(customer)
        audit.record(action, "customer", customer.id)
    return login


def authenticate(identifier: str, password: str) -> Customer | None:
    """The customer with this e-mail or phone and this password, or ``None``."""
    password = password or ""
    candidates = matching(identifier) if 0 < len(password) <= MAX_PASSWORD else []
    logins = {row.customer_id: row for row in
              CustomerLogin.select().where(CustomerLogin.customer.in_([c.id for c in candidates]))} if candidates else {}
    found = None
    for customer in candidates:
        login = logins.get(customer.id)
        if passwords.verify(login.password_hash, password):
            found = (customer, login)
            break
    if not candidates:
        passwords.verify(None, password)  # nobody matches: take as long as a real check
    if found is None:
        return None
    customer, login = found
    with database.atomic():
        changes = {"last_login_at": utcnow()}
        if passwords.needs_rehash(login.password_hash):
            changes["password_hash"] = passwords.hash_password(password)
        CustomerLogin.update(**changes).where(CustomerLogin.id == login.id).execute()
        audit.record("customer.portal_login", "customer", customer.id)
    return customer


# --- sessions ----------------------------------------------------------------------------

def start_session(customer: Customer, user_agent: str | None = None, remote_addr: str | None = None) -> str:
    """Open a portal session for ``customer``; the token goes in the signed cookie."""
    token = secrets.token_urlsafe(32)
    with database.atomic():
        PortalSession.create(token_hash=_hash(token), customer=customer.id, expires_at=utcnow() + LIFETIME,
                             user_agent=(user_agent or "")[:200] or None,
                             remote_addr=(remote_addr or "")[:45] or None)
    return token


def resolve(token) -> Customer | None:
    """The customer of the open, unexpired session ``token`` names, or ``None``; extends it."""
    if not token or not isinstance(token, str):
        return None
    now = utcnow()
    row = (PortalSession.select(PortalSession, Customer).join(Customer)
           .where((PortalSession.token_hash == _hash(token)) & PortalSession.revoked_at.is_null()
                  & (PortalSession.expires_at > now))
           .first())
    if row is None:
        return None
    if row.expires_at < now + LIFETIME - RENEW_AFTER:
        PortalSession.update(expires_at=now + LIFETIME).where(PortalSession.id == row.id).execute()
    return row.customer


def revoke(token) -> None:
    """End the session ``token`` names (nothing happens for an unknown or ended one)."""
    if token and isinstance(token, str):
        with database.atomic():
            (PortalSession.update(revoked_at=utcnow())
             .where((PortalSession.token_hash == _hash(token)) & PortalSession.revoked_at.is_null()).execute())


def revoke_all(customer: Customer) -> int:
    """End every open portal session of ``customer``; returns how many."""
    with database.atomic():
        return (PortalSession.update(revoked_at=utcnow())
                .where((PortalSession.customer == customer.id) & PortalSession.revoked_at.is_null()).execute())


def purge(now: dt.datetime | None = None) -> int:
    """Delete sessions and reset links that ended more than :data:`KEEP_ENDED` ago."""
    cutoff = (now or utcnow()) - KEEP_ENDED
    with database.atomic():
        n = PortalSession.delete().where((PortalSession.expires_at < cutoff) | (PortalSession.revoked_at < cutoff)).execute()
        return n + PasswordReset.delete().where(PasswordReset.expires_at < cutoff).execute()


# --- reset links -------------------------------------------------------------------------

def reset_url(base_url: str, token: str) -> str:
    """The address of a reset link."""
    return f"{base_url.rstrip('/')}/portal/reset/{token}"


def send_reset(customer: Customer, base_url: str, remote_addr: str | None = None) -> PasswordReset:
    """Make a reset link for ``customer`` and queue the e-mail that carries it, audited.

    Also the way staff invite a customer to the portal. :class:`ValidationError` when the
    customer has no e-mail address or no public address is known for the link.
    """
    if not customer.email:
        raise ValidationError(f"customer {customer.account_number} has no e-mail address to send a link to", "email")
    if not base_url or not base_url.startswith(("http://", "https://")):
        raise ValidationError("the link needs the public address of this server: set web.base_url", "web.base_url")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with database.atomic():
        reset = PasswordReset.create(token_hash=_hash(token), customer=customer.id, created_at=now,
                                     expires_at=now + RESET_LIFETIME, remote_addr=(remote_addr or "")[:45] or None)
        context = messages.customer_context(customer) | {
            "reset_url": reset_url(base_url, token), "reset_minutes": int(RESET_LIFETIME.total_seconds() // 60)}
        notifications.queue(f"password_reset:{reset.id}", customer, "password_reset", context)
        audit.record("customer.portal_reset_sent", "customer", customer.id)
    return reset


def request_reset(identifier: str, base_url: str, remote_addr: str | None = None) -> None:
    """Send a reset link to each account with this e-mail or phone that has an e-mail address.

    Returns nothing, whatever happened: the answer must not tell whether the identifier is
    known. At most :data:`RESETS_PER_HOUR` links go to one customer per hour.
    """
    since = utcnow() - dt.timedelta(hours=1)
    for customer in matching(identifier, with_login=False):
        if not customer.email:
            continue
        recent = PasswordReset.select().where((PasswordReset.customer == customer.id)
                                              & (PasswordReset.created_at > since)).count()
        if recent < RESETS_PER_HOUR:
            send_reset(customer, base_url, remote_addr)


def valid_reset(token) -> PasswordReset | None:
    """The unused, unexpired reset link ``token`` names, or ``None``."""
    if not token or not isinstance(token, str) or len(token) > 100:
        return None
    return (PasswordReset.select().where((PasswordReset.token_hash == _hash(token))
                                         & PasswordReset.used_at.is_null() & (PasswordReset.expires_at > utcnow()))
            .first())


def complete_reset(token: str, password: str) -> Customer:
    """Use reset link ``token`` to set ``password``: once only, and every open session ends.

    :class:`ValidationError` for a bad password (the link stays usable) or a link that is
    unknown, used or expired.
    """
    check_password(password)
    with database.atomic():
        reset = valid_reset(token)
        if reset is None:
            raise ValidationError("this link has expired or was already used; ask for a new one", "token")
        # marking it used first, under the row's own condition, lets only one of two racing requests through
        used = (PasswordReset.update(used_at=utcnow())
                .where((PasswordReset.id == reset.id) & PasswordReset.used_at.is_null()).execute())
        if not used:
            raise ValidationError("this link has expired or was already used; ask for a new one", "token")
        # the other links sent to the customer are spent too
        (PasswordReset.update(used_at=utcnow())
         .where((PasswordReset.customer == reset.customer_id) & PasswordReset.used_at.is_null()).execute())
        customer = Customer.get_by_id(reset.customer_id)
        set_password(customer, password, end_sessions=True)
        audit.record("customer.portal_reset_used", "customer", customer.id)
    return customer
