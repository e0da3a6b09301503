/**
 * GET /docs: the API reference, rendered from the same OpenAPI document as
 * /openapi.json (so it cannot drift from the routes), as one self-contained
 * HTML page: every path and method with its summary, parameters, request body
 * schema and answers.
 */
type Json = Record<string, any>;

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
<style>
body { font: 14px/1.5 system-ui, sans-serif; max-width: 980px; margin: 2rem auto; padding: 0 1rem; color: #1d2329; }
.op { border-top: 1px solid #e2e6ea; padding: .75rem 0; } h2 { font-size: 1.05rem; margin: 0 0 .25rem; } h3 { font-size: .85rem; margin: .5rem 0 .25rem; color: #5a6570; }
.method { display: inline-block; min-width: 4.2rem; text-align: center; border-radius: 4px; color: #fff; font-size: .8rem; padding: .1rem .3rem; }
.get { background: #2f7ed8; } .post { background: #2e9d5b; } .put { background: #c58a12; } .delete { background: #c8453b; } .patch { background: #7a5bc4; }
pre { background: #f5f7f9; padding: .5rem; overflow: auto; font-size: .8rem; } .muted, .ref { color: #5a6570; font-size: .85rem; margin: 0; }
</style></head>
<body><h1>${esc(doc.info?.title ?? "API")} <small class="muted">${esc(doc.info?.version ?? "")}</small></h1>
<p>${esc(doc.info?.description ?? "")} The machine-readable document is <a href="/openapi.json">/openapi.json</a> (OpenAPI ${esc(doc.openapi)}).</p>
${sections.join("\n")}
</body></html>
`;
}
