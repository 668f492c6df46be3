"use strict";
// Which binary the loader picks (lib/platform.js, used by binding.js), and that the npm/
// platform packages are what that loader and npm expect (names, files, os/cpu/libc, version).
const { execSync } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const {
  binaryFile,
  isMusl,
  loadNative,
  platformPackage,
  platformTriple,
} = require("../lib/platform");

const root = path.join(__dirname, "..");

test("platform triples follow the napi-rs names", () => {
  expect(platformTriple({ platform: "linux", arch: "x64", musl: false })).toBe("linux-x64-gnu");
  expect(platformTriple({ platform: "linux", arch: "x64", musl: true })).toBe("linux-x64-musl");
  expect(platformTriple({ platform: "linux", arch: "arm64", musl: false })).toBe("linux-arm64-gnu");
  expect(platformTriple({ platform: "darwin", arch: "arm64" })).toBe("darwin-arm64");
  expect(platformTriple({ platform: "win32", arch: "x64" })).toBe("win32-x64-msvc");
  expect(platformPackage("darwin-x64")).toBe("socket.io-redis-native-darwin-x64");
  expect(binaryFile("darwin-x64")).toBe("socket-io-redis-native.darwin-x64.node");
});

test("musl detection agrees with ldd on this machine", () => {
  const ldd = execSync("ldd --version 2>&1 || true", { encoding: "utf8" });
  expect(isMusl()).toBe(ldd.includes("musl"));
});

describe("loadNative", () => {
  let dir;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-native-load-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("a development build next to the package comes first", () => {
    fs.writeFileSync(path.join(dir, binaryFile("linux-x64-gnu")), "");
    const asked = [];
    const loaded = loadNative({
      dir,
      triple: "linux-x64-gnu",
      requireFn: (id) => (asked.push(id), { from: id }),
    });
    expect(loaded).toEqual({ from: path.join(dir, binaryFile("linux-x64-gnu")) });
    expect(asked).toHaveLength(1);
  });

  test("without one, the platform package of the triple", () => {
    const loaded = loadNative({ dir, triple: "linux-x64-musl", requireFn: (id) => ({ from: id }) });
    expect(loaded).toEqual({ from: "socket.io-redis-native-linux-x64-musl" });
  });

  test("when nothing loads, the error lists every place tried", () => {
    const missing = (id) => {
      throw Object.assign(new Error(`Cannot find module '${id}'`), { code: "MODULE_NOT_FOUND" });
    };
    expect(() => loadNative({ dir, triple: "darwin-arm64", requireFn: missing })).toThrow(
      new RegExp(
        [
          "no native binary could be loaded for darwin-arm64",
          `${path.join(dir, binaryFile("darwin-arm64"))}: no such file`.replace(/[.]/g, "\\."),
          "socket\\.io-redis-native-darwin-arm64: Cannot find module",
          'npm run build"',
        ].join("[\\s\\S]*"),
      ),
    );
  });

  test("this package's binding.js loads this machine's binary", () => {
    const binding = require("../binding");
    expect(typeof binding).toBe("object");
    const loadedFrom = Object.keys(require.cache).filter((f) => f.endsWith(".node"));
    expect(loadedFrom.map((f) => path.basename(f))).toContain(binaryFile(platformTriple()));
  });
});

describe("npm/ platform packages", () => {
  const rootPkg = require("../package.json");
  const triples = fs.readdirSync(path.join(root, "npm"));

  test("one per napi target", () => {
    expect(triples.sort()).toEqual(
      [
        "darwin-arm64",
        "darwin-x64",
        "linux-arm64-gnu",
        "linux-x64-gnu",
        "linux-x64-musl",
        "win32-x64-msvc",
      ].sort(),
    );
    expect(rootPkg.napi.targets).toHaveLength(triples.length);
    // the repository itself does not depend on them (see README, "Packaging")
    expect(rootPkg.optionalDependencies).toBeUndefined();
  });

  test.each(triples)("%s: name, binary, version and the fields npm selects it by", (triple) => {
    const dir = path.join(root, "npm", triple);
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
    const [platform, arch, abi] = triple.split("-");
    expect(pkg.name).toBe(platformPackage(triple));
    expect(pkg.version).toBe(rootPkg.version);
    expect(pkg.main).toBe(binaryFile(triple));
    expect(pkg.files).toEqual([binaryFile(triple)]);
    expect(pkg.os).toEqual([platform]);
    expect(pkg.cpu).toEqual([arch]);
    if (platform === "linux") expect(pkg.libc).toEqual([abi === "musl" ? "musl" : "glibc"]);
    else expect(pkg.libc).toBeUndefined();
    expect(fs.readFileSync(path.join(dir, "README.md"), "utf8")).toContain(pkg.name);
  });
});
