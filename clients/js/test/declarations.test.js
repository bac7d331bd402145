// The TypeScript declarations (*.d.ts) name every export of every module, and every public
// method, accessor and property of every class, as the JavaScript has them. `tsc` checks the
// declarations against the typed usage (types-test/, tests/browser/test_js_package.py); this
// checks them against the code, so a new export or method without a declaration fails here.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

const MODULES = ["websocket-connection", "lifecycle", "rate-limiter", "error-handler", "optimistic", "outbox", "metrics", "react", "vue"];
const root = new URL("../", import.meta.url);
const read = (name) => readFileSync(new URL(name, root), "utf8");

/** Value exports a .d.ts declares (`export declare const|class|function`, `export *`). */
function declaredValues(name) {
  const text = read(`${name}.d.ts`);
  const names = new Set([...text.matchAll(/^export declare (?:const|class|function) (\w+)/gm)].map((m) => m[1]));
  for (const m of text.matchAll(/^export \* from "\.\/([\w-]+)\.js";/gm)) {
    for (const value of declaredValues(m[1])) names.add(value);
  }
  return names;
}

/** The body of `class Name` in a source text, up to the closing brace at the start of a line. */
function classBody(text, name) {
  const start = text.search(new RegExp(`^export (?:declare )?class ${name}\\b`, "m"));
  assert.ok(start >= 0, `class ${name} not found`);
  const end = text.indexOf("\n}", start);
  return text.slice(start, end);
}

/** Public members of a JS class: methods and accessors of the prototype, statics, and
 * properties its constructor assigns (`this.x =`). Names starting with _ are private. */
function publicMembers(cls, source) {
  const members = new Set();
  for (const owner of [cls.prototype, cls]) {
    for (const key of Object.getOwnPropertyNames(owner)) {
      if (!key.startsWith("_") && !["constructor", "prototype", "length", "name"].includes(key)) members.add(key);
    }
  }
  for (const m of classBody(source, cls.name).matchAll(/this\.([a-zA-Z]\w*)\s*=[^=]/g)) members.add(m[1]);
  return members;
}

describe("TypeScript declarations", () => {
  for (const name of [...MODULES, "index"]) {
    it(`${name}.d.ts declares exactly ${name}.js's exports`, async () => {
      const runtime = Object.keys(await import(new URL(`${name}.js`, root).href)).sort();
      assert.deepEqual([...declaredValues(name)].sort(), runtime);
    });
  }

  for (const name of MODULES) {
    it(`${name}.d.ts declares every public member of ${name}.js's classes`, async () => {
      const module = await import(new URL(`${name}.js`, root).href);
      const source = read(`${name}.js`);
      const declarations = read(`${name}.d.ts`);
      for (const value of Object.values(module)) {
        if (typeof value !== "function" || !/^class\b/.test(Function.prototype.toString.call(value))) continue;
        const body = classBody(declarations, value.name);
        const missing = [...publicMembers(value, source)].filter(
          (member) => !new RegExp(`^\\s+(?:static |readonly |get |set )*${member}\\b[?]?[(:<]`, "m").test(body),
        );
        assert.deepEqual(missing, [], `${value.name} members missing from ${name}.d.ts`);
      }
    });
  }
});
