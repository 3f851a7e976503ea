"""What network rails share: one pooled HTTP client session, built once per config.

The one module of ``rails/`` that knows HTTP (``rails/base.py``, the Rail contract, names
it only for typing): ``llm_judge``, ``llama_guard`` and ``http`` get their session from here;
every rail's constructor is handed the config's ``Resources``.
"""

from __future__ import annotations

import aiohttp


class Resources:
    """Shared, start-up-built things a rail may use: one pooled HTTP client session.

    The session is created on first use (inside the running loop) and closed by ``aclose``.
    """

    def __init__(self, connector_limit: int = 100) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._limit = connector_limit

    def http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
