"use strict";
// The typings compile against user-style code (strict mode), and a misuse is rejected.
const { execFileSync } = require("child_process");
const path = require("path");

const tsc = path.join(__dirname, "..", "node_modules", ".bin", "tsc");
const project = path.join(__dirname, "typings", "tsconfig.json");

function compile(projectFile) {
  try {
    execFileSync(tsc, ["-p", projectFile], { encoding: "utf8", stdio: "pipe" });
    return "";
  } catch (e) {
    return (e.stdout || "") + (e.stderr || "") || e.message;
  }
}

test("index.d.ts accepts what users of @socket.io/redis-adapter write", () => {
  expect(compile(project)).toBe("");
}, 120000);

test("the typings reject a wrong option name, a wrong option type and a wrong return type", () => {
  const out = compile(path.join(__dirname, "typings", "tsconfig.misuse.json"));
  expect(out).toMatch(/Type 'Promise<number>' is not assignable to type 'string'/);
  expect(out).toMatch(/'keyy' does not exist/);
  expect(out).toMatch(/misuse.ts\(7,\d+\).*Type 'string' is not assignable to type 'boolean/);
}, 120000);
