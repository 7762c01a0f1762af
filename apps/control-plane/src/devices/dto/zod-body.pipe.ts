import { BadRequestException, type PipeTransform } from '@nestjs/common';
import type { z } from 'zod';

/** Validates a body with a protocol zod schema (the device-facing HTTP contract lives in @fleetline/protocol). */
export class ZodBodyPipe<T> implements PipeTransform<unknown, T> {
  constructor(private readonly schema: z.ZodType<T>) {}

  transform(value: unknown): T {
    const result = this.schema.safeParse(value);
    if (result.success) return result.data;
    throw new BadRequestException(result.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`));
  }
}
