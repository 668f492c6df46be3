"use strict";

// `exit-scenario.js <url>`: a script that uses every adapter and the emitter, closes them, and
// then does nothing: the process must exit by itself. Prints "CLOSED <ms since start>" when
// everything is closed; the test measures how long the exit takes after that.

const { startNode } = require("./single-node");
const { Emitter } = require("../..");

async function main(url) {
  const nodes = [];
  for (const kind of ["classic", "sharded", "streams"]) {
    const a = await startNode(kind, url, { requestsTimeout: 1000 });
    const b = await startNode(kind, url, { requestsTimeout: 1000 });
    nodes.push(a, b);
    await a.io.fetchSockets(); // a request round trip through Redis
    a.io.emit("x");
  }
  const emitter = new Emitter(url);
  await emitter.emit("from-emitter");
  await Promise.all(nodes.map((n) => n.close()));
  await emitter.close();
  console.log(`CLOSED ${Date.now()}`);
}

main(process.argv[2]).catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
