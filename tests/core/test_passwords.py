"""Password hashes: argon2id, checked in constant shape, upgraded when the costs change."""

from argon2 import PasswordHasher

from core import passwords


def test_hash_and_verify():
    stored = passwords.hash_password("a long password")
    assert stored.startswith("$argon2id$") and "a long password" not in stored
    assert passwords.verify(stored, "a long password")
    assert not passwords.verify(stored, "a long passwore")
    assert not passwords.verify(stored, "")
    assert not passwords.verify("not a hash", "a long password")


def test_nobody_never_matches():
    assert not passwords.verify(None, "not-a-real-password")
    assert not passwords.verify(None, "")


def test_a_hash_made_with_other_costs_needs_rehashing():
    other = PasswordHasher(time_cost=passwords.hasher.time_cost + 1, memory_cost=passwords.hasher.memory_cost,
                           parallelism=1)
    assert passwords.needs_rehash(other.hash("x"))
    assert not passwords.needs_rehash(passwords.hash_password("x"))


def test_the_product_uses_the_library_defaults():
    import importlib

    fresh = importlib.reload(importlib.import_module("core.passwords"))
    try:
        default = PasswordHasher()
        assert (fresh.hasher.time_cost, fresh.hasher.memory_cost) == (default.time_cost, default.memory_cost)
    finally:
        fresh.hasher = PasswordHasher(time_cost=1, memory_cost=256, parallelism=1)
