// The code blocks docs/client.md marks for testing, the seed's copies they must match, and the
// two Vue fixes, for hooks-live.test.mjs. No tests of its own.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import babel from "@babel/core";
import presetTypescript from "@babel/preset-typescript";

export const PACKAGE = fileURLToPath(new URL("../../", import.meta.url));
export const DOCS = fileURLToPath(new URL("../../../../docs/client.md", import.meta.url));

/** The package's name: the blocks import it, and it resolves through package.json "exports"
 * (a module inside the package may import the package by its own name). */
export const PACKAGE_NAME = JSON.parse(readFileSync(join(PACKAGE, "package.json"), "utf8")).name;

/** Fix 1: the seed's composable calls `readonly` without importing it from "vue". */
export const FIX_1 = {
  before: `import { ref, reactive, onMounted, onUnmounted, watch } from "vue";`,
  after: `import { ref, reactive, readonly, onMounted, onUnmounted, watch } from "vue";`,
};

/** Fix 2: the seed's `error` handler parameter shadows the `error` ref. */
export const FIX_2 = {
  before: `    connection.on("error", (error: Error) => {
      error.value = error;
      options.onError?.(error);
    });`,
  after: `    connection.on("error", (err: Error) => {
      error.value = err;
      options.onError?.(err);
    });`,
};

/** Blocks of `markdown` marked by a line `<!-- tested: NAME -->` right before their fence:
 * Map NAME -> {lang, code}. A marker not followed by a fence, or used twice, fails. */
export function markedBlocks(markdown) {
  const markers = [...markdown.matchAll(/^<!-- tested: ([\w-]+) -->$/gm)].map((m) => m[1]);
  const blocks = new Map();
  for (const m of markdown.matchAll(/^<!-- tested: ([\w-]+) -->\n```(\w*)\n([\s\S]*?)^```$/gm)) {
    assert.ok(!blocks.has(m[1]), `docs/client.md marks two blocks "tested: ${m[1]}"`);
    blocks.set(m[1], { lang: m[2], code: m[3] });
  }
  assert.deepEqual(markers, [...blocks.keys()], "every `<!-- tested: NAME -->` line in docs/client.md must be right before a code fence");
  return blocks;
}

/** The TypeScript block docs/client.md marks `tested: name`. */
export function docBlock(name, markdown = readFileSync(DOCS, "utf8")) {
  const block = markedBlocks(markdown).get(name);
  assert.ok(block, `docs/client.md has no code block marked <!-- tested: ${name} --> (on the line before its fence)`);
  assert.match(block.lang, /^(typescript|ts)$/, `the block "${name}" must be TypeScript, as the seed's`);
  return block.code;
}

/** The seed's code copied in this folder: the file below its header comment and blank line. */
export function seedBlock(file) {
  const text = readFileSync(fileURLToPath(new URL(file, import.meta.url)), "utf8");
  const start = text.indexOf("\n\n");
  assert.ok(text.startsWith("//") && start > 0, `${file}: a header comment, a blank line, then the seed's code`);
  return text.slice(start + 2);
}

/** Split TypeScript into its import statements and the rest. */
export function splitImports(code) {
  const lines = code.split("\n");
  const imports = [];
  const body = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^import\b/.test(lines[i])) {
      body.push(lines[i]);
      continue;
    }
    let statement = lines[i];
    while (!statement.trimEnd().endsWith(";")) statement += `\n${lines[++i]}`;
    const m = statement.match(/^import\s*\{([^}]*)\}\s*from\s*"([^"]+)";$/);
    assert.ok(m, `an import statement the test cannot read: ${statement}`);
    const names = m[1]
      .split(",")
      .map((s) => s.trim().replace(/^type\s+/, ""))
      .filter(Boolean);
    imports.push({ statement, from: m[2], names });
  }
  return { imports, body: body.join("\n") };
}

/** The code without its imports and without the docs' whole-line `// Added` and `// Fix N`
 * comments, blank lines collapsed, trimmed: what must equal the seed's. */
export function codeBody(code) {
  return splitImports(code)
    .body.split("\n")
    .filter((line) => !/^\s*\/\/ (Added|Fix \d)\b/.test(line))
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
}

/** The seed's `interface UseWebSocketOptions {...}` from its React block. */
export function seedOptionsInterface(seedReact) {
  const m = seedReact.match(/^interface UseWebSocketOptions \{\n[\s\S]*?\n\}\n/m);
  assert.ok(m, "the seed's React block declares interface UseWebSocketOptions");
  return m[0];
}

/** `code` with `before` replaced by `after`, which must occur exactly once. */
export function replaceOnce(code, before, after) {
  const parts = code.split(before);
  assert.equal(parts.length, 2, `expected exactly one occurrence of:\n${before}`);
  return parts.join(after);
}

/** TypeScript to an ES module: the types stripped (Babel's preset-typescript), nothing else. */
export function stripTypes(code, filename) {
  return babel.transformSync(code, {
    filename,
    babelrc: false,
    configFile: false,
    sourceType: "module",
    presets: [presetTypescript],
  }).code;
}

/** A folder inside the package (so `@tripsage/realtime-client` resolves by self-reference) for
 * the blocks as files; `remove()` deletes it. */
export function blockFolder() {
  const dir = mkdtempSync(join(PACKAGE, "test", "docs", ".blocks-"));
  return {
    dir,
    write(name, text) {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
