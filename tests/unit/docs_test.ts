/**
 * The repository documents itself: no file points at the specification that
 * used to live outside it, every section reference (a section sign and a
 * number) names a file in docs/ and a numbered heading that exists there,
 * and the docs' headings are numbered in order so those references stay
 * stable. The section sign is written as an escape in this file, so the file
 * passes its own check.
 */
import assert from "node:assert/strict";

const SECTION = "\u00a7";
const ROOT = new URL("../../", import.meta.url);
/** What is checked: code, tests, tools and every document a reader is sent to. */
const SCANNED = ["src", "tests", "bench", "scripts", "docs", "main.ts", "README.md", ".env.sample"];
/** The old external spec; built from parts so this file does not contain them. */
const EXTERNAL = [
  ["..", "shared"].join("/"),
  ["shared", "spec"].join("/"),
  ["", "work", "shared"].join("/"),
  ["compat-decisions", "md"].join("."),
  ["mastodon-streaming", "md"].join("."),
];

/** Section numbers of a markdown file: `## 3. Streams` → 3, `### 3.4 Hashtags` → 3.4. */
function headings(markdown: string): string[] {
  const found: string[] = [];
  for (const line of markdown.split("\n")) {
    const match = /^#{2,6} (\d+(?:\.\d+)*)\.? /.exec(line);
    if (match) found.push(match[1]);
  }
  return found;
}

/** One section reference: the docs file it names (or undefined) and the section number. */
interface Reference {
  doc: string | undefined;
  section: string;
}

const DOC_NAME = /(docs\/)?([a-z][a-z_-]*\.md)\b/g;
const SECTION_REF = new RegExp(`${SECTION}(\\d+(?:\\.\\d+)*)`, "g");

/** The docs files named on a line, with their positions. */
function docNames(line: string, inDocs?: string): { at: number; doc: string }[] {
  const names: { at: number; doc: string }[] = [];
  for (const m of line.matchAll(DOC_NAME)) {
    if (m[1] !== undefined || inDocs !== undefined) names.push({ at: m.index, doc: m[2] });
  }
  return names;
}

/**
 * The section references of one line, each bound to the nearest docs file
 * named before it on that line, else to `fallback`. In a docs file a sibling
 * may be named without `docs/`; elsewhere only `docs/<file>.md` counts.
 */
function references(line: string, fallback?: string, inDocs?: string): Reference[] {
  const names = docNames(line, inDocs);
  return [...line.matchAll(SECTION_REF)].map((m) => ({
    doc: names.findLast((n) => n.at < m.index)?.doc ?? fallback,
    section: m[1],
  }));
}

/**
 * Problems of one file's text; `docs` maps a docs file name to its section
 * numbers. Code is checked line by line; in markdown a docs file named
 * earlier in the same paragraph still counts (prose wraps), and in a docs
 * file a bare reference means that file.
 */
function problems(
  path: string,
  text: string,
  docs: ReadonlyMap<string, readonly string[]>,
): string[] {
  const found: string[] = [];
  const inDocs = path.startsWith("docs/") ? path.slice("docs/".length) : undefined;
  const markdown = path.endsWith(".md");
  let named: string | undefined; // the last docs file named in this markdown paragraph
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") named = undefined;
    const where = `${path}:${i + 1}`;
    for (const external of EXTERNAL) {
      if (line.includes(external)) found.push(`${where} refers to ${external}`);
    }
    for (const { doc, section } of references(line, named ?? inDocs, inDocs)) {
      const ref = `${SECTION}${section}`;
      if (doc === undefined) found.push(`${where}: ${ref} names no docs/ file`);
      else if (!docs.has(doc)) {
        found.push(`${where}: ${ref} names docs/${doc}, which does not exist`);
      } else if (!docs.get(doc)!.includes(section)) {
        found.push(`${where}: docs/${doc} has no heading ${section}`);
      }
    }
    for (const [, target] of line.matchAll(/\]\(((?:docs\/)?[a-z_-]+\.md)\)/g)) {
      const doc = target.replace(/^docs\//, "");
      if (!docs.has(doc)) found.push(`${where}: link to ${target}, which does not exist`);
    }
    if (markdown) named = docNames(line, inDocs).at(-1)?.doc ?? named;
  });
  return found;
}

