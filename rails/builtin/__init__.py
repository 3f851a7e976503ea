"""Built-in rails, one per module; ``rails.registry.BUILTIN`` maps type names to them.

``regex``, ``blocklist``, ``pii`` and ``secrets`` judge locally with patterns compiled at
start-up (``regex`` also holds the scanning the other pattern rails share). ``llm_judge``,
``llama_guard`` and ``http`` call a service through the shared ``Resources.http()``
session (``http`` holds the JSON POST they share). ``python`` loads your own class.

Importing this package imports no rail.
"""
