"use strict";

// adapter.metrics() latency histograms and counters, and their Prometheus text export
// (toPrometheus, examples/prometheus.js), parsed back line by line.

const http = require("http");
const path = require("path");
const { spawn } = require("child_process");
const { Server } = require("socket.io");
const { io: ioc } = require("socket.io-client");
const { createAdapter, toPrometheus } = require("..");
const { startRedis, waitUntil } = require("./helpers/redis");

const noop = () => {};

/**
 * Parses the text format strictly enough to catch mistakes: every sample belongs to a family
 * announced by `# HELP` and `# TYPE` lines, names and labels are well formed.
 * @returns {Map<string, {type, help, samples: {name, labels, value}[]}>}
 */
function parsePrometheus(text) {
  const families = new Map();
  let current;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    let m;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line))) {
      current = { help: m[2], samples: [] };
      families.set(m[1], current);
    } else if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line))) {
      if (!families.has(m[1])) throw new Error(`TYPE before HELP: ${line}`);
      families.get(m[1]).type = m[2];
    } else if ((m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line))) {
      const [, name, rawLabels, value] = m;
      const family = [...families.keys()].find(
        (f) => name === f || (families.get(f).type === "histogram" && name.startsWith(f + "_")),
      );
      if (!family || families.get(family) !== current) {
        throw new Error(`sample outside its family: ${line}`);
      }
      const labels = {};
      if (rawLabels) {
        for (const pair of rawLabels.slice(1, -1).split(",")) {
          const lm = /^([a-zA-Z_][a-zA-Z0-9_]*)="(.*)"$/.exec(pair);
          if (!lm) throw new Error(`bad label ${pair} in ${line}`);
          labels[lm[1]] = lm[2];
        }
      }
      const number = value === "+Inf" ? Infinity : Number(value);
      if (Number.isNaN(number)) throw new Error(`bad value in ${line}`);
      current.samples.push({ name, labels, value: number });
    } else {
      throw new Error(`unparsable line: ${line}`);
    }
  }
  for (const [name, f] of families) if (!f.type) throw new Error(`no TYPE for ${name}`);
  return families;
}

/** Checks a histogram family's series for `labels`; returns {count, sum, buckets}. */
function histogramSeries(families, name, labels = {}) {
  const f = families.get(name);
  expect(f && f.type).toBe("histogram");
  const match = (s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v);
  const buckets = f.samples.filter((s) => s.name === `${name}_bucket` && match(s));
  const les = buckets.map((b) => (b.labels.le === "+Inf" ? Infinity : Number(b.labels.le)));
  expect(les.length).toBeGreaterThanOrEqual(2);
  expect(les[les.length - 1]).toBe(Infinity);
  for (let i = 1; i < buckets.length; i++) {
    expect(les[i]).toBeGreaterThan(les[i - 1]);
    expect(buckets[i].value).toBeGreaterThanOrEqual(buckets[i - 1].value); // cumulative
  }
  const count = f.samples.find((s) => s.name === `${name}_count` && match(s)).value;
  const sum = f.samples.find((s) => s.name === `${name}_sum` && match(s)).value;
  expect(buckets[buckets.length - 1].value).toBe(count);
  return { count, sum, buckets: buckets.map((b, i) => [les[i], b.value]) };
}

const sampleValue = (families, name, labels = {}) => {
  const f = families.get(name);
  if (!f) return undefined;
  const s = f.samples.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s && s.value;
};

describe("toPrometheus", () => {
  it("counters, gauges, labelled maps and histograms from a metrics object", () => {
    const text = toPrometheus(
      {
        received: 3,
        pendingRequests: 1,
        subscriber: { resubscribes: 2 },
        requests: {
          fetchSockets: {
            sent: 4,
            // "0.5" is listed after "1" and "5" by JS (integer-like keys first): the export must
            // still give ascending bounds.
            roundTripMs: { buckets: { 0.5: 0, 1: 1, 5: 3, "+Inf": 4 }, sum: 12.5, count: 4 },
          },
        },
        readers: [{ entries: 7 }],
      },
      { labels: { node: 'a"b' } },
    );
    const families = parsePrometheus(text);
    expect(families.get("socketio_redis_native_received_total").type).toBe("counter");
    expect(families.get("socketio_redis_native_pending_requests").type).toBe("gauge");
    expect(sampleValue(families, "socketio_redis_native_subscriber_resubscribes_total")).toBe(2);
    expect(
      sampleValue(families, "socketio_redis_native_requests_sent_total", { type: "fetchSockets" }),
    ).toBe(4);
    expect(
      sampleValue(families, "socketio_redis_native_readers_entries_total", { reader: "0" }),
    ).toBe(7);
    expect(text).toContain('node="a\\"b"');
    const h = histogramSeries(families, "socketio_redis_native_requests_round_trip_ms", {
      type: "fetchSockets",
    });
    expect(h).toEqual({
      count: 4,
      sum: 12.5,
      buckets: [
        [0.5, 0],
        [1, 1],
        [5, 3],
        [Infinity, 4],
      ],
    });
  });
});

