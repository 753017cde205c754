// Drives the brew-bridge simulator with the official Brew SDK (@brew.new/sdk@9.3.0) over real
// HTTP, and checks that the SDK sees every answer the way it would see the real API's.
//
// Why: the whole bridge is tested against the simulator; if the official client would read one
// of its answers differently from production's (an error envelope it cannot parse, a replay with
// new run ids, a 429 without Retry-After), every test built on it proves the wrong thing.
//
// Usage: node tests/node/sdk_fidelity.mjs <baseUrl> <adminUrl>
//   baseUrl   the API base, e.g. http://127.0.0.1:8787/api  (what production calls https://brew.new/api)
//   adminUrl  the server root holding /_sim/*, e.g. http://127.0.0.1:8787
//   BREW_SDK_DIR (env) the unpacked SDK package dir; default <repo>/.brew-sdk/package
//     (unpack it with ../shared/tools/brew-sdk.sh .brew-sdk)
//
// Output: one JSON line per check on stdout, {"check", "ok", "detail"}, then
// {"done": true, "passed", "failed"}. Exit status 0 when every check passed, 1 when one failed,
// 2 when the driver could not start. The script sets up its own state through /_sim/* (its own
// keys and triggers, random suffixes), so it also runs against a long-lived `brew-bridge sim`;
// it changes the automation.runs.write limit while it runs and puts the default (60/60 s) back.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const [baseUrl, adminUrl] = process.argv.slice(2);
if (!baseUrl || !adminUrl) {
  console.error("usage: node tests/node/sdk_fidelity.mjs <baseUrl> <adminUrl>");
  process.exit(2);
}
const sdkDir =
  process.env.BREW_SDK_DIR ?? fileURLToPath(new URL("../../.brew-sdk/package", import.meta.url));
let sdk;
try {
  sdk = await import(pathToFileURL(join(sdkDir, "dist", "index.js")).href);
} catch (err) {
  console.error(
    `cannot load the Brew SDK from ${sdkDir} (${err.message}); ` +
      "unpack it with ../shared/tools/brew-sdk.sh .brew-sdk or set BREW_SDK_DIR",
  );
  process.exit(2);
}
const { BrewApiError, SDK_VERSION, autoPaginate, createBrewClient } = sdk;

// ---------------------------------------------------------------- contract constants (9.3.0)

const REQUEST_ID = /^req_[0-9a-f]{32}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const LEGACY_FIRE_DOCS = "https://docs.brew.new/api-reference/public-v1/automations/fire-a-trigger";
const ERROR_TYPES = new Set([
  "authentication_error", "authorization_error", "invalid_request", "not_found",
  "not_implemented", "conflict", "rate_limit", "payment_required", "service_unavailable",
  "internal_error",
]);
const ENVELOPE_KEYS = new Set([
  "code", "type", "message", "param", "suggestion", "docs", "retryAfter", "details",
]);
const FIRE_KEYS = new Set([
  "success", "status", "code", "message", "triggerEventId", "receivedAt", "details",
]);
const RUN_KEYS = new Set([
  "automationRunId", "automationId", "automationVersionId", "triggerInstanceId", "mode",
  "status", "recipientEmail", "startedAt", "completedAt", "error", "logs", "logsTruncated",
]);
const RUN_REQUIRED = ["automationRunId", "automationId", "mode", "status"];
const RUN_STATUSES = ["pending", "running", "completed", "failed", "canceled"];
const TERMINAL = new Set(["completed", "failed", "canceled"]);
const LOG_KEYS = new Set([
  "automationRunId", "nodeId", "nodeName", "nodeType", "status", "orderIndex", "branch",
  "durationMs", "startedAt", "completedAt", "error",
]);
const LOG_REQUIRED = ["automationRunId", "nodeId", "nodeName", "nodeType", "status", "orderIndex",
  "startedAt"];
const LOG_NODE_TYPES = new Set(["trigger", "wait", "filter", "split", "sendEmail"]);
const LOG_STATUSES = new Set(["running", "success", "error", "skipped"]);
const TRIGGER_KEYS = new Set([
  "triggerEventId", "title", "description", "provider", "providerEventKey", "payloadSchema",
  "createdAt", "updatedAt", "skill",
]);

// ---------------------------------------------------------------- check bookkeeping

const results = [];
const state = {}; // what earlier checks produced for later ones
const requestIds = []; // every x-request-id seen, to check they are distinct

function emit(check, ok, detail) {
  results.push({ check, ok });
  process.stdout.write(`${JSON.stringify({ check, ok, detail })}\n`);
}

/** Run one check; it passes when fn resolves, its detail is what fn returns. */
async function check(name, fn) {
  try {
    emit(name, true, (await fn()) ?? null);
  } catch (err) {
    const detail = err instanceof BrewApiError
      ? `unexpected BrewApiError ${err.status} ${err.code}: ${err.message} body=${JSON.stringify(err.body)}`
      : String(err?.stack ?? err);
    emit(name, false, detail);
  }
}

/** A value an earlier check must have produced; failing loudly names that check. */
function need(key, producer) {
  if (state[key] === undefined) throw new Error(`prerequisite missing: check "${producer}" failed`);
  return state[key];
}

const suffix = randomBytes(4).toString("hex");
const uniqueKey = (label) => `sdk-fidelity-${label}-${suffix}-${randomBytes(3).toString("hex")}`;

function keysSubset(obj, allowed, what) {
  const extra = Object.keys(obj).filter((k) => !allowed.has(k));
  assert.deepEqual(extra, [], `${what} has keys the 9.3.0 contract does not define: ${extra}`);
}

function assertIso(value, what) {
  assert.equal(typeof value, "string", `${what} must be an ISO-8601 string, got ${value}`);
  assert.match(value, ISO_TIME, `${what} is not ISO-8601: ${value}`);
  assert.ok(!Number.isNaN(Date.parse(value)), `${what} does not parse as a date: ${value}`);
}

function assertRateLimitHeaders(headers, what) {
  const limit = Number(headers.get("x-ratelimit-limit"));
  const remaining = Number(headers.get("x-ratelimit-remaining"));
  const reset = Number(headers.get("x-ratelimit-reset"));
  for (const [name, value] of [["Limit", limit], ["Remaining", remaining], ["Reset", reset]]) {
    assert.ok(Number.isInteger(value), `${what}: X-RateLimit-${name} must be an integer`);
  }
  assert.ok(limit >= 1 && remaining >= 0 && remaining <= limit,
    `${what}: X-RateLimit-Remaining ${remaining} out of [0, ${limit}]`);
  const now = Date.now() / 1000;
  // Epoch seconds, not a delta and not milliseconds.
  assert.ok(reset >= Math.floor(now) - 1 && reset <= now + 3600,
    `${what}: X-RateLimit-Reset ${reset} is not epoch seconds near now (${Math.floor(now)})`);
  return { limit, remaining, reset };
}

