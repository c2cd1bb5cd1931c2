/**
 * Facts about the worker container that the infrastructure must agree with; kept as single
 * constants so that a change in the worker is a one-line change here.
 */
import { Duration } from 'aws-cdk-lib';

/**
 * The container health check: `luxflow health` exits 0 when the worker's `/readyz` answers 200
 * (every held shard checkpointed recently, or idle and caught up), in both runners. It is the
 * same command as the Dockerfile's HEALTHCHECK (docs/operations.md).
 */
export const HEALTH_CHECK_COMMAND: readonly string[] = ['CMD', 'luxflow', 'health'];

/** The container's command: the KCL MultiLangDaemon runner (same as the Dockerfile's CMD). */
export const WORKER_COMMAND: readonly string[] = ['luxflow', 'worker', '--runner', 'kcl', '--jars', '/app/.jars'];

/** The daemon's `shutdownGraceMillis` (streams/kcl/daemon.py): processors flush and checkpoint. */
export const DAEMON_SHUTDOWN_GRACE = Duration.seconds(45);

/** SIGTERM -> SIGKILL: must exceed the shutdown grace with a margin (Fargate maximum 120 s). */
export const STOP_TIMEOUT = Duration.seconds(60);

/** The dead-letter table's TTL attribute (epoch seconds). */
export const DEAD_LETTER_TTL_ATTRIBUTE = 'expires_at';

/** Timestream retention; equal to the Settings defaults of the Python app. */
export const TIMESTREAM_MEMORY_RETENTION_HOURS = 24;
export const TIMESTREAM_MAGNETIC_RETENTION_DAYS = 3650;

/** KCL 3 tables beside the lease table (named after the application), and the lease index. */
export const KCL_COORDINATOR_SUFFIX = '-CoordinatorState';
export const KCL_WORKER_METRICS_SUFFIX = '-WorkerMetricStats';
export const KCL_LEASE_OWNER_INDEX = 'LeaseOwnerToLeaseKeyIndex';

/** The telemetry topics and the IoT rule over them. Devices publish on
 * `luxflow/telemetry/<site_id>/<asset_id>`; the payload carries `site_id` too, and the
 * worker's per-site state needs every record of a site on one shard: partition by it. */
export const TELEMETRY_TOPIC_FILTER = 'luxflow/telemetry/#';
export const TELEMETRY_RULE_SQL = `SELECT * FROM '${TELEMETRY_TOPIC_FILTER}'`;
export const TELEMETRY_PARTITION_KEY = '${site_id}';
