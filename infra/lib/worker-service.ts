/**
 * The ECS Fargate worker service: cluster, task definition (the worker image built from the
 * repository, its settings and health check), the task role's grants on the stream, the tables
 * and the query store, and the service with CPU autoscaling bounded by the shard count.
 *
 * Created directly in the stack's scope, with the ids the stack always had, so that the
 * logical ids (and the cdk-nag findings acknowledged on them) do not change.
 */
import * as path from 'path';
import { Duration, IgnoreMode, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as logs from 'aws-cdk-lib/aws-logs';
import { LuxflowConfig, NAMES } from './config';
import * as m from './metric-names';
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

/** What the workers use: the rest of the region stack. */
export interface WorkerServiceProps {
  readonly config: LuxflowConfig;
  readonly vpc: ec2.IVpc;
  readonly stream: kinesis.IStream;
  readonly tables: RegionTables;
  readonly queryStore: QueryStore;
}

export interface WorkerService {
  readonly service: ecs.FargateService;
  readonly taskRole: iam.IRole;
}

export function addWorkerService(stack: Stack, props: WorkerServiceProps): WorkerService {
  const { config, vpc, stream, tables, queryStore } = props;
  const region = stack.region;

  // Plain names (not references): the values an operator sees and uses with `luxflow`.
  const environment: Record<string, string> = {
    LUXFLOW_STREAM: NAMES.stream,
    LUXFLOW_APP_NAME: config.appName,
    LUXFLOW_REGION: region,
    LUXFLOW_COMMAND_TABLE: NAMES.commandTable,
    LUXFLOW_DEAD_LETTER_TABLE: NAMES.deadLetterTable,
    LUXFLOW_STATE_TABLE: NAMES.stateTable,
    LUXFLOW_QUERY_MODEL: config.queryModel,
    ...queryStore.environment,
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
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const container = taskDefinition.addContainer('worker', {
    image: ecs.ContainerImage.fromAsset(REPO_ROOT, {
      file: 'Dockerfile',
      platform: Platform.LINUX_AMD64,
      exclude: IMAGE_EXCLUDES,
      ignoreMode: IgnoreMode.DOCKER,
    }),
    command: [...w.WORKER_COMMAND],
    environment,
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
      'The environment holds names only (stream, tables, region, query model); the one ' +
      'secret, the InfluxDB token, comes from Secrets Manager through `secrets`.',
  });

  // Task role: CDK grants and narrow statements only; no wildcard action on any table.
  stream.grantRead(taskRole);
  for (const table of [tables.lease, tables.kclCoordinatorState, tables.kclWorkerMetricStats, tables.state]) {
    table.grantReadWriteData(taskRole);
  }
  tables.command.grantReadWriteData(taskRole);
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
    : `arn:<AWS::Partition>:dynamodb:${region}:${config.account}:table/${NAMES.commandTable}/index/*`;
  acknowledge(taskRole, `AwsSolutions-IAM5[Resource::${commandIndexes}]`, REASONS.tableIndexes);
  acknowledge(taskRole, 'AwsSolutions-IAM5[Resource::*]', REASONS.taskRoleStar);
  acknowledge(taskDefinition.obtainExecutionRole(), 'AwsSolutions-IAM5[Resource::*]', REASONS.executionRoleStar);

  const service = new ecs.FargateService(stack, 'WorkerService', {
    cluster,
    taskDefinition,
    serviceName: `luxflow-worker-${config.appName}`,
    desiredCount: config.desiredWorkers,
    minHealthyPercent: 100,
    maxHealthyPercent: 200,
    circuitBreaker: { rollback: true },
    vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
    assignPublicIp: false,
  });
  // More workers than shards would hold no lease: the shard count bounds the scaling.
  const scaling = service.autoScaleTaskCount({
    minCapacity: config.desiredWorkers,
    maxCapacity: config.maxWorkers,
  });
  scaling.scaleOnCpuUtilization('Cpu', { targetUtilizationPercent: 70 });
  queryStore.allowWorkers(service);
  return { service, taskRole };
}
