"use strict";
// dataJson (lib/event-text.js) writes long strings that need no escaping between quotes, after
// a check in Rust: its text must be JSON.stringify's, whatever the strings hold.
const { dataJson } = require("../lib/event-text");

const long = (n, fill = "x") => fill.repeat(Math.ceil(n / fill.length)).slice(0, n);

describe("dataJson", () => {
  const special = ['"', "\\", "\n", "\u0000", "\u001f", "\u007f", "\u2028", "é", "😀"];
  const cases = [
    ["m", 1234567, long(4096)],
    ["m", long(511), long(512), long(513)],
    [long(600, "é€😀"), { nested: long(700) }, [long(800)], null, true, -0, 1e21],
    ["m", "short", 0.1, false],
    [],
  ];
  for (const ch of special) {
    for (const at of [0, 7, 8, 300, 4095]) {
      const s = long(4096);
      cases.push(["ev", s.slice(0, at) + ch + s.slice(at)]);
    }
  }

  it.each(cases.map((c, i) => [i, c]))("case %i equals JSON.stringify", (_i, data) => {
    expect(dataJson(data)).toBe(JSON.stringify(data));
  });

  it("leaves what is not an array to JSON.stringify", () => {
    const data = { text: long(4096) };
    expect(dataJson(data)).toBe(JSON.stringify(data));
  });
});
