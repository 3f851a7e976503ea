"""railproxy's benchmark: a fast fake upstream, a fake judge, a load generator and the
runner that measures the upstream directly and through railproxy in one invocation.

Run ``python -m bench.run`` (full matrix) or ``python -m bench.run --quick``; see
``bench/README.md``.
"""