/** A raw SDK success ({raw: true}): HTTP status and a well-formed x-request-id. */
function assertRawOk(raw, status, what) {
  assert.equal(raw.status, status, `${what}: HTTP ${raw.status}, expected ${status}`);
  assert.match(raw.requestId ?? "", REQUEST_ID, `${what}: x-request-id ${raw.requestId}`);
  requestIds.push(raw.requestId);
}

/**
 * Await a call that must fail, and check the BrewApiError the SDK built from the answer.
 * `shapes` says which SDK parser arm may have read the body: "standard" ({error:{...}}, all of
 * code/type/message/suggestion/docs present) or "legacy" (the fire envelope). The fallback arm
 * ("unknown_error") always fails the check: it means the SDK could not read the simulator's body.
 */
async function expectApiError(promise, want) {
  let err;
  try {
    await promise;
  } catch (caught) {
    err = caught;
  }
  assert.ok(err !== undefined, `expected HTTP ${want.status} ${want.code}, the call succeeded`);
  assert.ok(err instanceof BrewApiError, `expected a BrewApiError, got ${err?.name}: ${err}`);
  assert.equal(err.name, "BrewApiError");
  const shape = classify(err);
  assert.notEqual(shape, "fallback",
    `the SDK did not read the body as an envelope (code ${err.code}); body=${JSON.stringify(err.body)}`);
  assert.ok((want.shapes ?? ["standard"]).includes(shape),
    `body read as the ${shape} envelope, expected ${want.shapes ?? ["standard"]}: ${JSON.stringify(err.body)}`);
  assert.equal(err.status, want.status, `status: ${JSON.stringify(err.body)}`);
  if (want.code !== undefined) assert.equal(err.code, want.code, "code");
  assert.equal(err.type, want.type, "type");
  assert.match(err.requestId ?? "", REQUEST_ID, `requestId ${err.requestId}`);
  requestIds.push(err.requestId);
  assert.equal(typeof err.message, "string");
  assert.ok(err.message.length > 0, "message is empty");
  if (shape === "standard") {
    const inner = err.body.error;
    keysSubset(err.body, new Set(["error"]), "error body");
    keysSubset(inner, ENVELOPE_KEYS, "error envelope");
    assert.equal(err.suggestion, inner.suggestion, "suggestion is not the simulator's own");
    assert.equal(err.docs, inner.docs, "docs is not the simulator's own");
    assert.ok(inner.suggestion.length > 0 && /^https:\/\/docs\.brew\.new\//.test(inner.docs),
      `suggestion/docs look wrong: ${inner.suggestion} / ${inner.docs}`);
    if ("param" in want) assert.equal(err.param, want.param, "param");
  } else {
    keysSubset(err.body, FIRE_KEYS, "fire envelope");
    assert.equal(err.docs, LEGACY_FIRE_DOCS);
    assertIso(err.body.receivedAt, "receivedAt");
    if (want.fireStatus !== undefined) assert.equal(err.body.status, want.fireStatus, "fire status");
  }
  return err;
}

/** Which arm of BrewApiError.fromResponse produced err (see the SDK's errors.ts). */
function classify(err) {
  const body = err.body;
  const inner = body?.error;
  if (inner && typeof inner === "object" && err.code === inner.code && err.type === inner.type
    && err.suggestion === inner.suggestion && err.docs === inner.docs) {
    return "standard";
  }
  if (body && body.success === false && err.code === body.code && err.docs === LEGACY_FIRE_DOCS) {
    return "legacy";
  }
  return "fallback";
}

