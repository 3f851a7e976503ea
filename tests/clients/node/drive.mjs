// Drives one Node client through railproxy and prints, as one JSON line, what the client
// surfaced: the text it yielded, the last finish_reason, and the error it threw (if any).
// Usage: node drive.mjs '{"client": "openai"|"hf", "op": "chat_stream"|"chat_whole"|"tgi_stream", "base": "http://127.0.0.1:PORT"}'
// The Responses API (client "openai"): op "responses_stream" (create with stream: true),
// "responses_helper" (responses.stream()) or "responses_whole"; finish_reason is then the
// response's status, and its incomplete_details.reason when it has one.
import OpenAI from "openai";
import { InferenceClient } from "@huggingface/inference";

const { client, op, base } = JSON.parse(process.argv[2]);
const messages = [{ role: "user", content: "hi" }];
const out = { text: "", finish_reason: null, error: null };

function take(chunk) {
  const choice = chunk.choices?.[0];
  if (!choice) return;
  out.text += choice.delta?.content ?? "";
  out.finish_reason = choice.finish_reason ?? out.finish_reason;
}

function takeEvent(ev) {
  if (ev.type === "response.output_text.delta" || ev.type === "response.refusal.delta") {
    out.text += ev.delta;
  } else if (ev.type.startsWith("response.") && ev.response?.status) {
    const reason = ev.response.incomplete_details?.reason;
    out.finish_reason = reason ? `${ev.response.status}:${reason}` : ev.response.status;
  }
}

async function responses(c) {
  const params = { model: "m", input: "hi" };
  if (op === "responses_whole") {
    const r = await c.responses.create(params);
    out.text = r.output_text;
    takeEvent({ type: "response.whole", response: r });
  } else if (op === "responses_helper") {
    const stream = c.responses.stream(params);
    for await (const ev of stream) takeEvent(ev);
  } else {
    const stream = await c.responses.create({ ...params, stream: true });
    for await (const ev of stream) takeEvent(ev);
  }
}

async function openai() {
  const c = new OpenAI({ baseURL: `${base}/v1`, apiKey: "sk-test", maxRetries: 0 });
  if (op.startsWith("responses")) return responses(c);
  if (op === "chat_whole") {
    const r = await c.chat.completions.create({ model: "m", messages });
    out.text = r.choices[0].message.content;
    out.finish_reason = r.choices[0].finish_reason;
    return;
  }
  const stream = await c.chat.completions.create({ model: "m", messages, stream: true });
  for await (const chunk of stream) take(chunk);
}

async function hf() {
  const endpointUrl = op === "tgi_stream" ? base : `${base}/v1`;
  const h = new InferenceClient(undefined, { endpointUrl });
  if (op === "chat_whole") {
    const r = await h.chatCompletion({ model: "m", messages });
    out.text = r.choices[0].message.content;
    out.finish_reason = r.choices[0].finish_reason;
  } else if (op === "chat_stream") {
    for await (const chunk of h.chatCompletionStream({ model: "m", messages })) take(chunk);
  } else {
    const params = { inputs: "hi", parameters: { max_new_tokens: 20 } };
    for await (const chunk of h.textGenerationStream(params)) out.text += chunk.token?.text ?? "";
  }
}

try {
  await (client === "openai" ? openai() : hf());
} catch (e) {
  out.error = {
    name: e.constructor.name,
    status: e.status ?? e.httpResponse?.status ?? null,
    code: e.code ?? null,
    message: e.message,
    url: e.httpRequest?.url ?? null,
    body: e.httpResponse?.body ?? e.error ?? null,
  };
}
console.log(JSON.stringify(out));
