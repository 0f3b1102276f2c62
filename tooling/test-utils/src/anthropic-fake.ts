/**
 * A fake of the Anthropic API on 127.0.0.1, following its documentation: the Messages API
 * (`POST /v1/messages`, JSON or server-sent events), token counting, the models list, and the
 * documented error shape. It checks the credential (`x-api-key`, or `Authorization: Bearer` for
 * OAuth-style clients), answers a fixed text, and records every request.
 * https://docs.anthropic.com/en/api/messages, …/messages-streaming, …/errors
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { onTestFinished } from "vitest";
import { readBody } from "./http-body.ts";
import { closerOf, listenLoopback } from "./listen.ts";

const MAX_BODY_BYTES = 32 * 1024 * 1024;
const JSON_TYPE = "application/json";
/** The models the fake lists (`GET /v1/models`); any model name is accepted for messages. */
const MODELS = [
  { id: "claude-opus-4-1-20250805", display_name: "Claude Opus 4.1", created_at: "2025-08-05" },
  { id: "claude-sonnet-4-5-20250929", display_name: "Claude Sonnet 4.5", created_at: "2025-09-29" },
  { id: "claude-haiku-4-5-20251001", display_name: "Claude Haiku 4.5", created_at: "2025-10-01" },
];

/** Options of {@link startAnthropicFake}. */
export interface AnthropicFakeOptions {
  /** The only credential accepted, as `x-api-key` or as `Authorization: Bearer`. */
  key: string;
  /** Close it when the current test finishes (default); false outside a test (the demo). */
  closeAfterTest?: boolean;
  /** The text every message answers. */
  answer: string;
}

/** A request as the fake received it (rejected ones too), with the status it answered. */
export interface AnthropicFakeRequest {
  method: string;
  /** The request target: path and query (`/v1/messages?beta=true`). */
  url: string;
  /** The path without the query. */
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** The body parsed as JSON, when it was JSON. */
  json: unknown;
  status: number;
}

/** A running fake of the Anthropic API. */
export interface AnthropicFake {
  /** `http://127.0.0.1:PORT`, no trailing slash: a client's base URL. */
  url: string;
  requests: AnthropicFakeRequest[];
  close(): Promise<void>;
}

/** An error answer: status, the documented `error.type`, and its message. */
class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  constructor(status: number, type: string, message: string) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

/** An id like the API's (`msg_…`, `req_…`): a prefix and 24 base62-ish characters. */
function newId(prefix: string): string {
  return `${prefix}_01${randomBytes(18).toString("base64url").replaceAll(/[-_]/g, "x").slice(0, 22)}`;
}

/** A rough token count (about four characters a token), enough for `usage` and count_tokens. */
function estimateTokens(value: unknown): number {
  return Math.max(1, Math.ceil(JSON.stringify(value ?? "").length / 4));
}

/** The text split into a few deltas, each keeping its leading space: "Hello", " from", " the". */
function chunks(text: string): string[] {
  const parts = text.match(/\s*\S+/g) ?? [text];
  const tail = text.slice(parts.join("").length);
  if (tail !== "") parts.push(tail);
  return parts;
}

function sse(type: string, data: Record<string, unknown>): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
}

/** The fields the Messages API requires, checked as it does (400 invalid_request_error). */
function checkMessagesBody(body: Record<string, unknown>, tokenCountOnly: boolean): void {
  const invalid = (message: string) => new ApiError(400, "invalid_request_error", message);
  if (typeof body.model !== "string" || body.model === "") throw invalid("model: Field required");
  if (!Array.isArray(body.messages)) throw invalid("messages: Field required");
  if (tokenCountOnly) return;
  if (body.messages.length === 0) throw invalid("messages: at least one message is required");
  const maxTokens = body.max_tokens;
  if (typeof maxTokens !== "number" || !Number.isInteger(maxTokens) || maxTokens < 1)
    throw invalid("max_tokens: Field required");
}

/**
 * The event types the Anthropic SDK yields for a streamed message of one text block in `deltas`
 * deltas, in order (the SDK drops `ping`).
 */
export function streamedEventTypes(deltas: number): string[] {
  return [
    "message_start",
    "content_block_start",
    ...Array.from({ length: deltas }, () => "content_block_delta"),
    "content_block_stop",
    "message_delta",
    "message_stop",
  ];
}

/**
 * Starts the fake on `127.0.0.1:0`; closed when the current test finishes. Routes:
 * `POST /v1/messages` (JSON, or SSE with `stream: true`: message_start, content_block_start,
 * ping, content_block_delta per word, content_block_stop, message_delta, message_stop),
 * `POST /v1/messages/count_tokens`, `GET /v1/models[/{id}]`, and `HEAD|GET /api/hello` (the
 * unauthenticated probe Claude Code sends to its base URL). Others answer 404 not_found_error.
 */
