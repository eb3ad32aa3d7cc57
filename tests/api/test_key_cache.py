"""The server's cache of checked API keys (RECOUP_API_KEY_CACHE_SECONDS): a key checked moments
ago is not read again, for at most the time to live; 0 turns it off; it stays bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from recoup.api.app import create_app
from recoup.apikeys import service as apikey_service
from recoup.apikeys.service import MAX_CACHED_KEYS, Caller, KeyCache, check_key
from recoup.core.env import DEFAULT_API_KEY_CACHE_SECONDS, load_env
from recoup.core.errors import RecoupError
from recoup.core.requests import async_database
from tests.api.conftest import auth

CALLER = Caller(id=1, name="billing", role="collector")


def test_a_checked_key_is_kept_for_its_time_to_live_and_no_longer() -> None:
    now = [100.0]
    cache = KeyCache(5, clock=lambda: now[0])
    assert cache.get("rk_a") is None
    cache.put("rk_a", CALLER)
    now[0] += 4.99
    assert cache.get("rk_a") == CALLER
    assert cache.get("rk_b") is None
    now[0] += 0.01
    assert cache.get("rk_a") is None


def test_a_time_to_live_of_zero_keeps_nothing() -> None:
    cache = KeyCache(0)
    cache.put("rk_a", CALLER)
    assert cache.get("rk_a") is None


def test_the_cache_stays_bounded() -> None:
    cache = KeyCache(60)
    for n in range(MAX_CACHED_KEYS + 1):
        cache.put(f"rk_{n}", CALLER)
    assert cache.get(f"rk_{MAX_CACHED_KEYS}") == CALLER
    assert cache.get("rk_0") is None
    assert len(cache._callers) == 1


def test_the_time_to_live_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECOUP_API_KEY_CACHE_SECONDS", raising=False)
    assert load_env().api_key_cache_seconds == DEFAULT_API_KEY_CACHE_SECONDS
    monkeypatch.setenv("RECOUP_API_KEY_CACHE_SECONDS", "0")
    assert load_env().api_key_cache_seconds == 0
    for bad in ("soon", "-1", "301"):
        monkeypatch.setenv("RECOUP_API_KEY_CACHE_SECONDS", bad)
        with pytest.raises(RecoupError, match="RECOUP_API_KEY_CACHE_SECONDS must be a number"):
            load_env()


def test_a_key_used_from_the_cache_is_still_read_again_after_its_time_to_live() -> None:
    """Using a cached key does not renew it: a revoked key in steady use is refused in time."""
    now = [100.0]
    cache = KeyCache(5, clock=lambda: now[0])
    cache.put("rk_a", CALLER)
    now[0] += 4
    assert check_key(None, cache, "rk_a") == CALLER  # type: ignore[arg-type]  # no read
    now[0] += 1
    assert cache.get("rk_a") is None


def test_requests_that_miss_the_cache_together_read_their_key_once(
    db_url: str, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a key in steady use expires from the cache, every request in flight misses it at
    once: they wait on one read of it (one transaction), not one each."""
    reads: list[str] = []
    real = apikey_service.authenticate

    def counted(session: Any, key: str) -> Any:
        reads.append(key)
        return real(session, key)

    monkeypatch.setattr(apikey_service, "authenticate", counted)
    app = create_app(db_url)

    async def together() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            try:
                answers = await asyncio.gather(
                    *(client.get("/api/v1/plans", headers=auth(keys["viewer"])) for _ in range(8))
                )
            finally:
                await async_database(app).dispose()
        return [answer.status_code for answer in answers]

    assert asyncio.run(together()) == [200] * 8
    assert reads == [keys["viewer"]]
    assert app.state.key_checks == {}  # nothing left under way
