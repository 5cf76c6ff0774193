// The TextMate grammar, checked the way VS Code runs it (vscode-textmate with the oniguruma
// regex engine): every example of the repository is tokenized and the scopes are compared with
// the snapshots in test/snapshots/ (one file per example, each line followed by its tokens).
//
// Run: `npm test`. After a deliberate grammar change: `UPDATE_SNAPSHOTS=1 npm test`, then read
// the diff of test/snapshots/ before committing. A new example gets its snapshot the same way.
"use strict";

const { test } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const repo = path.resolve(__dirname, "..", "..", "..");
const grammarPath = path.join(__dirname, "..", "syntaxes", "netc.tmLanguage.json");
const snapshots = path.join(__dirname, "snapshots");
const update = process.env.UPDATE_SNAPSHOTS === "1";

const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
const onigLib = oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength)).then(() => ({
  createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
  createOnigString: (s) => new oniguruma.OnigString(s),
}));
const registry = new vsctm.Registry({
  onigLib,
  loadGrammar: async (scopeName) =>
    scopeName === "source.netc" ? vsctm.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath) : null,
});
const grammar = registry.loadGrammar("source.netc");

/** Every `.np` file under examples/, relative to the repository, sorted. */
function examples() {
  const out = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith(".np")) out.push(path.relative(repo, full));
    }
  };
  walk(path.join(repo, "examples"));
  return out.sort();
}

/** Each line, then one indented line per token: its text and its scopes (without source.netc). */
async function tokens(text) {
  const g = await grammar;
  let stack = vsctm.INITIAL;
  const out = [];
  const all = [];
  for (const line of text.split("\n")) {
    const r = g.tokenizeLine(line, stack);
    out.push(line);
    for (const t of r.tokens) {
      const piece = line.slice(t.startIndex, t.endIndex);
      const scopes = t.scopes.filter((s) => s !== "source.netc");
      all.push({ piece, scopes });
      if (piece.trim() === "") continue;
      out.push(`  ${JSON.stringify(piece)} ${scopes.join(" ") || "-"}`);
    }
    stack = r.ruleStack;
  }
  return { rendered: out.join("\n") + "\n", all };
}

function snapshotName(example) {
  return example.replace(/[\\/]/g, "__") + ".scopes";
}

for (const example of examples()) {
  test(`tokens of ${example} match their snapshot`, async () => {
    const { rendered, all } = await tokens(fs.readFileSync(path.join(repo, example), "utf8"));
    // Every example compiles, so nothing in one may be marked invalid.
    const invalid = all.filter((t) => t.scopes.some((s) => s.startsWith("invalid.")));
    assert.deepEqual(invalid, [], "an example compiles: no token of it is invalid");
    const file = path.join(snapshots, snapshotName(example));
    if (update || !fs.existsSync(file)) {
      if (!update) assert.fail(`no snapshot ${path.relative(repo, file)}: run UPDATE_SNAPSHOTS=1 npm test and review it`);
      fs.writeFileSync(file, rendered);
      return;
    }
    assert.equal(rendered, fs.readFileSync(file, "utf8"), `scopes of ${example} changed (UPDATE_SNAPSHOTS=1 npm test to accept)`);
  });
}

test("every snapshot belongs to an example", () => {
  const wanted = new Set(examples().map(snapshotName));
  const stale = fs.readdirSync(snapshots).filter((f) => !wanted.has(f));
  assert.deepEqual(stale, [], "snapshots of examples that are gone");
});

/** The scopes of the token covering `piece` in `line` (the first such token). */
async function scopesOf(line, piece) {
  const { all } = await tokens(line);
  const t = all.find((t) => t.piece === piece);
  assert.ok(t, `no token ${JSON.stringify(piece)} in ${JSON.stringify(line)}: ${JSON.stringify(all)}`);
  return t.scopes.join(" ");
}

