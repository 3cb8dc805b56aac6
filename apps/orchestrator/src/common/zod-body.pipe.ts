import { type PipeTransform } from '@nestjs/common';
import type { z } from 'zod';
import { BadRequestError } from '@spotlift/domain';

/** Validates a request body with a zod schema; every problem is listed in the 400 answer. */
export class ZodBody<T extends z.ZodType> implements PipeTransform<unknown, z.infer<T>> {
  constructor(private readonly schema: T) {}

  transform(value: unknown): z.infer<T> {
    const parsed = this.schema.safeParse(value);
    if (parsed.success) return parsed.data;
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`);
    throw new BadRequestError(`invalid request body: ${problems.join('; ')}`, { problems });
  }
}
