/**
 * The ECS Fargate worker service: cluster, task definition (the worker image built from the
 * repository, its settings and liveness check), the task role's grants on the stream, the
 * tables and the query store, and the service: scaled on consumer lag, bounded by the shards.
 *
 * Deployments stop the old tasks before starting the new ones (minHealthyPercent 0,
 * maxHealthyPercent 100): on SIGTERM every old worker checkpoints within the daemon's grace and
 * releases its leases, and the new workers take them, so each lease moves exactly once. With
 * 100/200 the new tasks start beside the old ones, the KCL's balancer hands them part of the
 * leases, and the stop of the old tasks moves the rest (and rebalances again): leases move up
 * to twice and every move replays the records since the last checkpoint. The price of 0/100 is
 * a processing pause of one task start (about 1-2 minutes of lag, which the stream buffers and
 * the lag alarm's 5-minute window tolerates); the circuit breaker rolls back an image that
 * fails its liveness check, and the pipeline's image smoke test runs before any deploy.
 */
import * as path from 'path';
import { Duration, IgnoreMode, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { LuxflowConfig } from './config';
import * as m from './metric-names';
import { luxflowMetric } from './monitoring';
import { REASONS, acknowledge, arnRef } from './nag';
import { QueryStore } from './query-store';
import { RegionTables } from './tables';
import * as w from './worker';

/** The repository root: the Docker build context of the worker image. */
export const REPO_ROOT = path.join(__dirname, '..', '..');

/**
 * What the image build never needs: kept out of the asset hash too (a denylist, not an
 * allowlist, so that the repository's restructuring does not silently drop a package).
 */
export const IMAGE_EXCLUDES = [
  '.git',
  '.ci',
  '.venv',
  '.jars',
  '**/__pycache__',
  '.mypy_cache',
  '.ruff_cache',
  '.pytest_cache',
  'demo-out',
  'simulation',
  'infra',
  '**/node_modules',
  '**/cdk.out',
  'tests',
  'deploy/emulators',
];

/** The image built from the repository's Dockerfile: the worker and the read API run it. */
export function luxflowImage(): ecs.ContainerImage {
  return ecs.ContainerImage.fromAsset(REPO_ROOT, {
    file: 'Dockerfile',
    platform: Platform.LINUX_AMD64,
    exclude: IMAGE_EXCLUDES,
    ignoreMode: IgnoreMode.DOCKER,
  });
}

/** What the workers use: the rest of the region stack. */
export interface WorkerServiceProps {
  readonly config: LuxflowConfig;
  readonly key: kms.IKey;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly stream: kinesis.IStream;
  readonly tables: RegionTables;
  readonly queryStore: QueryStore;
}

export interface WorkerService {
  readonly cluster: ecs.Cluster;
  readonly service: ecs.FargateService;
  readonly taskRole: iam.IRole;
  /** The worker settings the read API shares (table names, query model). */
  readonly environment: Record<string, string>;
}

/** Scale out while some shard is this far behind and some worker holds more than one shard. */
export const LAG_SCALE_OUT_MS = 60_000;
/** Scale in while every shard is this close to the tip. */
export const LAG_SCALE_IN_MS = 5_000;

export function addWorkerService(stack: Stack, props: WorkerServiceProps): WorkerService {
  const { config, key, vpc, subnets, stream, tables, queryStore } = props;
  const region = stack.region;

  const environment: Record<string, string> = {
    LUXFLOW_STREAM: stream.streamName,
    LUXFLOW_APP_NAME: config.appName,
    LUXFLOW_REGION: region,
    LUXFLOW_COMMAND_TABLE: config.names.commandTable,
    LUXFLOW_DEAD_LETTER_TABLE: tables.deadLetter.tableName,
    LUXFLOW_STATE_TABLE: tables.state.tableName,
    LUXFLOW_QUERY_MODEL: config.queryModel,
    ...queryStore.environment,
    ...(tables.fence ? { LUXFLOW_FENCE_TABLE: config.names.fenceTable } : {}),
  };
  // The health server answers the in-task health check only: nothing outside the task needs it.
  const workerEnvironment = {
    ...environment,
    LUXFLOW_HEALTH_PORT: String(w.HEALTH_PORT),
    LUXFLOW_HEALTH_HOST: '127.0.0.1',
  };

  const cluster = new ecs.Cluster(stack, 'Cluster', {
    vpc,
    containerInsightsV2: ecs.ContainerInsights.ENABLED,
  });
  const taskDefinition = new ecs.FargateTaskDefinition(stack, 'WorkerTask', {
    family: `luxflow-worker-${config.appName}`,
    cpu: 1024,
    memoryLimitMiB: 2048,
    runtimePlatform: {
      cpuArchitecture: ecs.CpuArchitecture.X86_64,
      operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
    },
  });
  const taskRole = taskDefinition.taskRole;
  const logGroup = new logs.LogGroup(stack, 'WorkerLogs', {
    retention: logs.RetentionDays.ONE_MONTH,
    encryptionKey: key,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const container = taskDefinition.addContainer('worker', {
    image: luxflowImage(),
    command: [...w.WORKER_COMMAND],
    environment: workerEnvironment,
    secrets: queryStore.secrets,
    essential: true,
    stopTimeout: w.STOP_TIMEOUT,
    healthCheck: {
      command: [...w.HEALTH_CHECK_COMMAND],
      interval: Duration.seconds(30),
      timeout: Duration.seconds(5),
      retries: 3,
      startPeriod: Duration.seconds(90),
    },
    logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'worker', logGroup }),
  });
  container.addUlimits({ name: ecs.UlimitName.NOFILE, softLimit: 65536, hardLimit: 65536 });
  Validations.of(taskDefinition).acknowledge({
    id: 'AwsSolutions-ECS2',
    reason:
      'The environment holds names only (stream, tables, region, query model, health port); ' +
      'the one secret, the InfluxDB token, comes from Secrets Manager through `secrets`.',
  });

  // Task role: CDK grants and narrow statements only; no wildcard action on any table.
  stream.grantRead(taskRole);
  for (const table of [tables.lease, tables.kclCoordinatorState, tables.kclWorkerMetricStats, tables.state]) {
    table.grantReadWriteData(taskRole);
  }
  tables.command.grantReadWriteData(taskRole);
  tables.fence?.grantReadWriteData(taskRole);
  tables.deadLetter.grantWriteData(taskRole);
  for (const statement of queryStore.taskPolicy) taskDefinition.addToTaskRolePolicy(statement);
  // KCL metrics (namespace = application name) when its metricsLevel is not NONE; the
  // worker's own metrics go through Embedded Metric Format in the logs instead.
  taskDefinition.addToTaskRolePolicy(
    new iam.PolicyStatement({
      actions: ['cloudwatch:PutMetricData'],
      resources: ['*'],
      conditions: { StringEquals: { 'cloudwatch:namespace': [config.appName, m.METRIC_NAMESPACE] } },
    }),
  );

  acknowledge(taskRole, `AwsSolutions-IAM5[Resource::${arnRef(tables.lease)}/index/*]`, REASONS.tableIndexes);
  const commandIndexes = tables.ownsGlobalTable
    ? `${arnRef(tables.command)}/index/*`
    : `arn:<AWS::Partition>:dynamodb:${region}:${config.account}:table/${config.names.commandTable}/index/*`;
  acknowledge(taskRole, `AwsSolutions-IAM5[Resource::${commandIndexes}]`, REASONS.tableIndexes);
  acknowledge(taskRole, 'AwsSolutions-IAM5[Resource::*]', REASONS.taskRoleStar);
  for (const action of ['kms:ReEncrypt*', 'kms:GenerateDataKey*']) {
    acknowledge(taskRole, `AwsSolutions-IAM5[Action::${action}]`, REASONS.keyGrant);
  }
  acknowledge(taskDefinition.obtainExecutionRole(), 'AwsSolutions-IAM5[Resource::*]', REASONS.executionRoleStar);

  const service = new ecs.FargateService(stack, 'WorkerService', {
    cluster,
    taskDefinition,
    serviceName: `luxflow-worker-${config.appName}`,
    desiredCount: config.desiredWorkers,
    minHealthyPercent: 0,
    maxHealthyPercent: 100,
    circuitBreaker: { rollback: true },
    vpcSubnets: subnets,
    assignPublicIp: false,
  });
  addLagScaling(service, config);
  queryStore.allowFrom(service, 'luxflow workers');
  return { cluster, service, taskRole, environment };
}

/**
 * Scaling on consumer lag, bounded by the shard count. A worker beyond the shard count holds no
 * lease, so the signal to add one is "lag AND some worker holds more than one shard"
 * (`ShardsHeld`, the workers' own maximum): that bound follows an on-demand stream's shard count
 * as it changes, with no shard count configured. maxCapacity caps it as well: the provisioned
 * shard count, or `onDemandShards` (a cost ceiling) on demand.
 */
function addLagScaling(service: ecs.FargateService, config: LuxflowConfig): void {
  const scaling = service.autoScaleTaskCount({
    minCapacity: config.desiredWorkers,
    maxCapacity: config.maxWorkers,
  });
  const signal = new cloudwatch.MathExpression({
    expression:
      `IF(lag > ${LAG_SCALE_OUT_MS} AND held > 1, 1, ` + `IF(lag < ${LAG_SCALE_IN_MS}, -1, 0))`,
    usingMetrics: {
      lag: luxflowMetric(config, m.MILLIS_BEHIND_LATEST),
      held: luxflowMetric(config, m.SHARDS_HELD),
    },
    period: Duration.minutes(1),
    label: 'worker scaling signal: +1 add, -1 remove, 0 hold',
  });
  scaling.scaleOnMetric('Lag', {
    metric: signal,
    scalingSteps: [
      { upper: -0.5, change: -1 },
      { lower: 0.5, change: +1 },
    ],
    adjustmentType: appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
    evaluationPeriods: 5,
    cooldown: Duration.minutes(5),
  });
}
