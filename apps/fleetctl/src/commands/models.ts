import type { Command } from 'commander';
import type { RequestBody } from '../api-client.js';
import { cliContext } from '../context.js';
import { UsageError } from '../exit-codes.js';
import { multipartBody } from '../multipart.js';
import { formatTable, printJson } from '../output.js';
import { integerFlag, readJsonArgument } from '../rollout-spec.js';
import { collectPages, type Page } from './pages.js';

interface ModelSummary {
  name: string;
  description: string | null;
  createdAt: string;
  latestVersion: string | null;
  versionCount: number;
}

interface VersionView {
  model: string;
  version: string;
  createdAt: string;
  /** `awaiting-signature` with TUF_KEYS=offline until `fleetctl targets sign`. */
  status?: string;
  metadata: Record<string, unknown>;
  artifacts: { fileName?: string; targetPath?: string; sha256?: string; length?: number; size?: number; variant?: string }[];
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerModels(program: Command): void {
  const models = program.command('models').description('register models and upload model versions');

  models
    .command('list')
    .description('list models')
    .option('--limit <n>', 'page size (1-500)', '100')
    .option('--all', 'follow every page')
    .action(async (options: { limit: string; all?: boolean }, command: Command) => {
      const { client, out } = await cliContext(command);
      const limit = integerFlag(options.limit, '--limit', 1, 500);
      const items = await collectPages<ModelSummary>((after) => client.get<Page<ModelSummary>>('/api/v1/models', { limit, after }), options.all === true);
      if (out.json) return printJson(out, items);
      out.write(
        formatTable(
          ['name', 'latest', 'versions', 'description'],
          items.map((m) => [m.name, m.latestVersion, m.versionCount, m.description]),
        ),
      );
    });

  models
    .command('create')
    .description('register a model name')
    .argument('<name>', 'model name: 1-64 chars of [a-z0-9._-]')
    .option('--description <text>', 'free text')
    .action(async (name: string, options: { description?: string }, command: Command) => {
      const { client, out } = await cliContext(command);
      const body: RequestBody<'post', '/api/v1/models'> = { name, ...(options.description ? { description: options.description } : {}) };
      const model = await client.post<ModelSummary>('/api/v1/models', body);
      if (out.json) return printJson(out, model);
      out.write(`model ${model.name} created`);
    });

  models
    .command('versions')
    .description('list the versions of a model')
    .argument('<name>', 'model name')
    .option('--all', 'follow every page')
    .action(async (name: string, options: { all?: boolean }, command: Command) => {
      const { client, out } = await cliContext(command);
      const items = await collectPages<VersionView>(
        (after) => client.get<Page<VersionView>>(`/api/v1/models/${encodeURIComponent(name)}/versions`, { limit: 500, after }),
        options.all === true,
      );
      if (out.json) return printJson(out, items);
      out.write(
        formatTable(
          ['version', 'created', 'status', 'artifacts', 'builds'],
          items.map((v) => [v.version, v.createdAt, v.status, v.artifacts.length, [...new Set(v.artifacts.map((a) => a.variant ?? 'default'))].join(',')]),
        ),
      );
    });

  models
    .command('upload')
    .description('upload a model version: the files are streamed, never read into memory')
    .argument('<name>', 'model name (must exist: "fleetctl models create NAME")')
    .requiredOption('--version <semver>', 'version to create, e.g. 2.1.0')
    .requiredOption('--file <path>', 'artifact file; repeat for several artifacts', collect, [])
    .option(
      '--metadata <json|@file>',
      'version metadata as JSON, or @path to a JSON file (runtime, framework, compatibility, referenceDistribution, notes, variants)',
    )
    .addHelpText('after', '\nExample:\n  fleetctl models upload detector --version 2.1.0 --file detector.onnx --metadata \'{"runtime":"onnx"}\'')
    .action(async (name: string, options: { version: string; file: string[]; metadata?: string }, command: Command) => {
      const { client, out } = await cliContext(command);
      if (options.file.length === 0) throw new UsageError('--file is required');
      const fields = [{ name: 'version', value: options.version }];
      if (options.metadata !== undefined) {
        const metadata = await readJsonArgument(options.metadata, '--metadata');
        fields.push({ name: 'metadata', value: JSON.stringify(metadata) });
      }
      let body;
      try {
        body = await multipartBody(
          fields,
          options.file.map((path) => ({ name: 'file', path })),
        );
      } catch (err) {
        throw new UsageError(`--file: ${(err as Error).message}`);
      }
      const version = await client.request<VersionView>('POST', `/api/v1/models/${encodeURIComponent(name)}/versions`, {
        stream: { body: body.stream, contentType: body.contentType, contentLength: body.contentLength },
      });
      if (out.json) return printJson(out, version);
      const builds = [...new Set(version.artifacts.map((a) => a.variant ?? 'default'))];
      out.write(
        `uploaded ${version.model} ${version.version} (${version.artifacts.length} artifact${version.artifacts.length === 1 ? '' : 's'}` +
          `${builds.length > 1 ? `; builds in order: ${builds.join(', ')}` : ''})` +
          // TUF_KEYS=offline: say what to do next rather than let a rollout fail with 409.
          (version.status === 'awaiting-signature' ? '\nawaiting a targets signature: fleetctl targets sign --key-dir <dir>' : ''),
      );
    });
}
