"""Who sent a request: the client key's name, its operator flag and its configs.

``request[CLIENT]`` is set by the auth middleware (``proxy.auth``) for every authenticated
request; without ``server.api_keys`` it is ``ANONYMOUS``. Later features read it: the
playground's debug channel is for ``operator`` keys only. The name, never the key, goes to
the request's log line and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Client:
    """An authenticated client (``name`` "" when railproxy does not authenticate)."""

    name: str
    operator: bool = False
    # The rails config ids this client may use, its default first; None: any config.
    configs: tuple[str, ...] | None = None

    def may_use(self, config_id: str) -> bool:
        return self.configs is None or config_id in self.configs

    @property
    def default_config(self) -> str | None:
        """The config a request that names none gets (None: the server's default)."""
        return self.configs[0] if self.configs else None


ANONYMOUS = Client("")
CLIENT = web.RequestKey("railproxy.client", Client)


def client_of(request: web.Request) -> Client:
    found = request.get(CLIENT)
    return found if found is not None else ANONYMOUS