test("each construct gets its scope", async () => {
  const cases = [
    ["frontend -> backend:8080", "->", "keyword.operator.arrow.netc"],
    ["frontend -> backend:8080", "8080", "constant.numeric.port.netc"],
    ["frontend -> backend:8080", "backend", "variable.other.workload.netc"],
    ["hermit isolated", "isolated", "keyword.other.door.isolated.netc"],
    ["ingress-nginx/{app=x} -> web:http", "ingress-nginx", "entity.name.namespace.netc"],
    ["ingress-nginx/{app=x} -> web:http", "http", "variable.other.named-port.netc"],
    ["ingress-nginx/{app=x} -> web:http", "app", "meta.selector.netc entity.other.attribute-name.label-key.netc"],
    ["a -> b:[53/udp, 8000-8100]", "udp", "meta.ports.netc support.type.protocol.netc"],
    ["a -> b:[53/udp, 8000-8100]", "8000-8100", "meta.ports.netc constant.numeric.port-range.netc"],
    ["a -> b:53/icmp", "icmp", "invalid.illegal.protocol.netc"],
    ["a -> 2001:db8::/32:443", "2001:db8::/32", "constant.numeric.cidr.ipv6.netc"],
    ["external p = 10.0.0.0/8 except 10.1.0.0/16", "except", "keyword.other.except.netc"],
    ["external p = 10.0.0.0/8 except 10.1.0.0/16", "p", "entity.name.type.external.netc"],
    ["namespace shop {", "shop", "entity.name.namespace.netc"],
    ["default deny egress", "deny", "keyword.other.action.netc"],
    ["default/web -> api", "default", "entity.name.namespace.netc"],
    ["web -/-> api", "-/->", "keyword.operator.arrow.deny.netc"],
    ["web -> example.com:443", "example.com", "invalid.illegal.fqdn.netc"],
    ["## Only the storefront.", "## Only the storefront.", "comment.line.double-number-sign.documentation.netc"],
    ["web -> api # why", "# why", "comment.line.number-sign.netc"],
    ["opener -> dns-cache", "opener", "variable.other.workload.netc"],
    ["opener -> dns-cache", "dns-cache", "variable.other.workload.netc"],
    ["@allow(W0203, W0201)", "@allow", "meta.allow.netc keyword.other.allow.netc"],
    ["@allow(W0203, W0201)", "W0201", "meta.allow.netc constant.other.diagnostic-code.netc"],
    ["egress backend -> database", "egress", "storage.modifier.egress-only.netc"],
    ["egress a, b -> c:80", "egress", "storage.modifier.egress-only.netc"],
    ["backend egress guarded", "egress", "keyword.other.direction.netc"],
    ["workload p = {purpose=production}/*", "purpose", "meta.selector.netc entity.other.attribute-name.label-key.netc"],
    ["workload p = shop/{app=cart}", "shop", "entity.name.namespace.netc"],
    ["assert */* !-> payments/vault", "assert", "keyword.control.assert.netc"],
    ["assert */* !-> payments/vault", "!->", "keyword.operator.arrow.deny.netc"],
    ["assert -> web", "assert", "variable.other.workload.netc"],
  ];
  for (const [line, piece, want] of cases) {
    assert.equal(await scopesOf(line, piece), want, `${JSON.stringify(piece)} in ${JSON.stringify(line)}`);
  }
});

test("every keyword of grammar/netc.pest is a keyword to the TextMate grammar", async () => {
  const pest = fs.readFileSync(path.join(repo, "grammar", "netc.pest"), "utf8");
  const rule = pest.match(/^keyword\s*=\s*@\{([\s\S]*?)\}\s*$/m);
  assert.ok(rule, "grammar/netc.pest has a keyword rule");
  const words = [...rule[1].matchAll(/"([a-z]+)"/g)].map((m) => m[1]);
  assert.ok(words.length >= 10, `keywords found: ${words}`);
  for (const w of words) {
    // Where the keyword can stand: after a name (doors), before one (declarations), alone.
    const seen = [];
    for (const line of [`x ${w} y = {a=b}`, `${w} y = {a=b}`, `x -> ${w}`, `10.0.0.0/8 ${w} 10.1.0.0/16`]) {
      const { all } = await tokens(line);
      seen.push(...all.filter((t) => t.piece === w).map((t) => t.scopes.join(" ")));
    }
    assert.ok(
      seen.some((s) => /^(keyword|storage|constant\.language|invalid\.illegal)\./.test(s)),
      `keyword ${w} of netc.pest reads as ${JSON.stringify(seen)}`
    );
  }
});
