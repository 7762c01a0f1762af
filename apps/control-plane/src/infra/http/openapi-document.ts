import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { PUBLIC_OPERATION } from '../../access/access.decorators.js';

type Operation = OpenAPIObject['paths'][string]['get'] & Record<string, unknown>;
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

export const ERROR_SCHEMA = 'ErrorResponse';

/** The document served at /api/openapi.json (and linted in CI: `npm run lint:openapi`). */
export function buildOpenApiDocument(app: INestApplication, options: { publicUrl?: string } = {}): OpenAPIObject {
  const base = new DocumentBuilder()
    .setTitle('Fleetline control plane')
    .setDescription('Admin API: devices, models, staged rollouts and model telemetry')
    .setVersion('1')
    .setLicense('Apache-2.0', 'https://www.apache.org/licenses/LICENSE-2.0')
    .addServer(options.publicUrl ?? '/', options.publicUrl ? 'this control plane (PUBLIC_URL)' : 'the server that serves this document')
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'An API key (`flk_…`): `Authorization: Bearer <key>`' }, 'bearer')
    .addBasicAuth({ type: 'http', scheme: 'basic', description: "A device's id and secret, as handed out at enrollment" }, 'basic')
    .build();
  return withSharedErrors(SwaggerModule.createDocument(app, base));
}

/**
 * Every operation documents the failures every route can answer, in the one shape the exception
 * filter writes (`{ statusCode, code, message }`), and states its security: an API key unless
 * the route is @Public() (then whatever its own decorators say, e.g. device basic auth, or none).
 */
export function withSharedErrors(document: OpenAPIObject): OpenAPIObject {
  document.components ??= {};
  document.components.schemas ??= {};
  document.components.schemas[ERROR_SCHEMA] = {
    type: 'object',
    required: ['statusCode', 'code', 'message'],
    properties: {
      statusCode: { type: 'integer', example: 404 },
      code: { type: 'string', description: 'Stable machine-readable reason, e.g. `rollout-not-found`', example: 'not-found' },
      message: {
        description: 'What went wrong, for a person (a list for request validation failures)',
        oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }],
      },
      details: { type: 'object', additionalProperties: true, description: 'Extra facts about some failures' },
    },
  };
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of METHODS) {
      const operation = item[method] as Operation | undefined;
      if (!operation) continue;
      const isPublic = operation[PUBLIC_OPERATION] === true;
      delete operation[PUBLIC_OPERATION];
      if (!isPublic) operation.security = [{ bearer: [] }];
      else operation.security ??= [];
      for (const [status, description] of sharedFailures(method, path, operation)) {
        operation.responses[status] ??= { description, content: { 'application/json': { schema: { $ref: `#/components/schemas/${ERROR_SCHEMA}` } } } };
      }
    }
  }
  return document;
}

function sharedFailures(method: (typeof METHODS)[number], path: string, operation: Operation): [string, string][] {
  const failures: [string, string][] = [];
  const security = operation.security ?? [];
  const takesInput = (operation.parameters?.length ?? 0) > 0 || operation.requestBody !== undefined;
  if (takesInput) failures.push(['400', 'Invalid input: a parameter or the body failed validation']);
  if (security.length > 0) failures.push(['401', 'Missing, invalid or revoked credentials']);
  if (security.some((requirement) => 'bearer' in requirement)) failures.push(['403', "The API key's role does not allow this"]);
  if (path.includes('{')) failures.push(['404', 'No such resource']);
  const mutates = method === 'post' || method === 'put' || method === 'patch';
  if (mutates && security.some((requirement) => 'bearer' in requirement))
    failures.push(['409', "Conflicts with the resource's current state (it exists already, or the state does not allow this)"]);
  return failures;
}
