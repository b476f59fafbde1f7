import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { createJsonSchemaTransform, createJsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { RUNTIME_VERSION } from '../version.js';
import { apiSchemaRegistry } from './schemas.js';

/** Where the docs live: Swagger UI at DOCS_PREFIX, the OpenAPI document at `${DOCS_PREFIX}/json` and /openapi.json. */
export const DOCS_PREFIX = '/docs';

const buildDocument = createJsonSchemaTransformObject({ schemaRegistry: apiSchemaRegistry });

export interface DocsOptions {
  /** True when the API needs an API key: the document then requires the bearer scheme. */
  readonly secured: boolean;
  /**
   * Where the API is mounted ('' at the root). Under a prefix, the document's `servers` is that
   * prefix and its paths are relative to it, so a client generated from it calls the right URLs.
   */
  readonly basePath: string;
}

/**
 * Registers the OpenAPI document (built from the routes' zod schemas) and Swagger UI in the API's
 * context, before its routes: @fastify/swagger sees the routes of this context and of its
 * children, and none of the app around it. Swagger UI serves its own assets from the package, so
 * the docs work offline and load nothing from a CDN.
 */
export async function registerDocs(app: FastifyInstance, { secured, basePath }: DocsOptions): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'OpenAgentOrchestrator',
        version: RUNTIME_VERSION,
        description:
          'Governed agent runs over HTTP. Every run is bounded by the server\'s policy (a request can only narrow it) and ends with an ' +
          'ExecutionReport that says what happened and why it stopped. Every error answer is `{ error: { code, message, details? } }`.',
      },
      tags: [
        { name: 'runs', description: 'Start, follow, list and cancel runs; evaluate a policy against recorded ones' },
        { name: 'agents', description: 'The agents this server runs' },
        { name: 'approvals', description: 'Tool calls that wait for a person, and the decisions on them' },
        { name: 'service', description: 'The service itself' },
      ],
      ...(basePath === '' ? {} : { servers: [{ url: basePath, description: 'Where this app mounts the API' }] }),
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'One of the server\'s API keys' } } },
      ...(secured ? { security: [{ bearerAuth: [] }] } : {}),
    },
    transform: createJsonSchemaTransform({ schemaRegistry: apiSchemaRegistry, skipList: [] }),
    transformObject: (document) => withoutUnusedSchemas(buildDocument(document)),
  });
  await app.register(fastifySwaggerUi, {
    routePrefix: DOCS_PREFIX,
    // The page links its assets by absolute path when opened without a trailing slash.
    ...(basePath === '' ? {} : { indexPrefix: basePath }),
    uiConfig: { deepLinking: true, tryItOutEnabled: false },
    theme: { title: 'OAO API' },
  });
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
}

type OpenApiDocument = ReturnType<typeof buildDocument>;

/**
 * Drops component schemas nothing refers to. The zod provider emits every registered schema twice
 * (as request and as response); only the ones the routes use belong in the document.
 */
function withoutUnusedSchemas(document: OpenApiDocument): OpenApiDocument {
  const components = (document as { components?: { schemas?: Record<string, unknown> } }).components;
  const schemas = components?.schemas;
  if (schemas === undefined) return document;
  const used = new Set<string>();
  const pending: unknown[] = [{ ...document, components: { ...components, schemas: {} } }];
  while (pending.length > 0) {
    const value = pending.pop();
    if (Array.isArray(value)) {
      pending.push(...(value as unknown[]));
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, child] of Object.entries(value)) {
        if (key === '$ref' && typeof child === 'string' && child.startsWith(SCHEMA_REF)) {
          const name = child.slice(SCHEMA_REF.length);
          if (!used.has(name)) {
            used.add(name);
            pending.push(schemas[name]);
          }
        } else {
          pending.push(child);
        }
      }
    }
  }
  const kept = Object.fromEntries(Object.entries(schemas).filter(([name]) => used.has(name)));
  return { ...document, components: { ...components, schemas: kept } } as OpenApiDocument;
}

const SCHEMA_REF = '#/components/schemas/';
