/**
 * GET /docs: the API reference, rendered from the same OpenAPI document as
 * /openapi.json (so it cannot drift from the routes), as one self-contained
 * HTML page: every path and method with its summary, parameters, request body
 * schema and answers.
 *
 * GET /docs/errors: the error catalogue (src/problems.ts), one section per
 * code with the code as its `id`, so that every problem+json `type`
 * (`https://<host>/docs/errors#<code>`) lands on its entry.
 */
import { ERRORS_PATH, NEXT_STEPS, PROBLEMS, type ProblemEntry } from "../problems";

type Json = Record<string, any>;

const STYLE = `body { font: 14px/1.5 system-ui, sans-serif; max-width: 980px; margin: 2rem auto; padding: 0 1rem; color: #1d2329; }
.op { border-top: 1px solid #e2e6ea; padding: .75rem 0; } h2 { font-size: 1.05rem; margin: 0 0 .25rem; } h3 { font-size: .85rem; margin: .5rem 0 .25rem; color: #5a6570; }
.method { display: inline-block; min-width: 4.2rem; text-align: center; border-radius: 4px; color: #fff; font-size: .8rem; padding: .1rem .3rem; }
.get { background: #2f7ed8; } .post { background: #2e9d5b; } .put { background: #c58a12; } .delete { background: #c8453b; } .patch { background: #7a5bc4; }
pre { background: #f5f7f9; padding: .5rem; overflow: auto; font-size: .8rem; } .muted, .ref { color: #5a6570; font-size: .85rem; margin: 0; }
.status { display: inline-block; min-width: 2.6rem; font-weight: 600; } .next { display: inline-block; border-radius: 4px; background: #eef1f4; font-size: .8rem; padding: .05rem .4rem; }
:target { background: #fff8e1; } table { border-collapse: collapse; } td { padding: .1rem .6rem .1rem 0; vertical-align: top; }`;

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

function schemaText(schema: Json | undefined, doc: Json): string {
  if (!schema) return "";
  const ref = typeof schema.$ref === "string" ? schema.$ref.split("/").pop() : undefined;
  const resolved = ref ? doc.components?.schemas?.[ref] : schema;
  return `${ref ? `<p class="ref">${esc(ref)}</p>` : ""}<pre>${esc(JSON.stringify(resolved, null, 2))}</pre>`;
}

export function renderReference(doc: Json): string {
  const sections: string[] = [];
  for (const [path, item] of Object.entries(doc.paths as Json)) {
    const shared: Json[] = item.parameters ?? [];
    for (const method of ["get", "post", "put", "delete", "patch"]) {
      const op = item[method] as Json | undefined;
      if (!op) continue;
      const params = [...shared, ...(op.parameters ?? [])];
      const auth = op.security && op.security.length === 0 ? "none" : "Bearer";
      const body = op.requestBody?.content?.["application/json"]?.schema;
      const answers = Object.entries(op.responses ?? {})
        .map(([status, r]: [string, any]) => `<li><b>${esc(status)}</b> ${esc(r.description ?? "")}</li>`)
        .join("");
      sections.push(`<section class="op" id="${esc(`${method}-${path}`)}" data-route="${esc(`${method.toUpperCase()} ${path}`)}">
<h2><span class="method ${method}">${method.toUpperCase()}</span> <code>${esc(path)}</code></h2>
<p>${esc(op.summary ?? "")}</p>${op.description ? `<p>${esc(op.description)}</p>` : ""}
<p class="muted">auth: ${auth}</p>
${params.length ? `<h3>Parameters</h3><ul>${params.map((p) => `<li><code>${esc(p.name)}</code> (${esc(p.in)}${p.required ? ", required" : ""})${p.description ? ` ${esc(p.description)}` : ""}</li>`).join("")}</ul>` : ""}
${body ? `<h3>Request body</h3>${schemaText(body, doc)}` : ""}
<h3>Answers</h3><ul>${answers}</ul>
</section>`);
    }
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(doc.info?.title ?? "API")} — API reference</title>
<style>${STYLE}</style></head>
<body><h1>${esc(doc.info?.title ?? "API")} <small class="muted">${esc(doc.info?.version ?? "")}</small></h1>
<p>${esc(doc.info?.description ?? "")} The machine-readable document is <a href="/openapi.json">/openapi.json</a> (OpenAPI ${esc(doc.openapi)}).
Every error is <code>application/problem+json</code> with a stable <code>code</code>; the <a href="${ERRORS_PATH}">error catalogue</a> says what each means and what to do about it.</p>
${sections.join("\n")}
</body></html>
`;
}

/** Inline Markdown-ish code spans (`x`) as <code>, everything else escaped. */
const prose = (text: string) => esc(text).replace(/`([^`]+)`/g, "<code>$1</code>");

/** GET /docs/errors: every code of the catalogue, each in a section whose id is the code. */
export function renderErrorCatalogue(): string {
  const entries = Object.entries(PROBLEMS) as [string, ProblemEntry][];
  const index = entries.map(([code, entry]) => `<tr><td><a href="#${esc(code)}"><code>${esc(code)}</code></a></td><td>${Object.keys(entry.statuses).join(", ")}</td><td>${esc(entry.title)}</td></tr>`).join("\n");
  const sections = entries.map(([code, entry]) => {
    const statuses = Object.entries(entry.statuses)
      .map(([status, when]) => `<li><span class="status">${esc(status)}</span> ${prose(String(when))}</li>`)
      .join("");
    return `<section class="op" id="${esc(code)}" data-code="${esc(code)}">
<h2><code>${esc(code)}</code> — ${esc(entry.title)}</h2>
<h3>When</h3><ul>${statuses}</ul>
<h3>What to do</h3><p><span class="next" title="${esc(NEXT_STEPS[entry.next])}">${esc(entry.next)}</span> ${prose(entry.todo)}</p>
</section>`;
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Browser session broker — error catalogue</title>
<style>${STYLE}</style></head>
<body><h1>Error catalogue</h1>
<p>Every error the broker answers is <code>application/problem+json</code>:
<code>{type, title, status, detail, code, instance?}</code>. <code>code</code> is stable and is one of those below;
<code>type</code> is the address of its entry on this page (<code>https://&lt;host&gt;${ERRORS_PATH}#&lt;code&gt;</code>);
<code>detail</code> says what happened this time (the field at fault, the limit reached). Answers that say when to come back carry
<code>Retry-After</code> (seconds). The next step, in one word: ${Object.entries(NEXT_STEPS).map(([step, meaning]) => `<b>${esc(step)}</b>: ${esc(meaning)}`).join("; ")}.
Back to the <a href="/docs">API reference</a>.</p>
<table>
<tr><td><b>code</b></td><td><b>status</b></td><td><b>title</b></td></tr>
${index}
</table>
${sections.join("\n")}
</body></html>
`;
}
