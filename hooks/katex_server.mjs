// Build-time KaTeX renderer: one Node process per MkDocs build (started by hooks/katex.py).
//
// Protocol, one JSON document per line on stdin and stdout:
//   request  {"items": [{"tex": "...", "display": true}, ...]}
//   response {"results": [{"html": "..."} | {"error": "..."}, ...]}
// Every formula of a page travels in one request, so a page costs one round trip.
import { createInterface } from "node:readline";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
// Resolve KaTeX from the repository's node_modules (package.json pins the version).
const require = createRequire(path.join(here, "..", "package.json"));
const katex = require("katex");

const options = (display) => ({
  displayMode: display,
  throwOnError: true, // bad TeX must fail the build, never render red text
  output: "htmlAndMathml", // MathML keeps formulas readable by screen readers
  strict: "error",
  trust: false,
});

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  let results;
  try {
    const { items } = JSON.parse(line);
    results = items.map(({ tex, display }) => {
      try {
        return { html: katex.renderToString(tex, options(display)) };
      } catch (err) {
        return { error: String(err && err.message ? err.message : err) };
      }
    });
  } catch (err) {
    results = [{ error: `bad request: ${err}` }];
  }
  process.stdout.write(JSON.stringify({ results }) + "\n");
});
