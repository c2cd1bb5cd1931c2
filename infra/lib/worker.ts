/**
 * Facts about the worker container that the infrastructure must agree with; kept as single
 * constants so that a change in the worker is a one-line change here.
 */
import { Duration } from 'aws-cdk-lib';

/** The worker's health server port (`LUXFLOW_HEALTH_PORT`), bound to 127.0.0.1 in the task. */
export const HEALTH_PORT = 8080;

/**
 * The container health check is liveness: `/healthz` answers while the worker process serves
 * requests. Readiness (`/readyz`: every held shard checkpointed recently) is NOT the health
 * check: a sink outage stops checkpoints on every task at once, and replacing the tasks then
 * would only add lease moves and JVM starts to the backlog. Slow checkpoints page a person
 * through the CheckpointAgeMs alarm instead. Same command as the Dockerfile's HEALTHCHECK
 * (a Python unit test keeps them equal); the port is HEALTH_PORT.
 */
export const HEALTH_CHECK_COMMAND: readonly string[] = ['CMD', 'luxflow', 'health', '--url', 'http://127.0.0.1:8080/healthz'];

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

/** The read API (`luxflow serve`) in its own service, behind the load balancer's HTTPS. */
export const API_PORT = 8000;
export const API_COMMAND: readonly string[] = ['luxflow', 'serve', '--host', '0.0.0.0', '--port', String(API_PORT)];
/** The API's own `/healthz` (api/app.py): liveness of the server, no store call. */
export const API_HEALTH_PATH = '/healthz';
export const API_HEALTH_CHECK_COMMAND: readonly string[] = [
  'CMD',
  'luxflow',
  'health',
  '--url',
  `http://127.0.0.1:${API_PORT}${API_HEALTH_PATH}`,
];
