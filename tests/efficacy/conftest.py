"""The integration harness's fixtures (a real fake upstream, the real proxy on 127.0.0.1)."""

from integration.conftest import fake, proxy, started_apps

__all__ = ["fake", "proxy", "started_apps"]
