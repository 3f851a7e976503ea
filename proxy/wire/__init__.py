"""The wire: the SSE codec and one class per API protocol, both sides; sans-IO."""
