/** Validation of everything callers pass in: options, create input, revoke selectors. */
import { resolve } from "node:path";
import * as v from "valibot";
import { TokenStoreError } from "./errors.ts";
import { ID, PROJECT, PROJECT_MESSAGE, type Scope, TASK, TASK_MESSAGE } from "./format.ts";
import { MIN_STALE_MS } from "./io.ts";

/** The longest lifetime `create` accepts: 366 days. */
export const MAX_EXPIRES_IN_SECONDS = 366 * 86_400;

const fn = (name: string) => v.optional(v.function(`Expected \`${name}\` to be a function`));
const FILE = v.pipe(
  v.string("Expected `file` to be a path"),
  v.minLength(1, "Expected `file` to be a non-empty path"),
);
const STALE_MESSAGE = `Expected \`staleMs\` to be a whole number from ${MIN_STALE_MS} to 600000`;

const StoreOptionsSchema = v.strictObject(
  {
    file: FILE,
    now: fn("now"),
    randomBytes: fn("randomBytes"),
    staleMs: v.optional(
      v.pipe(
        v.number(STALE_MESSAGE),
        v.integer(STALE_MESSAGE),
        v.minValue(MIN_STALE_MS, STALE_MESSAGE),
        v.maxValue(600_000, STALE_MESSAGE),
      ),
    ),
    retries: v.optional(
      v.pipe(
        v.number("Expected `retries` to be a whole number from 0 to 10000"),
        v.integer("Expected `retries` to be a whole number from 0 to 10000"),
        v.minValue(0, "Expected `retries` to be a whole number from 0 to 10000"),
        v.maxValue(10_000, "Expected `retries` to be a whole number from 0 to 10000"),
      ),
    ),
  },
  "Expected options with only file, now, randomBytes, staleMs and retries",
);

const VerifierOptionsSchema = v.strictObject(
  {
    file: FILE,
    now: fn("now"),
    logger: v.optional(v.looseObject({}, "Expected `logger` to be a logger")),
  },
  "Expected options with only file, now and logger",
);

const project = v.pipe(v.string(PROJECT_MESSAGE), v.regex(PROJECT, PROJECT_MESSAGE));
const task = v.pipe(v.string(TASK_MESSAGE), v.regex(TASK, TASK_MESSAGE));
const EXPIRES_MESSAGE = `Expected \`expiresInSeconds\` to be a whole number from 1 to ${MAX_EXPIRES_IN_SECONDS}`;

const CreateInputSchema = v.strictObject(
  {
    project,
    task,
    scopes: v.optional(
      v.pipe(
        v.array(v.picklist(["read", "write"], "Expected scopes among read and write")),
        v.minLength(1, "Expected at least one scope"),
      ),
    ),
    expiresInSeconds: v.optional(
      v.pipe(
        v.number(EXPIRES_MESSAGE),
        v.integer(EXPIRES_MESSAGE),
        v.minValue(1, EXPIRES_MESSAGE),
        v.maxValue(MAX_EXPIRES_IN_SECONDS, EXPIRES_MESSAGE),
      ),
    ),
  },
  "Expected only project, task, scopes and expiresInSeconds",
);

const SelectorSchema = v.union(
  [
    v.strictObject({ id: v.pipe(v.string(), v.regex(ID)) }),
    v.strictObject({ task, project: v.optional(project) }),
    v.strictObject({ project }),
  ],
  "Expected { id: gt_<16 hex> }, { task, project? } or { project } with valid values",
);

function check<S extends v.GenericSchema>(schema: S, input: unknown): v.InferOutput<S> {
  const result = v.safeParse(schema, input);
  if (result.success) return result.output;
  const issue = result.issues[0];
  // SECURITY: only our own messages; valibot's defaults would quote the received value.
  throw new TokenStoreError("BTL_TOKENS_INVALID_INPUT", issue?.message ?? "invalid input");
}

/** Validates store options; returns the absolute file. Throws BTL_TOKENS_INVALID_INPUT. */
export function checkStoreOptions(options: unknown): string {
  return resolve(check(StoreOptionsSchema, options).file);
}

/** Validates verifier options; returns the absolute file. Throws BTL_TOKENS_INVALID_INPUT. */
export function checkVerifierOptions(options: unknown): string {
  return resolve(check(VerifierOptionsSchema, options).file);
}

/** A validated `create` input, scopes deduplicated and ordered (default read and write). */
export interface CreateInput {
  readonly project: string;
  readonly task: string;
  readonly scopes: readonly Scope[];
  readonly expiresInSeconds: number | undefined;
}

/** Validates a `create` input. Throws BTL_TOKENS_INVALID_INPUT. */
export function checkCreateInput(input: unknown): CreateInput {
  const out = check(CreateInputSchema, input);
  const scopes = new Set(out.scopes ?? ["read", "write"]);
  return Object.freeze({
    project: out.project,
    task: out.task,
    scopes: Object.freeze((["read", "write"] as const).filter((s) => scopes.has(s))),
    expiresInSeconds: out.expiresInSeconds,
  });
}

/** Which records a revoke selector matches. Throws BTL_TOKENS_INVALID_INPUT. */
export function selectorMatcher(
  selector: unknown,
): (r: { id: string; project: string; task: string }) => boolean {
  const s = check(SelectorSchema, selector);
  if ("id" in s) return (r) => r.id === s.id;
  if ("task" in s) return (r) => r.task === s.task && (s.project ?? r.project) === r.project;
  return (r) => r.project === s.project;
}
