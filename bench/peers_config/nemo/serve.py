"""NeMo Guardrails' server as ``nemoguardrails server --disable-chat-ui`` starts it, but on
127.0.0.1 (the CLI binds 0.0.0.0) and logging at warning level, as railproxy does in the
bench. Runs in NeMo's own environment: ``python serve.py CONFIG_DIR PORT``."""

import os
import sys

os.environ["NEMO_GUARDRAILS_DISABLE_CHAT_UI"] = "true"

import uvicorn
from nemoguardrails.server import api
from nemoguardrails.telemetry import DeploymentTypeEnum, set_deployment_type

set_deployment_type(DeploymentTypeEnum.API.value)
api.app.rails_config_path = sys.argv[1].rstrip(os.path.sep)
api.app.disable_chat_ui = True
uvicorn.run(api.app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
