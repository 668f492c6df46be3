"use strict";
// Loads the native addon for this platform: a binary built in this folder first (development,
// `npm run build`), then the per-platform npm package (napi-rs layout, see lib/platform.js).
const { loadNative } = require("./lib/platform");

module.exports = loadNative({ dir: __dirname });
