/** Building blocks of the OpenAPI document (openapi.ts and its parts, openapi-*.ts). */
import { z } from "zod";

export const json = (schema: z.ZodType, io: "input" | "output" = "output") => z.toJSONSchema(schema, { io, unrepresentable: "any" });
export const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
export const content = (schema: object) => ({ "application/json": { schema } });
export const problems = (...statuses: number[]) =>
  Object.fromEntries(
    statuses.map((status) => [String(status), { description: "Problem", content: { "application/problem+json": { schema: ref("Problem") } } }]),
  );

export const poolParam = { name: "pool", in: "path", required: true, schema: { type: "string", pattern: "^[a-z0-9][a-z0-9-]{0,62}$" } };
export const tenantParam = { name: "tenant", in: "path", required: true, schema: { type: "string", pattern: "^[A-Za-z0-9_.-]{1,100}$" } };
export const keyIdParam = { name: "id", in: "path", required: true, schema: { type: "string", pattern: "^key_[0-9a-f]{16}$" } };
export const idParam = { name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" } };


export const pageParams = [
  { name: "limit", in: "query", required: false, schema: { type: "integer", minimum: 1, maximum: 100, default: 50 } },
  { name: "cursor", in: "query", required: false, schema: { type: "string" }, description: "nextCursor of the previous page" },
];