describe("metrics of a running cluster", () => {
  let redis;
  const cleanups = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(noop);
    if (redis) await redis.stop();
  });

  async function peerNode(adapter) {
    const httpServer = http.createServer();
    const io = new Server(httpServer, { adapter });
    await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
    const client = ioc(`http://127.0.0.1:${httpServer.address().port}`, {
      forceNew: true,
      transports: ["websocket"],
      reconnection: false,
    });
    await new Promise((resolve) => client.once("connect", resolve));
    cleanups.push(async () => {
      client.disconnect();
      await new Promise((resolve) => io.close(() => resolve()));
    });
    return { io, client };
  }

  it("examples/prometheus.js serves request round trips and counters in the text format", async () => {
    await peerNode(createAdapter(redis.url));
    const child = spawn(
      process.execPath,
      [path.join(__dirname, "..", "examples", "prometheus.js")],
      {
        env: { ...process.env, REDIS_URL: redis.url, METRICS_PORT: "0", FETCH_INTERVAL: "100" },
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const exited = new Promise((resolve) => child.once("exit", resolve));
    cleanups.push(async () => {
      child.kill("SIGTERM");
      await exited;
    });
    const url = await new Promise((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
        const m = /metrics on (http:\S+)/.exec(out);
        if (m) resolve(m[1]);
      });
      child.once("exit", (code) => reject(new Error(`example exited with ${code}: ${out}`)));
    });
    const scrape = () =>
      new Promise((resolve, reject) => {
        http
          .get(url, (res) => {
            let body = "";
            res.on("data", (d) => (body += d));
            res.on("end", () => resolve({ type: res.headers["content-type"], body }));
          })
          .on("error", reject);
      });
    let families;
    let scraped;
    await waitUntil(
      async () => {
        scraped = await scrape();
        families = parsePrometheus(scraped.body);
        const sent = sampleValue(families, "socketio_redis_native_requests_sent_total", {
          type: "fetchSockets",
        });
        return sent >= 10;
      },
      { timeout: 20000, interval: 200, what: "10 fetchSockets requests in the metrics" },
    );
    expect(scraped.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const sent = sampleValue(families, "socketio_redis_native_requests_sent_total", {
      type: "fetchSockets",
    });
    const rt = histogramSeries(families, "socketio_redis_native_requests_round_trip_ms", {
      type: "fetchSockets",
    });
    // a scrape is one snapshot: every request counted as sent has been timed
    expect(rt.count).toBe(sent);
    expect(rt.sum).toBeGreaterThan(0);
    expect(
      sampleValue(families, "socketio_redis_native_requests_timed_out_total", {
        type: "fetchSockets",
      }),
    ).toBe(0);
    for (const name of [
      "received_total",
      "received_bytes_total",
      "decode_errors_total",
      "pending_requests",
      "subscriber_resubscribes_total",
      "subscriber_pings_sent_total",
      "published_messages_total",
      "published_bytes_total",
      "published_buffered_bytes",
    ]) {
      expect(families.has(`socketio_redis_native_${name}`)).toBe(true);
    }
    const under = rt.buckets.find(([le, n]) => n >= rt.count / 2);
    console.log(
      `fetchSockets round trip over ${rt.count} requests (2 nodes): mean ${(rt.sum / rt.count).toFixed(2)} ms, ` +
        `median <= ${under[0]} ms; scrape ${scraped.body.length} bytes, ${families.size} families`,
    );
  }, 40000);

  it("streams adapter: stream lag histogram counts every entry read", async () => {
    const { createAdapter: createStreamsAdapter } = require("../streams");
    const a = await peerNode(createStreamsAdapter(redis.url, { streamName: "lag-test" }));
    const b = await peerNode(createStreamsAdapter(redis.url, { streamName: "lag-test" }));
    let got = 0;
    b.client.on("tick", () => got++);
    await waitUntil(
      () => {
        a.io.emit("tick");
        return got > 0;
      },
      { timeout: 10000, interval: 100, what: "readers started" },
    );
    const before = b.io.of("/").adapter.metrics().streamLagMs.count;
    got = 0;
    for (let i = 0; i < 200; i++) a.io.emit("tick");
    await waitUntil(() => got >= 200, { timeout: 10000, what: "200 broadcasts" });
    const metrics = b.io.of("/").adapter.metrics();
    // every entry the reader got is timed (its own node's too: the reader reads them all)
    expect(metrics.streamLagMs.count - before).toBeGreaterThanOrEqual(200);
    const families = parsePrometheus(toPrometheus(metrics));
    const lag = histogramSeries(families, "socketio_redis_native_stream_lag_ms");
    expect(lag.count).toBe(metrics.streamLagMs.count);
    console.log(
      `stream lag over ${lag.count} entries: mean ${(lag.sum / lag.count).toFixed(2)} ms; ` +
        `published ${metrics.published ? metrics.published.messages : "n/a"} pub/sub messages`,
    );
  }, 40000);
});
