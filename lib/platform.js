"use strict";
// Which prebuilt binary fits this machine, and where it may be: the napi-rs conventions.
// A binary is named socket-io-redis-native.<triple>.node, where <triple> is e.g.
// linux-x64-gnu, linux-x64-musl, darwin-arm64 or win32-x64-msvc; its npm package is
// socket.io-redis-native-<triple> (the npm/<triple>/ folders of this repository).
const fs = require("fs");
const path = require("path");

const BINARY_NAME = "socket-io-redis-native";
const PACKAGE_NAME = "socket.io-redis-native";

const binaryFile = (triple) => `${BINARY_NAME}.${triple}.node`;
const platformPackage = (triple) => `${PACKAGE_NAME}-${triple}`;

const hasMuslLoader = (file) => file.includes("libc.musl-") || file.includes("ld-musl-");

// musl or glibc, decided as napi-rs' generated loaders do: the ldd script names its libc
// (cheap, no process); else the process report (a glibc runtime version, or a musl loader
// among the shared objects); else the output of `ldd --version`.
function isMusl() {
  try {
    return fs.readFileSync("/usr/bin/ldd", "utf8").includes("musl");
  } catch {
    // no readable ldd script (e.g. a distroless image): ask the process report
  }
  if (typeof process.report?.getReport === "function") {
    // excludeNetwork: without it the report resolves the host names of open sockets
    process.report.excludeNetwork = true;
    const report = process.report.getReport();
    if (report?.header?.glibcVersionRuntime) return false;
    if (Array.isArray(report?.sharedObjects) && report.sharedObjects.some(hasMuslLoader)) {
      return true;
    }
    if (report) return false;
  }
  try {
    const { execSync } = require("child_process");
    return execSync("ldd --version", { encoding: "utf8", stdio: "pipe" }).includes("musl");
  } catch {
    return false;
  }
}

/** The napi-rs triple of a platform/arch (and, on Linux, its libc). */
function platformTriple({ platform, arch, musl } = {}) {
  platform = platform || process.platform;
  arch = arch || process.arch;
  if (platform === "linux") {
    const libc = (musl === undefined ? isMusl() : musl) ? "musl" : "gnu";
    return `linux-${arch}-${libc}`;
  }
  if (platform === "win32") return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/**
 * Loads the addon: a binary next to the package first (a development build, `npm run build`),
 * then the platform package. Throws an error that lists every place that was tried.
 */
function loadNative({ dir, triple = platformTriple(), requireFn = require } = {}) {
  const local = path.join(dir, binaryFile(triple));
  const candidates = [local, platformPackage(triple)];
  const failures = [];
  for (const candidate of candidates) {
    if (candidate === local && !fs.existsSync(local)) {
      failures.push(`${local}: no such file`);
      continue;
    }
    try {
      return requireFn(candidate);
    } catch (e) {
      failures.push(`${candidate}: ${e.message.split("\n")[0]}`);
    }
  }
  throw new Error(
    `${PACKAGE_NAME}: no native binary could be loaded for ${triple}. Tried:\n` +
      failures.map((f) => `  - ${f}`).join("\n") +
      `\nInstall the platform package (npm installs ${platformPackage(triple)} as an optional ` +
      `dependency; make sure optional dependencies are not omitted), or build from source ` +
      `with "npm run build" (needs a Rust toolchain).`,
  );
}

module.exports = {
  BINARY_NAME,
  PACKAGE_NAME,
  binaryFile,
  platformPackage,
  platformTriple,
  isMusl,
  loadNative,
};
