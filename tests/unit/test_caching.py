"""IdentityCache: a value made once per object, never another object's value."""

from __future__ import annotations

from fhircare.caching import IdentityCache


def test_a_value_is_made_once_per_object_and_equal_objects_do_not_share_it():
    cache: IdentityCache[int] = IdentityCache(limit=4)
    made: list[int] = []
    one, same_content = {"a": 1}, {"a": 1}

    def make(n: int):
        return lambda: made.append(n) or n

    assert cache.get((one,), make(1)) == 1
    assert cache.get((one,), make(9)) == 1  # kept
    assert cache.get((same_content,), make(2)) == 2  # equal, but another object
    assert made == [1, 2]


def test_it_stays_within_its_limit():
    cache: IdentityCache[int] = IdentityCache(limit=3)
    kept = [{"n": n} for n in range(10)]
    for n, obj in enumerate(kept):
        cache.get((obj,), lambda n=n: n)
    assert len(cache._made) <= 3
