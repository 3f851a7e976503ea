"""Fake upstream LLM servers (vLLM, TGI, llama.cpp, llama-cpp-python) for railproxy's tests."""

from .faults import Fault, FaultKind
from .upstream import FakeUpstream, RecordedRequest, Script, running

__all__ = ["FakeUpstream", "Fault", "FaultKind", "RecordedRequest", "Script", "running"]
