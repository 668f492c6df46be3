"use strict";
// Packs what a release publishes, the napi-rs way (what `napi prepublish` prepares):
//  - the main package, WITHOUT a binary, whose package.json lists every platform package of
//    npm/ as an optionalDependency at exactly this version (npm then installs only the one
//    whose os/cpu/libc fit the machine);
//  - each platform package of npm/ whose binary was built on this machine (`npm run build`
//    copies it to npm/<triple>/); the others are reported as not built here.
// The repository's own package.json is never modified: its optionalDependencies stay absent so
// that `npm ci` / `npm install` of this repository never asks the registry for platform packages
// (they are published together with the main package, so unpublished versions do not exist yet).
//
// Usage: npm run pack [-- --out DIR] [-- --json]
// Prints the tarball paths (or, with --json, {main, platforms: {triple: path}, notBuilt: []}).
const { execFileSync } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { binaryFile } = require("../lib/platform");

const root = path.join(__dirname, "..");

function argValue(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, "utf8"));
}

/** `npm pack` of a folder into `out`; resolves the tarball path. */
function npmPack(dir, out) {
  const stdout = execFileSync("npm", ["pack", "--silent", "--pack-destination", out], {
    cwd: dir,
    encoding: "utf8",
  });
  return path.join(out, stdout.trim().split("\n").pop());
}

function platformPackages(version) {
  const npmDir = path.join(root, "npm");
  return fs
    .readdirSync(npmDir)
    .filter((triple) => fs.existsSync(path.join(npmDir, triple, "package.json")))
    .map((triple) => {
      const dir = path.join(npmDir, triple);
      const pkg = readJson(path.join(dir, "package.json"));
      // published together: a platform package of another version would be a different binary
      if (pkg.version !== version) {
        throw new Error(`npm/${triple}/package.json is version ${pkg.version}, not ${version}`);
      }
      if (pkg.main !== binaryFile(triple)) {
        throw new Error(
          `npm/${triple}/package.json main is ${pkg.main}, not ${binaryFile(triple)}`,
        );
      }
      return { triple, dir, pkg, built: fs.existsSync(path.join(dir, pkg.main)) };
    });
}

/** Copies the main package's files (no binary) and its release package.json into `stage`. */
function stageMain(stage, platforms) {
  const pkg = readJson(path.join(root, "package.json"));
  const files = pkg.files.filter((f) => !f.endsWith(".node"));
  for (const entry of [...files, "README.md"]) {
    fs.cpSync(path.join(root, entry), path.join(stage, entry), { recursive: true });
  }
  const release = { ...pkg, files };
  // building and testing happen in the repository, not in an installed package
  delete release.scripts;
  delete release.devDependencies;
  delete release.jest;
  release.optionalDependencies = Object.fromEntries(
    platforms.map((p) => [p.pkg.name, pkg.version]),
  );
  fs.writeFileSync(path.join(stage, "package.json"), `${JSON.stringify(release, null, 2)}\n`);
}

function main() {
  const out = path.resolve(argValue("--out", path.join(root, "dist")));
  fs.mkdirSync(out, { recursive: true });
  const { version } = readJson(path.join(root, "package.json"));
  const platforms = platformPackages(version);

  const stage = fs.mkdtempSync(path.join(os.tmpdir(), "sio-native-stage-"));
  let main;
  try {
    stageMain(stage, platforms);
    main = npmPack(stage, out);
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
  const result = { main, platforms: {}, notBuilt: [] };
  for (const p of platforms) {
    if (p.built) result.platforms[p.triple] = npmPack(p.dir, out);
    else result.notBuilt.push(p.triple);
  }

  if (process.argv.includes("--json")) {
    console.log(JSON.stringify(result));
    return;
  }
  console.log(`main package:     ${path.relative(process.cwd(), main)}`);
  for (const [triple, file] of Object.entries(result.platforms)) {
    console.log(`platform package: ${path.relative(process.cwd(), file)} (${triple})`);
  }
  if (result.notBuilt.length) {
    console.log(
      `not built on this machine (no binary in npm/<triple>/): ${result.notBuilt.join(", ")}`,
    );
  }
}

main();