export async function startAnthropicFake(options: AnthropicFakeOptions): Promise<AnthropicFake> {
  const expected = digest(options.key);
  const requests: AnthropicFakeRequest[] = [];
  const failures: unknown[] = [];

  // SECURITY: digests of equal length compared in constant time; either header may carry it,
  // and a wrong value in either one fails the request.
  const checkKey = (headers: IncomingHttpHeaders): void => {
    const apiKey = headers["x-api-key"];
    const bearer = /^Bearer\s+(\S+)$/i.exec(headers.authorization ?? "")?.[1];
    const presented = [apiKey, bearer].filter((v): v is string => typeof v === "string");
    if (presented.length === 0)
      throw new ApiError(401, "authentication_error", "x-api-key header is required");
    if (!presented.every((value) => timingSafeEqual(digest(value), expected)))
      throw new ApiError(401, "authentication_error", "invalid x-api-key");
  };

  const messages = (body: Record<string, unknown>, res: ServerResponse, requestId: string) => {
    checkMessagesBody(body, false);
    const model = body.model as string;
    const inputTokens = estimateTokens([body.system, body.messages, body.tools]);
    const outputTokens = estimateTokens(options.answer);
    const id = newId("msg");
    if (body.stream !== true) {
      res.writeHead(200, { "content-type": JSON_TYPE, "request-id": requestId });
      res.end(
        JSON.stringify({
          id,
          type: "message",
          role: "assistant",
          model,
          content: [{ type: "text", text: options.answer }],
          stop_reason: "end_turn",
          stop_sequence: null,
          usage: { input_tokens: inputTokens, output_tokens: outputTokens },
        }),
      );
      return;
    }
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "request-id": requestId,
    });
    const message = {
      id,
      type: "message",
      role: "assistant",
      model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: inputTokens, output_tokens: 1 },
    };
    res.write(sse("message_start", { message }));
    res.write(sse("content_block_start", { index: 0, content_block: { type: "text", text: "" } }));
    res.write(sse("ping", {}));
    for (const text of chunks(options.answer))
      res.write(sse("content_block_delta", { index: 0, delta: { type: "text_delta", text } }));
    res.write(sse("content_block_stop", { index: 0 }));
    res.write(
      sse("message_delta", {
        delta: { stop_reason: "end_turn", stop_sequence: null },
        usage: { output_tokens: outputTokens },
      }),
    );
    res.end(sse("message_stop", {}));
  };

  const model = (entry: (typeof MODELS)[number]) => ({
    type: "model",
    id: entry.id,
    display_name: entry.display_name,
    created_at: `${entry.created_at}T00:00:00Z`,
  });

  const route = (method: string, path: string, json: unknown, res: ServerResponse, id: string) => {
    const answer = (status: number, value: unknown) => {
      res.writeHead(status, { "content-type": JSON_TYPE, "request-id": id });
      res.end(JSON.stringify(value));
    };
    const body = () => {
      if (typeof json !== "object" || json === null || Array.isArray(json))
        throw new ApiError(400, "invalid_request_error", "Expected a JSON object as the body");
      return json as Record<string, unknown>;
    };
    if (path === "/v1/messages" && method === "POST") return messages(body(), res, id);
    if (path === "/v1/messages/count_tokens" && method === "POST") {
      const request = body();
      checkMessagesBody(request, true);
      return answer(200, {
        input_tokens: estimateTokens([request.system, request.messages, request.tools]),
      });
    }
    if (path === "/v1/models" && method === "GET") {
      const data = MODELS.map(model);
      return answer(200, {
        data,
        has_more: false,
        first_id: data[0]?.id ?? null,
        last_id: data.at(-1)?.id ?? null,
      });
    }
    const named = /^\/v1\/models\/([^/]+)$/.exec(path)?.[1];
    const found = MODELS.find((entry) => entry.id === named);
    if (named !== undefined && method === "GET") {
      if (found === undefined) throw new ApiError(404, "not_found_error", `model: ${named}`);
      return answer(200, model(found));
    }
    throw new ApiError(404, "not_found_error", "Not found");
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method ?? "";
    const url = req.url ?? "";
    const path = url.split("?")[0] ?? "";
    const requestId = newId("req");
    const raw = await readBody(
      req,
      MAX_BODY_BYTES,
      () => new ApiError(413, "request_too_large", "Request exceeds the maximum allowed size"),
    ).catch((error: unknown) => error as ApiError);
    const body = raw instanceof Buffer ? raw.toString("utf8") : "";
    let json: unknown;
    try {
      json = body === "" ? undefined : JSON.parse(body);
    } catch {
      json = undefined;
    }
    const recorded: AnthropicFakeRequest = {
      method,
      url,
      path,
      headers: req.headers,
      body,
      json,
      status: 0,
    };
    requests.push(recorded);
    res.on("finish", () => {
      recorded.status = res.statusCode;
    });
    try {
      if (raw instanceof ApiError) throw raw;
      if (path === "/api/hello" && (method === "HEAD" || method === "GET")) {
        res.writeHead(200, { "content-type": JSON_TYPE, "request-id": requestId });
        res.end(method === "HEAD" ? undefined : '{"message":"hello"}');
        return;
      }
      checkKey(req.headers);
      if (req.headers["anthropic-version"] === undefined)
        throw new ApiError(400, "invalid_request_error", "anthropic-version: header is required");
      if (body !== "" && json === undefined)
        throw new ApiError(400, "invalid_request_error", "The request body is not valid JSON");
      route(method, path, json, res, requestId);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      res.writeHead(error.status, { "content-type": JSON_TYPE, "request-id": requestId });
      res.end(
        JSON.stringify({
          type: "error",
          error: { type: error.type, message: error.message },
          request_id: requestId,
        }),
      );
    }
  };

  const server = createServer(
    { requestTimeout: 60_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 },
    (req, res) => {
      handle(req, res).catch((error: unknown) => {
        failures.push(error);
        if (!res.headersSent) res.writeHead(500, { "content-type": JSON_TYPE });
        if (!res.writableEnded)
          res.end(
            '{"type":"error","error":{"type":"api_error","message":"Internal server error"}}',
          );
      });
    },
  );
  const port = await listenLoopback(server);
  const closeServer = closerOf(server);
  const close = async (): Promise<void> => {
    await closeServer();
    if (failures.length > 0)
      throw new Error("the Anthropic fake failed", { cause: failures.splice(0)[0] });
  };
  if (options.closeAfterTest !== false) onTestFinished(() => close());
  return { url: `http://127.0.0.1:${port}`, requests, close };
}
