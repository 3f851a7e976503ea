"""The terminal chat client (``railproxy chat``): session, wire, render."""