async function admin(method, path, body) {
  const response = await fetch(`${adminUrl.replace(/\/+$/, "")}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`admin ${method} ${path} -> ${response.status}: ${text}`);
  return text === "" ? undefined : JSON.parse(text);
}

async function pollUntil(what, fn, { timeoutMs = 20_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

function checkRunRow(row, what) {
  keysSubset(row, RUN_KEYS, what);
  for (const key of RUN_REQUIRED) assert.ok(key in row, `${what} lacks required ${key}`);
  assert.ok(RUN_STATUSES.includes(row.status), `${what}: status ${row.status}`);
  assert.ok(["live", "test"].includes(row.mode), `${what}: mode ${row.mode}`);
  for (const key of ["startedAt", "completedAt"]) {
    if (row[key] !== undefined) assertIso(row[key], `${what}.${key}`);
  }
  if (row.error !== undefined) assert.equal(typeof row.error, "string", `${what}.error`);
}

function checkLogRow(log, runId, what) {
  keysSubset(log, LOG_KEYS, what);
  for (const key of LOG_REQUIRED) assert.ok(key in log, `${what} lacks required ${key}`);
  assert.equal(log.automationRunId, runId, `${what}.automationRunId`);
  assert.ok(LOG_NODE_TYPES.has(log.nodeType), `${what}.nodeType ${log.nodeType}`);
  assert.ok(LOG_STATUSES.has(log.status), `${what}.status ${log.status}`);
  assert.ok(Number.isInteger(log.orderIndex) && log.orderIndex >= 0, `${what}.orderIndex`);
  assertIso(log.startedAt, `${what}.startedAt`);
  if (log.durationMs !== undefined) {
    assert.ok(Number.isInteger(log.durationMs) && log.durationMs >= 0, `${what}.durationMs`);
  }
}

// ---------------------------------------------------------------- setup

const mainKey = `brew_sdk_main_${suffix}`;
const clientFor = (apiKey, extra = {}) =>
  // maxRetries 0: every answer reaches the check as the simulator sent it, nothing retried away.
  createBrewClient({ apiKey, baseUrl, timeoutMs: 10_000, maxRetries: 0, ...extra });
const brew = clientFor(mainKey);

const schema = {
  type: "object",
  fields: [
    { key: "email", type: "string", required: true },
    { key: "firstName", type: "string", required: false },
    { key: "plan", type: "string", required: false, fallbackValue: "free" },
  ],
};
const automations = [
  { automationId: `auto_ok_${suffix}`, name: "Welcome", published: true, outcome: "completed", durationMs: 300 },
  { automationId: `auto_fail_${suffix}`, name: "Broken", published: true, outcome: "failed", durationMs: 400 },
  // Long enough to still be live when it is canceled.
  { automationId: `auto_slow_${suffix}`, name: "Drip", published: true, outcome: "completed", durationMs: 120_000 },
  { automationId: `auto_draft_${suffix}`, name: "Draft", published: false, outcome: "completed", durationMs: 100 },
];
const published = automations.filter((a) => a.published).map((a) => a.automationId).sort();
const payload = { email: "jane@example.com", firstName: "Jane" };

await check("sdk_is_9_3_0", async () => {
  assert.equal(SDK_VERSION, "9.3.0");
  return { sdkDir };
});

await check("sdk_control_incomplete_envelope_is_not_an_envelope", async () => {
  // The harness relies on the SDK refusing envelopes without suggestion/docs; prove it does, so a
  // simulator body missing them shows up as "fallback" in classify() and fails its check.
  const headers = new Headers({ "x-request-id": `req_${"0".repeat(32)}` });
  for (const missing of ["suggestion", "docs"]) {
    const inner = { code: "AUTOMATION_RUN_NOT_FOUND", type: "not_found", message: "m",
      suggestion: "s", docs: "https://docs.brew.new/api-reference/api/errors" };
    delete inner[missing];
    const err = BrewApiError.fromResponse({ status: 404, headers, body: { error: inner } });
    assert.equal(err.code, "unknown_error", `without ${missing}`);
    assert.equal(classify(err), "fallback");
  }
});

await check("setup_admin_key", async () => {
  await admin("PUT", `/_sim/keys/${encodeURIComponent(mainKey)}`, { brandId: `brand_${suffix}`, scopes: ["all"] });
});

// ---------------------------------------------------------------- triggers

await check("trigger_create_201", async () => {
  const raw = await brew.automations.triggers.create(
    { title: "SDK fidelity signup", description: "created by sdk_fidelity.mjs", payloadSchema: schema },
    { raw: true },
  );
  assertRawOk(raw, 201, "create");
  assertRateLimitHeaders(raw.headers, "create");
  const row = raw.data;
  keysSubset(row, TRIGGER_KEYS, "created trigger row");
  assert.match(row.triggerEventId, /^tri_/, "server-minted ids start with tri_");
  assert.equal(row.provider, "brew_api");
  assert.equal(row.title, "SDK fidelity signup");
  assert.deepEqual(row.payloadSchema, schema);
  assertIso(row.createdAt, "createdAt");
  assertIso(row.updatedAt, "updatedAt");
  state.triggerId = row.triggerEventId;
  return { triggerEventId: row.triggerEventId };
});

await check("trigger_create_idempotency", async () => {
  // Every SDK POST carries a key; trigger create is the contract's own 409 example.
  const key = uniqueKey("create");
  const input = { title: "Created once", payloadSchema: schema };
  const first = await brew.automations.triggers.create(input, { idempotencyKey: key });
  const again = await brew.automations.triggers.create(input, { idempotencyKey: key });
  assert.equal(again.triggerEventId, first.triggerEventId, "same key, same body: the original row");
  await expectApiError(
    brew.automations.triggers.create({ ...input, title: "Created twice" }, { idempotencyKey: key }),
    { status: 409, code: "IDEMPOTENCY_CONFLICT", type: "conflict" },
  );
});

await check("trigger_create_without_email_400", async () => {
  const err = await expectApiError(
    brew.automations.triggers.create({
      title: "No email",
      payloadSchema: { type: "object", fields: [{ key: "name", type: "string", required: true }] },
    }),
    { status: 400, code: "PAYLOAD_SCHEMA_EMAIL_REQUIRED", type: "invalid_request" },
  );
  return { message: err.message };
});

await check("fire_created_trigger_without_automations_422", async () => {
  const triggerEventId = need("triggerId", "trigger_create_201");
  await expectApiError(
    brew.automations.triggers.fire({ triggerEventId, payload }, { idempotencyKey: uniqueKey("422a") }),
    { status: 422, code: "NO_PUBLISHED_AUTOMATION", type: "invalid_request", shapes: ["legacy"],
      fireStatus: "failed" },
  );
});

await check("setup_attach_automations", async () => {
  const triggerEventId = need("triggerId", "trigger_create_201");
  await admin("PUT", `/_sim/triggers/${encodeURIComponent(triggerEventId)}`, {
    title: "SDK fidelity signup", payloadSchema: schema, automations,
  });
  state.drafts = `tri_sdk_drafts_${suffix}`;
  await admin("PUT", `/_sim/triggers/${state.drafts}`, {
    title: "Only drafts", payloadSchema: schema, automations: [automations[3]],
  });
  // One short automation each: "paging" is fired only by the paging check (it counts the
  // runs), "misc" by every other check that needs a fire to succeed.
  for (const name of ["paging", "misc"]) {
    state[name] = `tri_sdk_${name}_${suffix}`;
    await admin("PUT", `/_sim/triggers/${state[name]}`, {
      title: name, payloadSchema: schema,
      automations: [{ automationId: `auto_${name}_${suffix}`, name, published: true,
        outcome: "completed", durationMs: 200 }],
    });
  }
});

await check("fire_only_draft_automations_422", async () => {
  const triggerEventId = need("drafts", "setup_attach_automations");
  const err = await expectApiError(
    brew.automations.triggers.fire({ triggerEventId, payload }, { idempotencyKey: uniqueKey("422b") }),
    { status: 422, code: "NO_PUBLISHED_AUTOMATION", type: "invalid_request", shapes: ["legacy"],
      fireStatus: "failed" },
  );
  assert.equal(err.body.triggerEventId, triggerEventId);
});

await check("trigger_detail", async () => {
  const triggerEventId = need("triggerId", "trigger_create_201");
  const raw = await brew.automations.triggers.list({ triggerEventId }, { raw: true });
  assertRawOk(raw, 200, "trigger detail");
  assertRateLimitHeaders(raw.headers, "trigger detail");
  assert.ok(!("pagination" in raw.data), "detail mode has no pagination key");
  assert.equal(raw.data.data.length, 1);
  const row = raw.data.data[0];
  keysSubset(row, TRIGGER_KEYS, "trigger row");
  assert.equal(row.triggerEventId, triggerEventId);
  assert.equal(row.provider, "brew_api");
  assert.deepEqual(row.payloadSchema, schema);
});

await check("trigger_detail_unknown_404", async () => {
  await expectApiError(
    brew.automations.triggers.list({ triggerEventId: `tri_missing_${suffix}` }),
    { status: 404, code: "TRIGGER_EVENT_NOT_FOUND", type: "not_found", param: "triggerEventId" },
  );
});

await check("trigger_list_pages_with_cursor", async () => {
  const ids = [];
  let cursor;
  let pages = 0;
  for (;;) {
    const page = await brew.automations.triggers.list({ limit: 1, ...(cursor ? { cursor } : {}) });
    pages += 1;
    assert.ok(pages <= 1000, "pagination never ends");
    assert.equal(page.data.length <= 1, true, "limit 1 returned more than one row");
    assert.equal(page.pagination.limit, 1, "pagination.limit echoes the limit");
    for (const row of page.data) keysSubset(row, TRIGGER_KEYS, "trigger row");
    ids.push(...page.data.map((row) => row.triggerEventId));
    if (!page.pagination.hasMore) {
      assert.equal(page.pagination.cursor, null, "the last page has cursor null");
      break;
    }
    assert.equal(typeof page.pagination.cursor, "string", "hasMore with no cursor");
    cursor = page.pagination.cursor;
  }
  assert.equal(new Set(ids).size, ids.length, `a trigger appeared twice: ${ids}`);
  for (const id of [state.triggerId, state.drafts, state.paging, state.misc]) {
    if (id) assert.ok(ids.includes(id), `${id} missing from the trigger list`);
  }
  return { pages, triggers: ids.length };
});

await check("list_limit_out_of_range_400", async () => {
  await expectApiError(brew.automations.triggers.list({ limit: 101 }),
    { status: 400, code: "INVALID_REQUEST", type: "invalid_request", param: "limit" });
  await expectApiError(brew.automations.runs.list({ limit: 0 }),
    { status: 400, code: "INVALID_REQUEST", type: "invalid_request", param: "limit" });
});

await check("composite_trigger_id_round_trips", async () => {
  // Integration triggers have ids with colons; the SDK sends them encodeURIComponent'ed (%3A).
  const triggerEventId = `clerk:org_${suffix}:brand_${suffix}:user.created`;
  await admin("PUT", `/_sim/triggers/${encodeURIComponent(triggerEventId)}`, {
    title: "Clerk user created", payloadSchema: schema,
    automations: [{ automationId: `auto_clerk_${suffix}`, name: "Clerk", published: true,
      outcome: "completed", durationMs: 200 }],
  });
  const ready = await brew.automations.triggers.ready({ triggerEventId });
  assert.equal(ready.triggerEventId, triggerEventId);
  const fired = await brew.automations.triggers.fire({ triggerEventId, payload },
    { idempotencyKey: uniqueKey("clerk") });
  assert.equal(fired.status, "triggered");
  assert.equal(fired.triggerEventId, triggerEventId);
  const { data } = await brew.automations.triggers.list({ triggerEventId });
  assert.equal(data[0].triggerEventId, triggerEventId);
});

// ---------------------------------------------------------------- pre-flight

await check("ready_200", async () => {
  const triggerEventId = need("triggerId", "trigger_create_201");
  const before = await brew.automations.runs.list({ triggerEventId });
  const raw = await brew.automations.triggers.ready({ triggerEventId }, { raw: true });
  assertRawOk(raw, 200, "ready");
  const body = raw.data;
  keysSubset(body, FIRE_KEYS, "ready envelope");
  assert.equal(body.success, true);
  assert.equal(body.status, "ready");
  assert.equal(body.code, "TRIGGER_EVENT_READY");
  assert.equal(body.triggerEventId, triggerEventId);
  assertIso(body.receivedAt, "receivedAt");
  assert.deepEqual(body.details.payloadSchema, schema);
  assert.equal(body.details.provider, "brew_api");
  assert.deepEqual(body.details.endpoint,
    { method: "POST", path: `/v1/automations/triggers/${triggerEventId}/fire` });
  assert.deepEqual(body.details.publishedAutomations.map((a) => a.automationId).sort(), published);
  assert.equal(body.details.counts.automations, published.length);
  const after = await brew.automations.runs.list({ triggerEventId });
  assert.equal(after.data.length, before.data.length, "the pre-flight started runs");
});

await check("ready_unknown_trigger_404", async () => {
  await expectApiError(
    brew.automations.triggers.ready({ triggerEventId: `tri_missing_${suffix}` }),
    { status: 404, code: "TRIGGER_EVENT_NOT_FOUND", type: "not_found",
      shapes: ["legacy", "standard"] },
  );
});

// ---------------------------------------------------------------- fire and idempotency

await check("fire_triggered_200", async () => {
  const triggerEventId = need("triggerId", "trigger_create_201");
  const key = uniqueKey("main");
  const raw = await brew.automations.triggers.fire({ triggerEventId, payload }, { idempotencyKey: key, raw: true });
  assertRawOk(raw, 200, "fire");
  assertRateLimitHeaders(raw.headers, "fire");
  const body = raw.data;
  keysSubset(body, FIRE_KEYS, "fire envelope");
  assert.equal(body.success, true);
  assert.equal(body.status, "triggered");
  assert.equal(body.code, "TRIGGERED");
  assert.equal(body.triggerEventId, triggerEventId);
  assertIso(body.receivedAt, "receivedAt");
  const d = body.details;
  assert.deepEqual(d.resolvedPayload, { ...payload, plan: "free" }, "fallbackValue applied");
  assert.match(d.triggerInstanceId, /^tin_/);
  assert.deepEqual(d.publishedAutomations.map((a) => a.automationId).sort(), published,
    "one entry per PUBLISHED automation");
  assert.equal(d.counts.automations, published.length);
  assert.equal(d.automationRunIds.length, published.length, "one run per published automation");
  assert.equal(new Set(d.automationRunIds).size, published.length, "run ids are distinct");
  state.fireKey = key;
  state.fire = body;
  return { runIds: d.automationRunIds, triggerInstanceId: d.triggerInstanceId };
});

await check("fire_replay_same_runs", async () => {
  const first = need("fire", "fire_triggered_200");
  const raw = await brew.automations.triggers.fire(
    { triggerEventId: first.triggerEventId, payload },
    { idempotencyKey: state.fireKey, raw: true },
  );
  assertRawOk(raw, 200, "replay");
  assert.equal(raw.data.success, true);
  assert.equal(raw.data.status, "idempotent_replay");
  assert.equal(typeof raw.data.code, "string");
  assert.deepEqual(raw.data.details.automationRunIds, first.details.automationRunIds,
    "a replay returns the original run ids");
  assert.equal(raw.data.details.triggerInstanceId, first.details.triggerInstanceId);
  const runs = await brew.automations.runs.list({ triggerInstanceId: first.details.triggerInstanceId });
  assert.deepEqual(runs.data.map((r) => r.automationRunId).sort(),
    [...first.details.automationRunIds].sort(), "the replay started no new runs");
  return { code: raw.data.code };
});

await check("fire_same_key_other_body_409", async () => {
  const first = need("fire", "fire_triggered_200");
  const err = await expectApiError(
    brew.automations.triggers.fire(
      { triggerEventId: first.triggerEventId, payload: { ...payload, email: "other@example.com" } },
      { idempotencyKey: state.fireKey },
    ),
    // Fire documents no 409 in 9.3.0; the SDK's own tests use the fire envelope, other POSTs
    // the standard one. Either reads as IDEMPOTENCY_CONFLICT/conflict to the SDK.
    { status: 409, code: "IDEMPOTENCY_CONFLICT", type: "conflict", shapes: ["standard", "legacy"] },
  );
  return { shape: classify(err) };
});

await check("fire_unknown_payload_field_is_a_warning", async () => {
  const triggerEventId = need("misc", "setup_attach_automations");
  const body = await brew.automations.triggers.fire(
    { triggerEventId, payload: { email: "warn@example.com", coupon: "SPRING" } },
    { idempotencyKey: uniqueKey("warn") },
  );
  assert.equal(body.status, "triggered", "unknown payload fields are accepted");
  const warnings = body.details.warnings ?? [];
  const coupon = warnings.find((w) => w.field === "coupon");
  assert.equal(coupon?.code, "unexpected_key", JSON.stringify(warnings));
  assert.equal(typeof coupon.message, "string");
});

await check("fire_idempotency_key_header_recorded", async () => {
  need("fire", "fire_triggered_200");
  const { data } = await admin("GET", "/_sim/requests");
  const withKey = data.filter((r) => r.idempotencyKey === state.fireKey);
  assert.equal(withKey.length, 3, `first, replay and conflict carry the key: ${JSON.stringify(withKey)}`);
  for (const r of withKey) {
    assert.equal(r.method, "POST");
    assert.ok(r.path.endsWith("/fire"), r.path);
  }
  assert.deepEqual(withKey.map((r) => r.status), [200, 200, 409]);
});

await check("fire_idempotency_key_over_100_chars_400", async () => {
  const triggerEventId = need("triggerId", "trigger_create_201");
  const err = await expectApiError(
    brew.automations.triggers.fire({ triggerEventId, payload }, { idempotencyKey: "k".repeat(101) }),
    { status: 400, type: "invalid_request", shapes: ["standard", "legacy"] },
  );
  return { code: err.code, param: err.param };
});

await check("fire_unknown_trigger_404", async () => {
  const err = await expectApiError(
    brew.automations.triggers.fire({ triggerEventId: `tri_missing_${suffix}`, payload },
      { idempotencyKey: uniqueKey("404") }),
    { status: 404, code: "TRIGGER_EVENT_NOT_FOUND", type: "not_found", shapes: ["legacy"],
      fireStatus: "trigger_event_not_found" },
  );
  return { message: err.message };
});

await check("fire_payload_mismatch_400", async () => {
  const triggerEventId = need("triggerId", "trigger_create_201");
  const err = await expectApiError(
    brew.automations.triggers.fire({ triggerEventId, payload: { firstName: 5 } },
      { idempotencyKey: uniqueKey("400") }),
    { status: 400, code: "INVALID_PAYLOAD", type: "invalid_request", shapes: ["legacy"],
      fireStatus: "payload_mismatch" },
  );
  const errors = err.details?.errors;
  assert.ok(Array.isArray(errors), "details.errors[] reaches BrewApiError.details");
  const byField = Object.fromEntries(errors.map((e) => [e.field, e]));
  assert.equal(byField.email?.code, "missing_required", JSON.stringify(errors));
  assert.equal(byField.firstName?.code, "invalid_type", JSON.stringify(errors));
  assert.equal(byField.firstName?.expectedType, "string");
  for (const e of errors) assert.equal(typeof e.message, "string");
  assert.deepEqual(err.details.payloadSchema, schema);
  return { errors };
});

await check("fire_unknown_body_key_400", async () => {
  const triggerEventId = need("triggerId", "trigger_create_201");
  // The SDK forwards every input key but triggerEventId into the strict body.
  const err = await expectApiError(
    brew.automations.triggers.fire({ triggerEventId, payload, metadata: { source: "sdk" } },
      { idempotencyKey: uniqueKey("strict") }),
    { status: 400, code: "INVALID_REQUEST", type: "invalid_request" },
  );
  return { param: err.param };
});

// ---------------------------------------------------------------- runs: cancel, detail, logs

await check("cancel_live_run_200", async () => {
  const fire = need("fire", "fire_triggered_200");
  const runIds = fire.details.automationRunIds;
  const rows = await Promise.all(runIds.map(async (id) =>
    (await brew.automations.runs.list({ automationRunId: id })).data[0]));
  state.runByAutomation = Object.fromEntries(rows.map((r) => [r.automationId, r.automationRunId]));
  const slow = state.runByAutomation[`auto_slow_${suffix}`];
  assert.ok(slow, `no run for the slow automation: ${JSON.stringify(rows)}`);
  const raw = await brew.automations.runs.cancel({ automationRunId: slow, reason: "sdk fidelity" }, { raw: true });
  assertRawOk(raw, 200, "cancel");
  assert.deepEqual(Object.keys(raw.data).sort(), ["automationRunId", "previousStatus", "status"]);
  assert.equal(raw.data.automationRunId, slow);
  assert.equal(raw.data.status, "canceled");
  assert.ok(["pending", "running"].includes(raw.data.previousStatus), raw.data.previousStatus);
  state.canceled = slow;
  state.canceledFrom = raw.data.previousStatus;
  return raw.data;
});

await check("cancel_again_409", async () => {
  const runId = need("canceled", "cancel_live_run_200");
  const err = await expectApiError(
    brew.automations.runs.cancel({ automationRunId: runId }),
    { status: 409, code: "RUN_NOT_CANCELLABLE", type: "conflict" },
  );
  assert.equal(err.param, undefined, "RUN_NOT_CANCELLABLE carries no param");
});

await check("cancel_unknown_run_404", async () => {
  await expectApiError(
    brew.automations.runs.cancel({ automationRunId: `run_missing_${suffix}` }),
    { status: 404, code: "AUTOMATION_RUN_NOT_FOUND", type: "not_found" },
  );
});

await check("runs_detail_with_logs_until_end", async () => {
  const fire = need("fire", "fire_triggered_200");
  const byAutomation = need("runByAutomation", "cancel_live_run_200");
  const want = {
    [`auto_ok_${suffix}`]: "completed",
    [`auto_fail_${suffix}`]: "failed",
    [`auto_slow_${suffix}`]: "canceled",
  };
  const seen = {};
  const final = {};
  for (const [automationId, runId] of Object.entries(byAutomation)) {
    seen[runId] = [];
    final[automationId] = await pollUntil(`run ${runId} to end`, async () => {
      const raw = await brew.automations.runs.list({ automationRunId: runId, include: "logs" }, { raw: true });
      assertRawOk(raw, 200, "run detail");
      assert.ok(!("pagination" in raw.data), "detail mode has no pagination key");
      assert.equal(raw.data.data.length, 1);
      const row = raw.data.data[0];
      checkRunRow(row, `run ${runId}`);
      assert.equal(row.automationRunId, runId);
      assert.equal(row.automationId, automationId);
      assert.equal(row.triggerInstanceId, fire.details.triggerInstanceId);
      assert.equal(row.mode, "live");
      if (row.recipientEmail !== undefined) assert.equal(row.recipientEmail, payload.email);
      assert.ok(Array.isArray(row.logs), "include=logs puts logs in the row");
      row.logs.forEach((log, i) => checkLogRow(log, runId, `run ${runId} log ${i}`));
      if (seen[runId].at(-1) !== row.status) seen[runId].push(row.status);
      return TERMINAL.has(row.status) ? row : undefined;
    });
  }
  for (const [automationId, status] of Object.entries(want)) {
    const row = final[automationId];
    assert.equal(row.status, status, `${automationId} ended ${row.status}`);
    // A run canceled while still pending never started a node; one that ran has logs.
    const started = status !== "canceled" || state.canceledFrom === "running";
    if (started) assert.ok(row.logs.length > 0, `${automationId}: a run that started has node logs`);
    if (status !== "canceled") assertIso(row.completedAt, `${automationId}.completedAt`);
  }
  for (const [runId, statuses] of Object.entries(seen)) {
    const order = statuses.map((s) => RUN_STATUSES.indexOf(s));
    assert.deepEqual(order, [...order].sort((a, b) => a - b),
      `run ${runId} went backwards: ${statuses}`);
  }
  state.completed = byAutomation[`auto_ok_${suffix}`];
  return { statuses: seen };
});

await check("canceled_run_stays_canceled", async () => {
  const runId = need("canceled", "cancel_live_run_200");
  need("completed", "runs_detail_with_logs_until_end");
  const { data } = await brew.automations.runs.list({ automationRunId: runId });
  assert.equal(data[0].status, "canceled", "first terminal status wins");
});

await check("cancel_completed_run_409", async () => {
  const runId = need("completed", "runs_detail_with_logs_until_end");
  await expectApiError(
    brew.automations.runs.cancel({ automationRunId: runId }),
    { status: 409, code: "RUN_NOT_CANCELLABLE", type: "conflict" },
  );
});

await check("runs_detail_unknown_404", async () => {
  await expectApiError(
    brew.automations.runs.list({ automationRunId: `run_missing_${suffix}` }),
    { status: 404, code: "AUTOMATION_RUN_NOT_FOUND", type: "not_found", param: "automationRunId" },
  );
});

await check("runs_list_status_cancelled_400", async () => {
  // The SDK's input type allows the double-L spelling; the 9.3.0 server refuses it.
  await expectApiError(
    brew.automations.runs.list({ status: "cancelled" }),
    { status: 400, code: "INVALID_REQUEST", type: "invalid_request", param: "status" },
  );
});

await check("runs_list_include_logs_without_id_400", async () => {
  await expectApiError(
    brew.automations.runs.list({ include: "logs" }),
    { status: 400, code: "INVALID_REQUEST", type: "invalid_request" },
  );
});

await check("runs_list_pages_newest_first", async () => {
  const triggerEventId = need("paging", "setup_attach_automations");
  const fired = [];
  for (let i = 0; i < 5; i += 1) {
    const r = await brew.automations.triggers.fire(
      { triggerEventId, payload: { email: `page${i}@example.com` } },
      { idempotencyKey: uniqueKey(`page${i}`) },
    );
    fired.push(...r.details.automationRunIds);
  }
  const pages = [];
  let cursor;
  for (;;) {
    const raw = await brew.automations.runs.list(
      { triggerEventId, limit: 2, ...(cursor ? { cursor } : {}) }, { raw: true });
    assertRawOk(raw, 200, "runs page");
    assertRateLimitHeaders(raw.headers, "runs page");
    const page = raw.data;
    assert.equal(page.pagination.limit, 2);
    for (const row of page.data) {
      checkRunRow(row, "listed run");
      assert.ok(!("logs" in row), "list rows are lean (no logs)");
    }
    pages.push(page.data.map((row) => row.automationRunId));
    assert.ok(pages.length <= 10, "pagination never ends");
    if (!page.pagination.hasMore) {
      assert.equal(page.pagination.cursor, null, "the last page has cursor null");
      break;
    }
    assert.equal(typeof page.pagination.cursor, "string");
    cursor = page.pagination.cursor;
  }
  assert.deepEqual(pages.map((p) => p.length), [2, 2, 1]);
  assert.deepEqual(pages.flat(), [...fired].reverse(), "newest first, each run exactly once");
  // The SDK's own paginator walks the same pages.
  const walked = [];
  for await (const row of autoPaginate(async (c) => {
    const page = await brew.automations.runs.list({ triggerEventId, limit: 2, ...(c ? { cursor: c } : {}) });
    return { items: page.data, pagination: page.pagination };
  })) walked.push(row.automationRunId);
  assert.deepEqual(walked, pages.flat());
  return { pages };
});

// ---------------------------------------------------------------- auth

await check("auth_invalid_key_401", async () => {
  const stranger = clientFor("sk_not_a_brew_key");
  await expectApiError(stranger.automations.runs.list({}),
    { status: 401, code: "INVALID_API_KEY", type: "authentication_error" });
  const triggerEventId = need("triggerId", "trigger_create_201");
  // The fire pipeline may answer 401 in either envelope; the SDK must read INVALID_API_KEY.
  await expectApiError(
    stranger.automations.triggers.fire({ triggerEventId, payload }, { idempotencyKey: uniqueKey("401") }),
    { status: 401, code: "INVALID_API_KEY", type: "authentication_error", shapes: ["standard", "legacy"] },
  );
});

await check("auth_revoked_key_401", async () => {
  const key = `brew_sdk_revoked_${suffix}`;
  await admin("PUT", `/_sim/keys/${key}`, { brandId: `brand_${suffix}`, scopes: ["all"], revoked: true });
  await expectApiError(clientFor(key).automations.runs.list({}),
    { status: 401, code: "API_KEY_REVOKED", type: "authentication_error" });
});

await check("auth_missing_scope_403", async () => {
  const key = `brew_sdk_noscope_${suffix}`;
  await admin("PUT", `/_sim/keys/${key}`, { brandId: `brand_${suffix}`, scopes: ["contacts"] });
  await expectApiError(clientFor(key).automations.runs.list({}),
    { status: 403, code: "INSUFFICIENT_PERMISSIONS", type: "authorization_error", param: "automations" });
});

// ---------------------------------------------------------------- brands (X-Brand-Id)

await check("brand_scope_mismatch_403", async () => {
  const triggerEventId = need("triggerId", "trigger_create_201");
  const elsewhere = brew.withBrand(`brand_other_${suffix}`);
  await expectApiError(elsewhere.automations.runs.list({}),
    { status: 403, code: "BRAND_SCOPE_MISMATCH", type: "authorization_error" });
  // The fire pipeline refuses a brand mismatch in its own envelope (status "forbidden").
  await expectApiError(
    elsewhere.automations.triggers.fire({ triggerEventId, payload }, { idempotencyKey: uniqueKey("brand") }),
    { status: 403, code: "BRAND_SCOPE_MISMATCH", type: "authorization_error",
      shapes: ["legacy", "standard"] },
  );
});

await check("organization_key_needs_a_brand", async () => {
  const key = `brew_sdk_org_${suffix}`;
  const brands = [`brand_${suffix}`, `brand_b_${suffix}`];
  await admin("PUT", `/_sim/keys/${key}`, { brands, scopes: ["all"] });
  const org = clientFor(key);
  await expectApiError(org.automations.runs.list({}),
    { status: 400, code: "BRAND_ID_REQUIRED", type: "invalid_request" });
  await expectApiError(org.withBrand(`brand_nowhere_${suffix}`).automations.runs.list({}),
    { status: 404, code: "BRAND_NOT_FOUND", type: "not_found" });
  const page = await org.withBrand(brands[0]).automations.runs.list({ limit: 1 });
  assert.ok(Array.isArray(page.data));
});

await check("other_brand_sees_404_not_403", async () => {
  // Another brand's trigger and runs do not exist for the caller (brew-api.md §1.2).
  const fire = need("fire", "fire_triggered_200");
  const own = await brew.automations.triggers.create({ title: "Brand private", payloadSchema: schema });
  const key = `brew_sdk_brand_b_${suffix}`;
  await admin("PUT", `/_sim/keys/${key}`, { brandId: `brand_b_${suffix}`, scopes: ["all"] });
  const other = clientFor(key);
  await expectApiError(other.automations.triggers.list({ triggerEventId: own.triggerEventId }),
    { status: 404, code: "TRIGGER_EVENT_NOT_FOUND", type: "not_found" });
  await expectApiError(
    other.automations.triggers.fire({ triggerEventId: own.triggerEventId, payload },
      { idempotencyKey: uniqueKey("xbrand") }),
    { status: 404, code: "TRIGGER_EVENT_NOT_FOUND", type: "not_found", shapes: ["legacy"] },
  );
  await expectApiError(
    other.automations.runs.list({ automationRunId: fire.details.automationRunIds[0] }),
    { status: 404, code: "AUTOMATION_RUN_NOT_FOUND", type: "not_found" },
  );
  const listed = await other.automations.runs.list({ triggerInstanceId: fire.details.triggerInstanceId });
  assert.deepEqual(listed.data, [], "another brand's runs are not listed");
});

// ---------------------------------------------------------------- injected faults (scripted, one request each)

await check("fault_503_envelope_with_retry_after", async () => {
  const triggerEventId = need("misc", "setup_attach_automations");
  await admin("PUT", "/_sim/faults", { fire: { next: [{ fault: "error", status: 503, retryAfter: 1 }] } });
  const err = await expectApiError(
    brew.automations.triggers.fire({ triggerEventId, payload }, { idempotencyKey: uniqueKey("503") }),
    { status: 503, code: "SERVICE_UNAVAILABLE", type: "service_unavailable" },
  );
  assert.equal(err.retryAfter, 1, "Retry-After reaches BrewApiError.retryAfter");
});

await check("fault_500_envelope_on_reads", async () => {
  await admin("PUT", "/_sim/faults", { read: { next: [{ fault: "error", status: 500 }] } });
  await expectApiError(brew.automations.runs.list({}),
    { status: 500, code: "INTERNAL_ERROR", type: "internal_error" });
});

await check("fault_reset_is_a_network_error", async () => {
  const triggerEventId = need("misc", "setup_attach_automations");
  await admin("PUT", "/_sim/faults", { fire: { next: [{ fault: "reset" }] } });
  let err;
  try {
    await brew.automations.triggers.fire({ triggerEventId, payload }, { idempotencyKey: uniqueKey("reset") });
  } catch (caught) {
    err = caught;
  }
  // 9.3.0 rethrows fetch's own error after a dropped connection (brew-sdk-behaviour.md §5.4).
  assert.ok(err !== undefined, "a dropped connection must not resolve");
  assert.ok(!(err instanceof BrewApiError), `the SDK got an HTTP answer: ${err?.status} ${err?.code}`);
  return { error: `${err.name}: ${err.message}` };
});

await check("fault_reset_then_sdk_retry_replays", async () => {
  // The unknown-outcome case end to end: the fire is done, the answer lost, and the SDK's
  // retry (same Idempotency-Key) gets the original run back instead of a second run.
  const triggerEventId = need("misc", "setup_attach_automations");
  await admin("PUT", "/_sim/faults", { fire: { next: [{ fault: "reset" }] } });
  const result = await clientFor(mainKey, { maxRetries: 2 }).automations.triggers.fire(
    { triggerEventId, payload: { email: "reset@example.com" } }, { idempotencyKey: uniqueKey("reset-retry") });
  assert.equal(result.status, "idempotent_replay", "the retry found the first attempt's work");
  const runs = await brew.automations.runs.list({ triggerInstanceId: result.details.triggerInstanceId });
  assert.deepEqual(runs.data.map((r) => r.automationRunId), result.details.automationRunIds,
    "exactly the original run exists");
});

await check("fault_hangs_then_sdk_timeout_retry", async () => {
  // A hang before the work leaves nothing done: the SDK's timed-out retry fires for real. A hang
  // after the work is the unknown outcome again: the retry must replay, not fire twice.
  const triggerEventId = need("misc", "setup_attach_automations");
  const impatient = clientFor(mainKey, { maxRetries: 2, timeoutMs: 500 });
  const outcomes = {};
  for (const [fault, want] of [["hang", "triggered"], ["hangAfterWork", "idempotent_replay"]]) {
    await admin("PUT", "/_sim/faults", { fire: { next: [{ fault, seconds: 3 }] } });
    const key = uniqueKey(fault);
    const result = await impatient.automations.triggers.fire(
      { triggerEventId, payload: { email: `${fault}@example.com` } }, { idempotencyKey: key });
    assert.equal(result.status, want, `after a ${fault}`);
    // A hang before the work: only once the simulator has seen the client hang up (it records
    // that attempt with status 0) can "it did nothing" be checked. After the work: no wait.
    const attempts = await pollUntil(`the abandoned ${fault} attempt to be recorded`, async () => {
      const { data } = await admin("GET", "/_sim/requests");
      const mine = data.filter((r) => r.idempotencyKey === key);
      return fault === "hangAfterWork" || mine.some((r) => r.status === 0) ? mine : undefined;
    });
    assert.equal(attempts.length, 2, `one timed-out attempt and one retry: ${JSON.stringify(attempts)}`);
    const runs = await brew.automations.runs.list({ triggerInstanceId: result.details.triggerInstanceId });
    assert.equal(runs.data.length, 1, `after a ${fault}: exactly one run`);
    outcomes[fault] = { status: result.status, attempts: attempts.map((r) => r.status) };
  }
  return outcomes;
});

await check("fault_rate_limit_burst_429", async () => {
  const triggerEventId = need("misc", "setup_attach_automations");
  await admin("PUT", "/_sim/faults", { fire: { next: [{ fault: "rateLimit", retryAfter: 1 }] } });
  const err = await expectApiError(
    brew.automations.triggers.fire({ triggerEventId, payload }, { idempotencyKey: uniqueKey("burst") }),
    { status: 429, code: "RATE_LIMITED", type: "rate_limit" },
  );
  assert.equal(err.retryAfter, 1);
  assert.equal(err.body.error.retryAfter, 1, "the 429 body carries retryAfter");
});

await check("fault_html_502_is_not_an_envelope", async () => {
  // A proxy's HTML 502 is what the SDK's fallback arm is for; the simulator's html body must
  // reach it as such (and still carry x-request-id).
  await admin("PUT", "/_sim/faults", { read: { next: [{ fault: "error", status: 502, body: "html" }] } });
  let err;
  try {
    await brew.automations.runs.list({});
  } catch (caught) {
    err = caught;
  }
  assert.ok(err instanceof BrewApiError, `expected a BrewApiError, got ${err}`);
  assert.equal(err.status, 502);
  assert.equal(err.code, "unknown_error");
  assert.equal(err.type, "internal_error");
  assert.equal(err.body, null, "an HTML body parses to null");
});

await check("teardown_faults", async () => {
  await admin("PUT", "/_sim/faults", {});
  await brew.automations.runs.list({ limit: 1 });
});

// ---------------------------------------------------------------- rate limit (last: it changes limits)

const WINDOW_SECONDS = 3;
await check("rate_limited_429", async () => {
  const triggerEventId = need("misc", "setup_attach_automations");
  // A fresh key has a fresh window (limits are per key and per policy).
  const key = `brew_sdk_ratelimit_${suffix}`;
  await admin("PUT", `/_sim/keys/${key}`, { brandId: `brand_${suffix}`, scopes: ["all"] });
  await admin("PUT", "/_sim/limits", { "automation.runs.write": { limit: 2, windowSeconds: WINDOW_SECONDS } });
  const limited = clientFor(key);
  const fire = (i, options = {}) => limited.automations.triggers.fire(
    { triggerEventId, payload: { email: `rl${i}@example.com` } },
    { idempotencyKey: uniqueKey(`rl${i}`), ...options });
  const remaining = [];
  for (let i = 0; i < 2; i += 1) {
    const raw = await fire(i, { raw: true });
    assertRawOk(raw, 200, `fire ${i} within the limit`);
    const headers = assertRateLimitHeaders(raw.headers, `fire ${i}`);
    assert.equal(headers.limit, 2, "X-RateLimit-Limit follows PUT /_sim/limits");
    remaining.push(headers.remaining);
  }
  assert.deepEqual(remaining, [1, 0]);
  const err = await expectApiError(fire(2),
    { status: 429, code: "RATE_LIMITED", type: "rate_limit" });
  assert.equal(typeof err.body.error.retryAfter, "number", "the 429 body carries retryAfter");
  assert.equal(err.retryAfter, err.body.error.retryAfter);
  assert.ok(err.retryAfter > 0 && err.retryAfter <= WINDOW_SECONDS,
    `retryAfter ${err.retryAfter} s outside (0, ${WINDOW_SECONDS}]`);
  state.rateLimited = { key, triggerEventId };
  return { retryAfter: err.retryAfter };
});

await check("rate_limited_429_headers_on_the_wire", async () => {
  // BrewApiError keeps no headers, so read this 429 with plain fetch.
  const { key, triggerEventId } = need("rateLimited", "rate_limited_429");
  const response = await fetch(`${baseUrl.replace(/\/+$/, "")}/v1/automations/triggers/${triggerEventId}/fire`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json",
      "idempotency-key": uniqueKey("rlwire") },
    body: JSON.stringify({ payload: { email: "wire@example.com" } }),
  });
  const body = await response.json();
  assert.equal(response.status, 429, JSON.stringify(body));
  assert.match(response.headers.get("x-request-id") ?? "", REQUEST_ID);
  const retryAfter = response.headers.get("retry-after");
  assert.match(retryAfter ?? "", /^\d+$/, "Retry-After is integer delta-seconds");
  assert.equal(Number(retryAfter), body.error.retryAfter, "header and body retryAfter agree");
  const headers = assertRateLimitHeaders(response.headers, "429");
  assert.equal(headers.remaining, 0);
  return { retryAfter: Number(retryAfter), reset: headers.reset };
});

await check("sdk_retry_after_recovers", async () => {
  // With retries on, the SDK sleeps Retry-After and the next attempt fits the window.
  const { key, triggerEventId } = need("rateLimited", "rate_limited_429");
  const started = Date.now();
  const result = await clientFor(key, { maxRetries: 2 }).automations.triggers.fire(
    { triggerEventId, payload: { email: "retry@example.com" } }, { idempotencyKey: uniqueKey("rlretry") });
  assert.equal(result.status, "triggered");
  return { waitedMs: Date.now() - started };
});

await check("teardown_default_limits", async () => {
  await admin("PUT", "/_sim/limits", { "automation.runs.write": { limit: 60, windowSeconds: 60 } });
});

await check("request_ids_are_distinct", async () => {
  assert.ok(requestIds.length > 20, `only ${requestIds.length} request ids were seen`);
  const repeated = requestIds.filter((id, i) => requestIds.indexOf(id) !== i);
  assert.deepEqual(repeated, [], "two answers carried the same x-request-id");
  return { seen: requestIds.length };
});

// ---------------------------------------------------------------- summary

const failed = results.filter((r) => !r.ok).length;
process.stdout.write(`${JSON.stringify({ done: true, passed: results.length - failed, failed })}\n`);
process.exit(failed === 0 ? 0 : 1);
