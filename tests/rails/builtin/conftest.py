"""Fixtures for built-in rail tests: a ``Resources`` closed after the test, and a
starter of fake JSON services (see ``rail_service_fakes``) closed after the test."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer
from rail_service_fakes import StartService, start_service

from rails.resources import Resources


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    res = Resources()
    yield res
    await res.aclose()


@pytest.fixture
async def fake_service() -> AsyncIterator[StartService]:
    servers: list[TestServer] = []
    yield functools.partial(start_service, servers)
    for server in servers:
        await server.close()
