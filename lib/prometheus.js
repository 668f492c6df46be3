"use strict";
// adapter.metrics() in the Prometheus text exposition format (version 0.0.4).
//
// The metrics object is walked generically, so new counters show up without changes here:
// numbers become counters (or gauges, for the few values that go down), objects with
// `buckets`/`sum`/`count` become histograms, `requests.<type>` and `readers[i]` become labels.

const GAUGES = new Set(["pendingRequests", "bufferedBytes"]);
// Maps whose keys (or array positions) are a dimension rather than part of the metric name.
const LABELLED = { requests: "type", readers: "reader" };

const HELP = {
  received: "Messages received on the adapter's channels",
  receivedBytes: "Bytes received on the adapter's channels",
  delivered: "Messages handed to the adapter (not skipped)",
  skippedNoLocalRoom: "Broadcasts dropped because no local socket is in their rooms",
  skippedOwn: "Own messages skipped",
  skippedForeign: "Messages of other namespaces or other nodes' requests skipped",
  decodeErrors: "Malformed messages skipped",
  responsesMatched: "Responses matched to a pending request",
  reconnects: "Reconnections of the subscription connection",
  pendingRequests: "Requests waiting for answers",
  subscriber_resubscribes: "Times every subscription was made again on a new connection",
  subscriber_pingsSent: "Self-pings published on the subscriber's health channel",
  subscriber_pingsReceived: "Self-pings received back",
  subscriber_pingFailures:
    "Self-pings not received back in time (each one forced a resubscription)",
  published_messages: "Messages published",
  published_bytes: "Bytes published",
  published_failed: "Messages Redis refused or that waited too long for Redis",
  published_droppedOverflow: "Messages refused because the outgoing buffer was full",
  published_retries: "Publish attempts retried after a connection error",
  published_bufferedBytes: "Bytes waiting to be published",
  published_directWrites: "Batches written by the publishing thread itself (sender idle)",
  requests_sent: "Requests published that waited for answers",
  requests_timedOut: "Requests ended by requestsTimeout before every answer arrived",
  requests_failed: "Requests Redis refused",
  requests_answers: "Answers received in time",
  requests_missingAnswers: "Answers expected but missing when requests ended",
  requests_roundTripMs: "Request round trip in milliseconds",
  streamLagMs: "Age of stream entries when read, in milliseconds (entry id time to read time)",
  written: "Stream entries written (XADD)",
  writeRetries: "XADD retried after a connection error",
  writeFailures: "XADD given up",
  readers_entries: "Stream entries read",
  readers_errors: "Stream read errors",
  readers_reconnects: "Reconnections of a stream reader",
  readers_losses: "Times entries were trimmed before being read",
};

const snake = (s) => s.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase();
const isHistogram = (v) => v && typeof v === "object" && v.buckets && "sum" in v && "count" in v;
const escapeLabel = (v) =>
  String(v).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

const leValue = (le) => (le === "+Inf" ? Infinity : Number(le));

function labelText(labels) {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
}

/** Collects samples per family: path (array of keys, labels excluded) -> samples. */
function collect(value, path, labels, families) {
  if (typeof value === "number" || isHistogram(value)) {
    const key = path.join("_");
    if (!families.has(key)) families.set(key, { path, samples: [] });
    families.get(key).samples.push({ labels, value });
    return;
  }
  if (!value || typeof value !== "object") return;
  for (const [k, v] of Object.entries(value)) {
    const label = LABELLED[k];
    if (label && v && typeof v === "object") {
      for (const [dimension, inner] of Object.entries(v)) {
        collect(inner, [...path, k], { ...labels, [label]: dimension }, families);
      }
    } else {
      collect(v, [...path, k], labels, families);
    }
  }
}

/**
 * @param {object} metrics what `adapter.metrics()` returns
 * @param {object} [options]
 * @param {string} [options.prefix] metric name prefix (default "socketio_redis_native")
 * @param {object} [options.labels] labels added to every sample (e.g. { nsp: "/" })
 * @returns {string} text format, one `# HELP` and `# TYPE` line per family
 */
function toPrometheus(metrics, options = {}) {
  const prefix = options.prefix === undefined ? "socketio_redis_native" : options.prefix;
  const families = new Map();
  collect(metrics, [], { ...options.labels }, families);
  const lines = [];
  for (const [key, { path, samples }] of families) {
    const histogram = isHistogram(samples[0].value);
    const gauge = GAUGES.has(path[path.length - 1]);
    const base = [prefix, ...path.map(snake)].filter(Boolean).join("_");
    const name = histogram || gauge ? base : `${base}_total`;
    lines.push(`# HELP ${name} ${HELP[key] || `socket.io-redis-native ${path.join(".")}`}`);
    lines.push(`# TYPE ${name} ${histogram ? "histogram" : gauge ? "gauge" : "counter"}`);
    for (const { labels, value } of samples) {
      if (!histogram) {
        lines.push(`${name}${labelText(labels)} ${value}`);
        continue;
      }
      // JS objects list integer-like keys ("1", "10") before the others ("0.5", "+Inf"),
      // whatever the JSON order was; Prometheus wants ascending bounds.
      const bounds = Object.entries(value.buckets).sort(([a], [b]) => leValue(a) - leValue(b));
      for (const [le, count] of bounds) {
        lines.push(`${name}_bucket${labelText({ ...labels, le })} ${count}`);
      }
      lines.push(`${name}_sum${labelText(labels)} ${value.sum}`);
      lines.push(`${name}_count${labelText(labels)} ${value.count}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** The Content-Type of the text format. */
const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

module.exports = { toPrometheus, PROMETHEUS_CONTENT_TYPE };
