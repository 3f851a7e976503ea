"""``railproxy`` with every huge text handled on the event loop: the reference of
``bench/stall.py``, what one 8 MB prompt did to the other requests before ``rails.offload``.

The same ``proxy.cli.main`` with the same arguments; only ``rails.offload.INLINE_CHARS`` is
raised so that no text, however long, goes to the worker process: prompt tokens are
counted and local rails run inline, as they were.

Run: ``python -m bench.stall_inline serve --config FILE ...``.
"""

from __future__ import annotations

import sys

from proxy.cli import main
from rails import offload

if __name__ == "__main__":
    offload.INLINE_CHARS = sys.maxsize
    sys.exit(main())
