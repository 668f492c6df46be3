"use strict";
// Round-trip probe: PUBSUB NUMSUB through node-redis (all on the JS thread) vs through the
// Rust core (JS -> tokio -> Redis -> tokio -> JS). The difference is the cost of the thread
// hops that every request of ours pays.
const { createClient } = require("redis");
const native = require("../binding");
const url = process.argv[2] || "redis://127.0.0.1:16399";
const N = 3000;
function med(a) {
  a.sort((x, y) => x - y);
  return a[a.length >> 1];
}
async function time(fn) {
  for (let i = 0; i < 300; i++) await fn();
  const t = [];
  for (let i = 0; i < N; i++) {
    const s = process.hrtime.bigint();
    await fn();
    t.push(Number(process.hrtime.bigint() - s) / 1000);
  }
  return med(t).toFixed(1) + " µs";
}
(async () => {
  const c = createClient({ url });
  await c.connect();
  console.log("node-redis NUMSUB", await time(() => c.pubSubNumSub("x")));
  const d = new native.ClassicDriver(
    {
      connection: JSON.stringify({ url }),
      key: "probe",
      publishOnSpecificResponseChannel: false,
      defaultParser: true,
    },
    () => {},
  );
  const ns = d.addNamespace("/");
  await d.subscribeNamespace(ns);
  console.log("native serverCount", await time(() => d.serverCount(ns)));
  console.log("node-redis NUMSUB", await time(() => c.pubSubNumSub("x")));
  console.log("native serverCount", await time(() => d.serverCount(ns)));
  d.shutdown();
  await c.quit();
})();
