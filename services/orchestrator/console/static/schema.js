// The API leaves a field at its default off the wire (msgspec's omit_defaults), so an answer may lack
// `violations: []` or `state: "waiting"`. The console fills them in from the API's own OpenAPI document
// (/openapi.json names every default), by the schema of the route that answered: never a copy of them.

let doc = null;
let routes = [];

/** Read the API's document once (it needs no token). */
export async function loadSchemas() {
  doc = await (await fetch("/openapi.json")).json();
  routes = Object.entries(doc.paths).map(([template, methods]) => ({
    pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, "[^/]+")}$`),
    methods,
  }));
}

/** The schema of a route's 200 (or 201/202) JSON answer, or null. */
export function answerSchema(method, path) {
  const bare = path.split("?")[0];
  const found = routes.find((r) => r.pattern.test(bare) && r.methods[method.toLowerCase()]);
  if (!found) return null;
  const answers = found.methods[method.toLowerCase()].responses;
  for (const status of ["200", "201", "202"]) {
    const schema = answers[status]?.content?.["application/json"]?.schema;
    if (schema) return schema;
  }
  return null;
}

function named(ref) {
  return doc.components.schemas[ref.split("/").pop()];
}

/** The schema `value` is of, following $ref and picking among anyOf/oneOf (by `kind`, for an event). */
function resolve(schema, value) {
  if (!schema) return null;
  if (schema.$ref) return resolve(named(schema.$ref), value);
  const alternatives = schema.anyOf || schema.oneOf;
  if (!alternatives) return schema;
  const candidates = alternatives.map((alt) => (alt.$ref ? named(alt.$ref) : alt));
  if (Array.isArray(value)) return candidates.find((c) => c.type === "array") || null;
  if (value && typeof value === "object") {
    const objects = candidates.filter((c) => c.properties);
    const byKind = objects.find((c) => c.properties.kind?.enum?.includes(value.kind));
    return byKind || objects[0] || null;
  }
  return null;
}

/** `value` with every field its schema gives a default filled in, all the way down; changed in place. */
export function complete(value, schema) {
  const chosen = resolve(schema, value);
  if (!chosen || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    if (chosen.items) value.forEach((item, i) => (value[i] = complete(item, chosen.items)));
    return value;
  }
  for (const [name, property] of Object.entries(chosen.properties || {})) {
    if (!(name in value) && "default" in property) value[name] = structuredClone(property.default);
    if (name in value) value[name] = complete(value[name], property);
  }
  if (chosen.additionalProperties && typeof chosen.additionalProperties === "object") {
    for (const key of Object.keys(value)) value[key] = complete(value[key], chosen.additionalProperties);
  }
  return value;
}

/** The default the document gives one field of a named schema (`defaultOf("HumanWork", "form")`). */
export function defaultOf(schemaName, field) {
  const value = doc?.components?.schemas?.[schemaName]?.properties?.[field]?.default;
  return value === undefined ? undefined : structuredClone(value);
}
