import Anthropic from "@anthropic-ai/sdk";
import { describe, expect, it, vi } from "vitest";
import {
  type AnthropicFake,
  makeCanary,
  startAnthropicFake,
  streamedEventTypes,
} from "../src/index.ts";

const ANSWER = "Hello from the fake Messages API.";
const MODEL = "claude-sonnet-4-5-20250929";
const ASK = { model: MODEL, max_tokens: 64, messages: [{ role: "user" as const, content: "Hi" }] };

/** An SDK client reading nothing of the runner's environment. */
function client(fake: AnthropicFake, auth: { apiKey: string } | { authToken: string }) {
  for (const name of ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"])
    vi.stubEnv(name, undefined);
  return new Anthropic({
    ...("apiKey" in auth ? { apiKey: auth.apiKey } : { authToken: auth.authToken, apiKey: null }),
    baseURL: fake.url,
    maxRetries: 0,
  });
}

/** A raw POST, for what the SDK hides (the bytes on the wire, error bodies). */
async function post(fake: AnthropicFake, path: string, body: unknown, headers = {}) {
  const reply = await fetch(`${fake.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "anthropic-version": "2023-06-01", ...headers },
    body: JSON.stringify(body),
  });
  return { status: reply.status, headers: reply.headers, text: await reply.text() };
}

describe("startAnthropicFake", () => {
  it("answers messages.create with the fixed text and records the request the SDK sent", async () => {
    const key = makeCanary("sk-ant-api03");
    const fake = await startAnthropicFake({ key, answer: ANSWER });
    const message = await client(fake, { apiKey: key }).messages.create(ASK);

    expect(message).toMatchObject({
      type: "message",
      role: "assistant",
      model: MODEL,
      content: [{ type: "text", text: ANSWER }],
      stop_reason: "end_turn",
    });
    expect(message.id).toMatch(/^msg_/);
    expect(message.usage.output_tokens).toBeGreaterThan(0);
    const [seen] = fake.requests;
    expect(fake.requests).toHaveLength(1);
    expect(seen).toMatchObject({ method: "POST", path: "/v1/messages", status: 200 });
    // SDK 1.x sends an API key as a Bearer token; Claude Code's bundled SDK sends x-api-key
    // (the raw requests below use that header).
    expect(seen?.headers.authorization).toBe(`Bearer ${key}`);
    expect(seen?.headers["anthropic-version"]).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(seen?.json).toMatchObject(ASK);
  });

  it("streams through the SDK: create({ stream: true }) yields the documented events in order", async () => {
    const key = makeCanary("sk-ant-api03");
    const fake = await startAnthropicFake({ key, answer: ANSWER });
    const stream = await client(fake, { apiKey: key }).messages.create({ ...ASK, stream: true });
    const types: string[] = [];
    const texts: string[] = [];
    let stop: string | null = null;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "content_block_delta" && event.delta.type === "text_delta")
        texts.push(event.delta.text);
      if (event.type === "message_delta") stop = event.delta.stop_reason;
    }
    // The SDK drops `ping`; the raw stream below shows it is there.
    expect(types).toEqual(streamedEventTypes(texts.length));
    expect(texts.length).toBeGreaterThan(1);
    expect(texts.join("")).toBe(ANSWER);
    expect(stop).toBe("end_turn");
  });

  it("streams through the SDK's messages.stream helper, with an OAuth-style Bearer token", async () => {
    const key = makeCanary("sk-ant-oat01");
    const fake = await startAnthropicFake({ key, answer: ANSWER });
    const stream = client(fake, { authToken: key }).messages.stream(ASK);
    expect(await stream.finalText()).toBe(ANSWER);
    expect((await stream.finalMessage()).stop_reason).toBe("end_turn");
    expect(fake.requests[0]?.headers.authorization).toBe(`Bearer ${key}`);
    expect(fake.requests[0]?.headers["x-api-key"]).toBeUndefined();
  });

  it("sends server-sent events on the wire, ping included, each data line typed as its event", async () => {
    const key = makeCanary("sk-ant-api03");
    const fake = await startAnthropicFake({ key, answer: ANSWER });
    const reply = await post(fake, "/v1/messages", { ...ASK, stream: true }, { "x-api-key": key });
    expect(reply.status).toBe(200);
    expect(reply.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(reply.headers.get("request-id")).toMatch(/^req_/);
    const events = reply.text
      .trim()
      .split("\n\n")
      .map((block) => {
        const [event, data] = block.split("\n");
        return { event: event?.replace(/^event: /, ""), data: JSON.parse(data?.slice(6) ?? "") };
      });
    expect(events.map((e) => e.event).slice(0, 3)).toEqual([
      "message_start",
      "content_block_start",
      "ping",
    ]);
    expect(events.map((e) => e.event).slice(-3)).toEqual([
      "content_block_stop",
      "message_delta",
      "message_stop",
    ]);
    for (const { event, data } of events) expect(data.type).toBe(event);
    expect(events.at(-2)?.data).toMatchObject({
      delta: { stop_reason: "end_turn" },
      usage: { output_tokens: expect.any(Number) },
    });
  });

  it("counts tokens and lists models through the SDK", async () => {
    const key = makeCanary("sk-ant-api03");
    const fake = await startAnthropicFake({ key, answer: ANSWER });
    const sdk = client(fake, { apiKey: key });
    const counted = await sdk.messages.countTokens({ model: MODEL, messages: ASK.messages });
    expect(counted.input_tokens).toBeGreaterThan(0);
    const models = [];
    for await (const model of sdk.models.list()) models.push(model.id);
    expect(models).toContain(MODEL);
    expect((await sdk.models.retrieve(MODEL)).display_name).toBe("Claude Sonnet 4.5");
  });

  it("refuses a wrong key with 401 authentication_error in the documented shape", async () => {
    const key = makeCanary("sk-ant-api03");
    const fake = await startAnthropicFake({ key, answer: ANSWER });
    const wrong = client(fake, { apiKey: "sk-ant-api03-wrong" }).messages.create(ASK);
    await expect(wrong).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
    await expect(wrong).rejects.toMatchObject({
      status: 401,
      error: { type: "error", error: { type: "authentication_error" } },
    });
    const bearer = client(fake, { authToken: "sk-ant-oat01-wrong" }).messages.create(ASK);
    await expect(bearer).rejects.toMatchObject({ status: 401 });

    const none = await post(fake, "/v1/messages", ASK);
    expect(none.status).toBe(401);
    expect(JSON.parse(none.text)).toEqual({
      type: "error",
      error: { type: "authentication_error", message: "x-api-key header is required" },
      request_id: expect.stringMatching(/^req_/),
    });
    const wrongHeader = await post(fake, "/v1/messages", ASK, { "x-api-key": `${key}x` });
    expect([wrongHeader.status, JSON.parse(wrongHeader.text).error]).toEqual([
      401,
      { type: "authentication_error", message: "invalid x-api-key" },
    ]);
    // One right and one wrong credential is still refused.
    const mixed = await post(fake, "/v1/messages", ASK, {
      "x-api-key": key,
      authorization: "Bearer sk-ant-oat01-wrong",
    });
    expect(mixed.status).toBe(401);
    expect(fake.requests.map((r) => r.status)).toEqual([401, 401, 401, 401, 401]);
  });

  it("answers 400 invalid_request_error for a missing field or version header, 404 elsewhere", async () => {
    const key = makeCanary("sk-ant-api03");
    const fake = await startAnthropicFake({ key, answer: ANSWER });
    const auth = { "x-api-key": key };
    const errorType = (text: string) =>
      (JSON.parse(text) as { error: { type: string } }).error.type;

    const noMax = await post(fake, "/v1/messages", { model: MODEL, messages: ASK.messages }, auth);
    expect([noMax.status, errorType(noMax.text)]).toEqual([400, "invalid_request_error"]);
    const noVersion = await fetch(`${fake.url}/v1/messages`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify(ASK),
    });
    expect(noVersion.status).toBe(400);
    const unknown = await post(fake, "/v1/completions", ASK, auth);
    expect([unknown.status, errorType(unknown.text)]).toEqual([404, "not_found_error"]);
    // The probe Claude Code sends to its base URL needs no key.
    expect((await fetch(`${fake.url}/api/hello`, { method: "HEAD" })).status).toBe(200);
  });
});
