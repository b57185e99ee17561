/**
 * Request validation (docs/SECURITY.md): unknown properties are refused
 * (additionalProperties: false), never silently dropped, and JSON bodies are
 * taken as typed: "false" is not a boolean and 5 is not a name. Query strings
 * and path parameters are text by nature, so they are still coerced.
 *
 * Given to Fastify as its validator factory (schemaController), so that every
 * plugin context, including those that add shared schemas, builds its
 * validators this way.
 */
import ajvCompiler from "@fastify/ajv-compiler";
import type { FastifyServerOptions } from "fastify";

const build = ajvCompiler();
const common = { removeAdditional: false, useDefaults: true, allErrors: false } as const;

type BuildValidator = NonNullable<NonNullable<NonNullable<FastifyServerOptions["schemaController"]>["compilersFactory"]>["buildValidator"]>;

// Fastify's type for this factory describes Ajv's compile; at run time it is
// called like a validator compiler (route definition in, validate function out).
export const buildValidator = ((externalSchemas: unknown) => {
  const bodies = build(externalSchemas as never, { customOptions: { ...common, coerceTypes: false } });
  const text = build(externalSchemas as never, { customOptions: { ...common, coerceTypes: "array" } });
  return (route: { httpPart?: string }) => (route.httpPart === "body" ? bodies : text)(route as never);
}) as unknown as BuildValidator;
