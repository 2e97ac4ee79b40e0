// verify.mjs checks requests and messages dvrouter delivered with the official libraries
// consumers use: the npm `standardwebhooks` package (Webhook.verify) for signatures, and the
// npm `cloudevents` package (HTTP.toEvent, CloudEvent.validate) for CloudEvents. Both are
// pinned in the repository's package.json.
//
// Usage: node test/verify/verify.mjs deliveries.json
//
// deliveries.json holds {"requests": [...], "messages": [...]}:
//   request: {consumer, headers: {name: value}, body (base64), secrets: [...],
//             wrongSecret, cloudevent: null | {mode, typePrefix, source}, raw: bool}
//   message: a Service Bus message as the test stand-in records it, plus {consumer, cloudevent}
// It prints one JSON line per checked delivery and a summary line, and exits non-zero when any
// check fails: a test that cannot fail proves nothing.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Webhook } = require("standardwebhooks");
const { HTTP, CloudEvent } = require("cloudevents");

const input = JSON.parse(readFileSync(process.argv[2], "utf8"));
let failed = 0;
let checked = 0;

function report(kind, consumer, problems) {
  checked++;
  if (problems.length) failed++;
  console.log(JSON.stringify({ kind, consumer, ok: problems.length === 0, problems }));
}

// The environment's source: an absolute URI (a scheme, then more).
const absoluteURI = /^[A-Za-z][A-Za-z0-9+.-]*:.+/;
// RFC 3339 with milliseconds, in UTC.
const millisecondTime = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function checkCloudEvent(ce, want, dataWanted, problems, timeText) {
  try {
    ce.validate();
  } catch (e) {
    problems.push(`cloudevents: validate() refused it: ${e.message} ${JSON.stringify(e.errors ?? "")}`);
  }
  if (ce.specversion !== "1.0") problems.push(`specversion ${ce.specversion}`);
  const prefix = want.typePrefix || "com.microsoft.dataverse";
  if (!ce.type.startsWith(prefix + ".")) problems.push(`type ${ce.type} lacks the prefix ${prefix}`);
  if (!absoluteURI.test(ce.source)) problems.push(`source ${ce.source} is not an absolute URI`);
  if (want.source && ce.source !== want.source) problems.push(`source ${ce.source}, want ${want.source}`);
  if (timeText !== undefined && !millisecondTime.test(timeText)) problems.push(`time ${timeText} lacks milliseconds`);
  if (dataWanted && (typeof ce.data !== "object" || ce.data === null || ce.data.id !== ce.id)) {
    problems.push(`data is not the normalized event of ${ce.id}: ${JSON.stringify(ce.data)?.slice(0, 200)}`);
  }
  if (dataWanted && ce.data && ce.type !== `${prefix}.${ce.data.table}.${ce.data.message}`.toLowerCase()) {
    problems.push(`type ${ce.type} does not name table ${ce.data.table} and message ${ce.data.message}`);
  }
}

for (const r of input.requests ?? []) {
  const problems = [];
  const body = Buffer.from(r.body, "base64");
  const headers = r.headers;
  // Standard Webhooks: every secret the consumer may hold verifies, on its own; a wrong one not.
  for (const secret of r.secrets ?? []) {
    try {
      const parsed = new Webhook(secret).verify(body, headers);
      if (parsed === undefined || typeof parsed !== "object") problems.push("verify() did not return the parsed JSON body");
    } catch (e) {
      problems.push(`standardwebhooks: verify() with secret #${r.secrets.indexOf(secret) + 1} failed: ${e.message}`);
    }
  }
  if (r.wrongSecret) {
    try {
      new Webhook(r.wrongSecret).verify(body, headers);
      problems.push("standardwebhooks: verify() accepted a wrong secret");
    } catch (e) {
      if (e.name !== "WebhookVerificationError") problems.push(`wrong secret: unexpected ${e.name}: ${e.message}`);
    }
  }
  if (r.raw && body[0] === 0xef) problems.push("raw body starts with a byte-order mark");
  if (r.cloudevent) {
    try {
      const ce = HTTP.toEvent({ headers, body: body.toString("utf8") });
      if (Array.isArray(ce)) throw new Error("a batch, want one event");
      const binary = r.cloudevent.mode === "binary";
      if (binary !== ("ce-specversion" in headers)) problems.push(`mode: ce-specversion header ${"ce-specversion" in headers}, want binary=${binary}`);
      const timeText = binary ? headers["ce-time"] : JSON.parse(body.toString("utf8")).time;
      checkCloudEvent(ce, r.cloudevent, true, problems, timeText);
      if (ce.id !== headers["idempotency-key"]) problems.push(`id ${ce.id}, Idempotency-Key ${headers["idempotency-key"]}`);
    } catch (e) {
      problems.push(`cloudevents: HTTP.toEvent failed: ${e.message}`);
    }
  }
  report("http", r.consumer, problems);
}

// Service Bus: the CloudEvents AMQP binding (cloudEvents:-prefixed application properties,
// content-type = datacontenttype, the body the data). The npm package has no AMQP transport,
// so the event is built from the binding's properties and checked by the same validate().
for (const m of input.messages ?? []) {
  const problems = [];
  const props = m.applicationProperties ?? {};
  const types = m.applicationPropertyTypes ?? {};
  const attrs = {};
  for (const [k, v] of Object.entries(props)) {
    if (k.startsWith("cloudEvents:")) attrs[k.slice("cloudEvents:".length)] = v;
  }
  for (const a of ["specversion", "id", "source", "type"]) {
    if (!(a in attrs)) problems.push(`application property cloudEvents:${a} missing`);
    else if (types[`cloudEvents:${a}`] !== "string") problems.push(`cloudEvents:${a} is a ${types[`cloudEvents:${a}`]}, want string`);
  }
  if ("time" in attrs && types["cloudEvents:time"] !== "timestamp") problems.push(`cloudEvents:time is a ${types["cloudEvents:time"]}, want an AMQP timestamp`);
  const body = Buffer.from(m.body ?? "", "base64").toString("utf8");
  try {
    let ce;
    if ((m.contentType ?? "").startsWith("application/cloudevents")) {
      ce = HTTP.toEvent({ headers: { "content-type": m.contentType }, body });
      for (const a of ["id", "source", "type"]) {
        if (ce[a] !== attrs[a]) problems.push(`structured ${a} ${ce[a]} differs from property ${attrs[a]}`);
      }
    } else {
      ce = new CloudEvent({ ...attrs, datacontenttype: m.contentType, data: JSON.parse(body) }, false);
    }
    checkCloudEvent(ce, m.cloudevent ?? {}, true, problems, attrs.time);
    if (ce.id !== m.messageId) problems.push(`id ${ce.id}, MessageId ${m.messageId}`);
  } catch (e) {
    problems.push(`cloudevents: ${e.message}`);
  }
  report("servicebus", m.consumer, problems);
}

console.log(JSON.stringify({ checked, failed }));
process.exit(failed === 0 && checked > 0 ? 0 : 1);
