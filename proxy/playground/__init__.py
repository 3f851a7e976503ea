"""The playground: its page and its debug channel."""