async function* files(path: string): AsyncGenerator<string> {
  const info = await Deno.stat(new URL(path, ROOT));
  if (info.isFile) {
    yield path;
    return;
  }
  for await (const entry of Deno.readDir(new URL(path, ROOT))) {
    yield* files(`${path}/${entry.name}`);
  }
}

async function docsSections(): Promise<Map<string, string[]>> {
  const docs = new Map<string, string[]>();
  for await (const entry of Deno.readDir(new URL("docs", ROOT))) {
    if (!entry.name.endsWith(".md")) continue;
    docs.set(entry.name, headings(await Deno.readTextFile(new URL(`docs/${entry.name}`, ROOT))));
  }
  return docs;
}

async function repositoryProblems(): Promise<string[]> {
  const docs = await docsSections();
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const found: string[] = [];
  for (const top of SCANNED) {
    for await (const path of files(top)) {
      let text: string;
      try {
        text = decoder.decode(await Deno.readFile(new URL(path, ROOT)));
      } catch {
        continue; // not text
      }
      found.push(...problems(path, text, docs));
    }
  }
  return found;
}

Deno.test("No file refers to the old spec outside the repository, and every section reference exists", async () => {
  assert.deepEqual(await repositoryProblems(), []);
});

Deno.test("The checker rejects external, bare, unknown and missing section references", () => {
  const docs = new Map([["protocol.md", ["1", "1.1", "3", "3.4"]]]);
  const check = (line: string, path = "src/x.ts") => problems(path, line, docs);
  assert.deepEqual(check(`// see docs/protocol.md ${SECTION}3.4 and ${SECTION}1.1`), []);
  assert.deepEqual(check(`// (docs/protocol.md ${SECTION}1.1–${SECTION}3.4)`), []);
  assert.equal(check(`// see ${SECTION}3.4`).length, 1, "a bare reference outside docs/");
  assert.equal(check(`// see protocol.md ${SECTION}3.4`).length, 1, "no docs/ prefix");
  assert.equal(check(`// docs/protocol.md ${SECTION}3.5`).length, 1, "no such heading");
  assert.equal(check(`// docs/other.md ${SECTION}1`).length, 1, "no such file");
  assert.equal(check(`// spec ${SECTION}6, then docs/protocol.md`).length, 1, "named after");
  assert.equal(check(`// read ${EXTERNAL[0]}/spec/x`).length, 2);
  assert.equal(check("[x](docs/" + "missing.md)", "README.md").length, 1, "a broken link");
  assert.deepEqual(check(`see ${SECTION}3 and compatibility.md`, "docs/protocol.md"), []);
  assert.equal(check(`see protocol.md ${SECTION}2`, "docs/protocol.md").length, 1);
  const wrapped = `see docs/protocol.md ${SECTION}1 and\n${SECTION}3.4`;
  assert.deepEqual(check(wrapped, "README.md"), [], "markdown prose wraps");
  assert.equal(check(`${wrapped}\n\n${SECTION}3.4`, "README.md").length, 1, "new paragraph");
  assert.equal(check(wrapped).length, 1, "code is checked line by line");
});

Deno.test("Docs headings are numbered in order, subsections under their chapter", async () => {
  const docs = await docsSections();
  assert.deepEqual([...docs.keys()].sort(), ["compatibility.md", "protocol.md"]);
  for (const [name, sections] of docs) {
    let chapter = 0, sub = 0;
    for (const section of sections) {
      const [major, minor, ...deeper] = section.split(".").map(Number);
      assert.equal(deeper.length, 0, `${name}: ${section} is nested too deep`);
      if (minor === undefined) {
        assert.equal(major, chapter + 1, `${name}: chapter ${section} out of order`);
        chapter = major;
        sub = 0;
      } else {
        assert.ok(major === chapter && minor === sub + 1, `${name}: ${section} out of order`);
        sub = minor;
      }
    }
    assert.ok(chapter > 0, `${name} has numbered chapters`);
  }
});
