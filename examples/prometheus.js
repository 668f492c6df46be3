"use strict";
// A Socket.IO server on the native classic adapter that serves adapter.metrics() to
// Prometheus at http://127.0.0.1:$METRICS_PORT/metrics (text exposition format).
//
//   REDIS_URL=redis://127.0.0.1:6379 METRICS_PORT=9464 node examples/prometheus.js
//
// Scrape config:  - job_name: socketio
//                   static_configs: [{ targets: ["127.0.0.1:9464"] }]
//
// The counters belong to one createAdapter() call (shared by every namespace), so one
// namespace's adapter is enough. To have request latencies to look at, the server asks the
// cluster for its sockets every FETCH_INTERVAL ms (default 2000).

const http = require("http");
const { Server } = require("socket.io");
const { createAdapter, toPrometheus, PROMETHEUS_CONTENT_TYPE } = require("socket.io-redis-native");

const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const metricsPort = Number(process.env.METRICS_PORT || 9464);
const fetchInterval = Number(process.env.FETCH_INTERVAL || 2000);

const io = new Server({ adapter: createAdapter(redisUrl) });
io.listen(Number(process.env.PORT || 0));

const metricsServer = http.createServer((req, res) => {
  if (req.url !== "/metrics") {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "Content-Type": PROMETHEUS_CONTENT_TYPE });
  res.end(toPrometheus(io.of("/").adapter.metrics()));
});

const timer = setInterval(() => {
  io.fetchSockets().catch((err) => console.error("fetchSockets failed:", err.message));
}, fetchInterval);

metricsServer.listen(metricsPort, "127.0.0.1", () => {
  console.log(`metrics on http://127.0.0.1:${metricsServer.address().port}/metrics`);
});

function shutdown() {
  clearInterval(timer);
  metricsServer.close();
  io.close(() => process.exit(0));
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
