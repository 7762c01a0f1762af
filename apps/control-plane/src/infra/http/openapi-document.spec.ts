import { describe, expect, it } from '@jest/globals';
import type { OpenAPIObject } from '@nestjs/swagger';
import { PUBLIC_OPERATION } from '../../access/access.decorators.js';
import { withSharedErrors } from './openapi-document.js';

const ok = { '200': { description: 'OK' } };

function document(): OpenAPIObject {
  return {
    openapi: '3.0.0',
    info: { title: 't', version: '1' },
    paths: {
      '/api/v1/rollouts/{id}/abort': { post: { parameters: [{ name: 'id', in: 'path', required: true }], responses: { ...ok } } },
      '/api/v1/devices': { get: { responses: { ...ok } } },
      '/api/v1/enroll': { post: { [PUBLIC_OPERATION]: true, requestBody: { content: {} }, responses: { '201': { description: 'Created' } } } },
      '/api/v1/tuf/metadata/{file}': {
        get: { [PUBLIC_OPERATION]: true, security: [{ basic: [] }], parameters: [{ name: 'file', in: 'path', required: true }], responses: { ...ok } },
      },
    },
  } as unknown as OpenAPIObject;
}

const codes = (doc: OpenAPIObject, path: string, method: 'get' | 'post') => Object.keys(doc.paths[path]?.[method]?.responses ?? {}).sort();

describe('withSharedErrors', () => {
  const doc = withSharedErrors(document());

  it('gives API-key routes bearer security and the failures they can answer', () => {
    expect(doc.paths['/api/v1/rollouts/{id}/abort']?.post?.security).toEqual([{ bearer: [] }]);
    expect(codes(doc, '/api/v1/rollouts/{id}/abort', 'post')).toEqual(['200', '400', '401', '403', '404', '409']);
    // No input, no path parameter, nothing changed: only the credential failures.
    expect(codes(doc, '/api/v1/devices', 'get')).toEqual(['200', '401', '403']);
  });

  it("keeps a public route's own security, or none, and drops the marker", () => {
    const enroll = doc.paths['/api/v1/enroll']?.post;
    expect(enroll?.security).toEqual([]);
    expect(enroll).not.toHaveProperty(PUBLIC_OPERATION);
    expect(codes(doc, '/api/v1/enroll', 'post')).toEqual(['201', '400']);
    expect(doc.paths['/api/v1/tuf/metadata/{file}']?.get?.security).toEqual([{ basic: [] }]);
    expect(codes(doc, '/api/v1/tuf/metadata/{file}', 'get')).toEqual(['200', '400', '401', '404']);
  });

  it('points every added failure at the one error schema', () => {
    const schema = doc.components?.schemas?.['ErrorResponse'] as { required: string[] };
    expect(schema.required).toEqual(['statusCode', 'code', 'message']);
    const notFound = doc.paths['/api/v1/rollouts/{id}/abort']?.post?.responses['404'] as { content: Record<string, { schema: unknown }> };
    expect(notFound.content['application/json']?.schema).toEqual({ $ref: '#/components/schemas/ErrorResponse' });
  });
});
