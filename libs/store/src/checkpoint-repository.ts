import type { CheckpointRecord } from '@spotlift/domain';
import { Repository } from './repositories.port.js';

/**
 * Checkpoints (taken, stored, restored). The adapters are the generic ones: {@link RedisRecords} with kind
 * `checkpoint` (`<prefix>:checkpoint:<id>`, index `<prefix>:checkpoints`) and {@link InMemoryRecords}.
 */
export abstract class CheckpointRepository extends Repository<CheckpointRecord> {}
