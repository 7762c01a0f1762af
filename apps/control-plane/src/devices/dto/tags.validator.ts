import { ValidateBy, type ValidationOptions } from 'class-validator';
import { tagsSchema } from '@fleetline/protocol';

/** Device tags, validated by the protocol's tagsSchema (the one the agent uses too). */
export function IsTags(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isTags',
      validator: {
        validate: (value: unknown) => tagsSchema.safeParse(value).success,
        defaultMessage: (args) => {
          const result = tagsSchema.safeParse(args?.value);
          const issue = result.success ? undefined : result.error.issues[0];
          return `${args?.property ?? 'tags'} must be an object of string values (keys: 1-64 chars of [A-Za-z0-9._-], values up to 256 chars, at most 64 tags)${issue ? `: ${issue.path.join('.') || '(root)'} ${issue.message}` : ''}`;
        },
      },
    },
    options,
  );
}
