import type { FastifySerializerCompiler } from 'fastify';
import { ResponseSerializationError } from 'fastify-type-provider-zod';
import { z } from 'zod';

/**
 * The serializer of every answer with a response schema: the value is checked against the schema
 * (a mismatch is a defect, answered 500 and logged), then sent as it is. Not zod's output: z.record
 * drops a `__proto__` key, and an agent's output, a tool named `__proto__` or a job of that name
 * must reach the client as the run recorded them (the report served is the report hashed). Every
 * answer is built by the server from its own records, so there is nothing to strip.
 */
export const checkedSerializerCompiler: FastifySerializerCompiler<unknown> = ({ schema, method, url }) => {
  const zodSchema = toZodSchema(schema);
  return (data: unknown) => {
    const checked = z.safeEncode(zodSchema, data);
    if (!checked.success) throw new ResponseSerializationError(method, url, { cause: checked.error });
    return JSON.stringify(data);
  };
};

function toZodSchema(schema: unknown): z.ZodType {
  if (schema instanceof z.ZodType) return schema;
  const properties = (schema as { properties?: unknown } | null)?.properties;
  if (properties instanceof z.ZodType) return properties;
  throw new TypeError(`A response schema of the API is not a zod schema: ${JSON.stringify(schema)}`);
}
