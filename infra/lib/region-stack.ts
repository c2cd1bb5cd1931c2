/**
 * One region's whole pipeline (DESIGN.md, "Multi-region DR"): IoT rule -> Kinesis stream ->
 * ECS Fargate workers -> DynamoDB command model (a global table: created by the primary
 * region's stack, replicas in the others) + the query store, with the regional lease, state and
 * dead-letter tables (never replicated: shard ids repeat across regional streams), alarms and a
 * dashboard.
 */
import * as path from 'path';
import { Duration, IgnoreMode, RemovalPolicy, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as timestream from 'aws-cdk-lib/aws-timestream';
import { Construct } from 'constructs';
import { LuxflowConfig, NAMES } from './config';
import * as m from './metric-names';
import * as w from './worker';
import { REASONS, acknowledge, arnRef } from './nag';

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

export interface LuxflowRegionStackProps extends StackProps {
  readonly config: LuxflowConfig;
}

export class LuxflowRegionStack extends Stack {
  readonly stream: kinesis.Stream;
  readonly taskRole: iam.IRole;
  readonly service: ecs.FargateService;
  readonly alarms: Record<string, cloudwatch.Alarm> = {};

  constructor(scope: Construct, id: string, props: LuxflowRegionStackProps) {
    super(scope, id, props);
    const config = props.config;
    const region = this.region;
    const isPrimary = region === config.primaryRegion;

    // Customer managed key for the alarm topic (CloudWatch must be allowed to use it, which
    // the aws/sns key does not allow) and the Timestream database.
    const key = new kms.Key(this, 'Key', {
      description: `luxflow ${region}: alarm topic and query store`,
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // ---- Kinesis ---------------------------------------------------------------------------
    this.stream = new kinesis.Stream(this, 'Stream', {
      streamName: NAMES.stream,
      // The aws/kinesis key: encrypted at rest without per-producer KMS costs or key grants
      // for the IoT rule (cdk-nag AwsSolutions-KDS3 prefers it).
      encryption: kinesis.StreamEncryption.MANAGED,
      ...(config.shards === undefined
        ? { streamMode: kinesis.StreamMode.ON_DEMAND }
        : { streamMode: kinesis.StreamMode.PROVISIONED, shardCount: config.shards }),
      retentionPeriod: Duration.hours(24),
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // ---- IoT rule: telemetry topic -> stream, failures -> an SQS dead-letter queue ---------
    const ruleErrors = new sqs.Queue(this, 'RuleErrors', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(ruleErrors).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue IS the dead-letter destination of the IoT rule (its error action); ' +
        'a dead-letter queue of a dead-letter queue would only move the same messages.',
    });
    const ruleRole = new iam.Role(this, 'RuleRole', {
      assumedBy: new iam.ServicePrincipal('iot.amazonaws.com'),
      description: 'IoT telemetry rule: put records on the stream, send failures to the error queue',
    });
    ruleRole.addToPolicy(
      new iam.PolicyStatement({ actions: ['kinesis:PutRecord'], resources: [this.stream.streamArn] }),
    );
    ruleRole.addToPolicy(
      new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [ruleErrors.queueArn] }),
    );
    const rule = new iot.CfnTopicRule(this, 'TelemetryRule', {
      ruleName: `luxflow_telemetry_${config.appName.replace(/[^A-Za-z0-9_]/g, '_')}`,
      topicRulePayload: {
        description: 'luxflow telemetry -> Kinesis, partitioned by site_id',
        sql: w.TELEMETRY_RULE_SQL,
        awsIotSqlVersion: '2016-03-23',
        ruleDisabled: false,
        actions: [
          {
            kinesis: {
              streamName: this.stream.streamName,
              partitionKey: w.TELEMETRY_PARTITION_KEY,
              roleArn: ruleRole.roleArn,
            },
          },
        ],
        errorAction: { sqs: { queueUrl: ruleErrors.queueUrl, roleArn: ruleRole.roleArn, useBase64: false } },
      },
    });
    rule.node.addDependency(ruleRole);

    // ---- DynamoDB ---------------------------------------------------------------------------
    // The command model and the registry (same table): a global table owned by the primary
    // region's stack, one replica per configured region.
    let commandTable: dynamodb.ITableV2;
    if (isPrimary) {
      commandTable = new dynamodb.TableV2(this, 'CommandTable', {
        tableName: NAMES.commandTable,
        partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
        sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
        billing: dynamodb.Billing.onDemand(),
        globalSecondaryIndexes: [
          {
            indexName: 'gsi1',
            partitionKey: { name: 'gsi1pk', type: dynamodb.AttributeType.STRING },
            sortKey: { name: 'gsi1sk', type: dynamodb.AttributeType.STRING },
            projectionType: dynamodb.ProjectionType.ALL,
          },
        ],
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        deletionProtection: true,
        removalPolicy: RemovalPolicy.RETAIN,
        replicas: config.regions.filter((r) => r !== region).map((r) => ({ region: r })),
      });
    } else {
      // The replica in this region, created by the primary stack (deployed first).
      commandTable = dynamodb.TableV2.fromTableAttributes(this, 'CommandTable', {
        tableName: NAMES.commandTable,
        globalIndexes: ['gsi1'],
      });
    }

    const regional = (id: string, tableName: string, partitionKey: string, sortKey?: [string, dynamodb.AttributeType], extra: Partial<dynamodb.TableProps> = {}) =>
      new dynamodb.Table(this, id, {
        tableName,
        partitionKey: { name: partitionKey, type: dynamodb.AttributeType.STRING },
        sortKey: sortKey ? { name: sortKey[0], type: sortKey[1] } : undefined,
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        deletionProtection: true,
        removalPolicy: RemovalPolicy.RETAIN,
        ...extra,
      });
    // The KCL lease table (its name is the application name) and KCL 3's two tables. Created
    // here so that the worker needs no CreateTable/UpdateTable permission.
    const leaseTable = regional('LeaseTable', config.appName, 'leaseKey');
    leaseTable.addGlobalSecondaryIndex({
      indexName: w.KCL_LEASE_OWNER_INDEX,
      partitionKey: { name: 'leaseOwner', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'leaseKey', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.KEYS_ONLY,
    });
    const coordinatorTable = regional('KclCoordinatorState', config.appName + w.KCL_COORDINATOR_SUFFIX, 'key');
    const workerMetricsTable = regional('KclWorkerMetricStats', config.appName + w.KCL_WORKER_METRICS_SUFFIX, 'wid');
    const stateTable = regional('StateTable', NAMES.stateTable, 'shard_id', ['item', dynamodb.AttributeType.STRING]);
    const deadLetterTable = regional('DeadLetterTable', NAMES.deadLetterTable, 'pk', ['sk', dynamodb.AttributeType.NUMBER], {
      timeToLiveAttribute: w.DEAD_LETTER_TTL_ATTRIBUTE,
    });

    // ---- Network ----------------------------------------------------------------------------
    // Two AZs. Their names come from a context lookup: cdk.context.json (committed) holds
    // them for the dummy account, so `cdk synth` works offline.
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: config.natGateways,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'workers', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
      ],
      restrictDefaultSecurityGroup: false,
    });
    vpc.addGatewayEndpoint('DynamoDb', { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB });
    vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(
        new logs.LogGroup(this, 'FlowLogs', { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY }),
      ),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });

    // ---- Query store ------------------------------------------------------------------------
    // Plain names (not references): the values an operator sees and uses with `luxflow`.
    const environment: Record<string, string> = {
      LUXFLOW_STREAM: NAMES.stream,
      LUXFLOW_APP_NAME: config.appName,
      LUXFLOW_REGION: region,
      LUXFLOW_COMMAND_TABLE: NAMES.commandTable,
      LUXFLOW_DEAD_LETTER_TABLE: NAMES.deadLetterTable,
      LUXFLOW_STATE_TABLE: NAMES.stateTable,
      LUXFLOW_QUERY_MODEL: config.queryModel,
    };
    const secrets: Record<string, ecs.Secret> = {};
    const taskPolicy: iam.PolicyStatement[] = [];
    let influxSecurityGroup: ec2.SecurityGroup | undefined;
    if (config.queryModel === 'timestream') {
      const database = new timestream.CfnDatabase(this, 'TimestreamDatabase', {
        databaseName: NAMES.timestreamDatabase,
        kmsKeyId: key.keyArn,
      });
      Validations.of(database).acknowledge({
        id: 'CloudFormation-Validate::W3697',
        reason:
          'Timestream for LiveAnalytics is closed to new customers since 2025-06-20: this is ' +
          'for accounts that have it; others deploy with -c queryModel=influxdb.',
      });
      database.applyRemovalPolicy(RemovalPolicy.RETAIN);
      const tableArns: string[] = [];
      for (const name of NAMES.timestreamTables) {
        const table = new timestream.CfnTable(this, `Timestream-${name}`, {
          databaseName: NAMES.timestreamDatabase,
          tableName: name,
          retentionProperties: {
            MemoryStoreRetentionPeriodInHours: String(w.TIMESTREAM_MEMORY_RETENTION_HOURS),
            MagneticStoreRetentionPeriodInDays: String(w.TIMESTREAM_MAGNETIC_RETENTION_DAYS),
          },
          magneticStoreWriteProperties: { EnableMagneticStoreWrites: true },
        });
        table.addResourceDependency(database);
        Validations.of(table).acknowledge({
          id: 'CloudFormation-Validate::W3697',
          reason: 'See the database: LiveAnalytics for accounts that have it, else queryModel=influxdb.',
        });
        table.applyRemovalPolicy(RemovalPolicy.RETAIN);
        tableArns.push(table.attrArn);
      }
      Object.assign(environment, {
        LUXFLOW_TIMESTREAM_DATABASE: NAMES.timestreamDatabase,
        LUXFLOW_TIMESTREAM_MEMORY_RETENTION_HOURS: String(w.TIMESTREAM_MEMORY_RETENTION_HOURS),
        LUXFLOW_TIMESTREAM_MAGNETIC_RETENTION_DAYS: String(w.TIMESTREAM_MAGNETIC_RETENTION_DAYS),
        LUXFLOW_TIMESTREAM_MAGNETIC_WRITES: 'true',
      });
      taskPolicy.push(new iam.PolicyStatement({ actions: ['timestream:WriteRecords'], resources: tableArns }));
      // Endpoint discovery has no resource-level permission.
      taskPolicy.push(new iam.PolicyStatement({ actions: ['timestream:DescribeEndpoints'], resources: ['*'] }));
    } else {
      influxSecurityGroup = new ec2.SecurityGroup(this, 'InfluxDbSecurityGroup', {
        vpc,
        description: 'Timestream for InfluxDB: reachable from the luxflow workers only',
        allowAllOutbound: false,
      });
      const admin = new secretsmanager.Secret(this, 'InfluxDbAdmin', {
        description: 'Timestream for InfluxDB: initial admin user and password',
        generateSecretString: {
          secretStringTemplate: JSON.stringify({ username: 'luxflow-admin' }),
          generateStringKey: 'password',
          excludePunctuation: true,
          passwordLength: 32,
        },
      });
      // The worker's write token: InfluxDB creates tokens, not CloudFormation. An operator
      // creates a write token for the bucket after the instance is up and stores it here
      // (infra/README.md); until then the value is a random placeholder that InfluxDB refuses.
      const token = new secretsmanager.Secret(this, 'InfluxDbToken', {
        description: 'Timestream for InfluxDB: the luxflow workers\' write token (set after creation)',
        generateSecretString: { excludePunctuation: true, passwordLength: 32 },
      });
      for (const secret of [admin, token]) {
        Validations.of(secret).acknowledge({
          id: 'AwsSolutions-SMG4',
          reason:
            'InfluxDB credentials and tokens are rotated inside InfluxDB; a Secrets Manager ' +
            'rotation Lambda would need the InfluxDB API and is not part of this app yet.',
        });
      }
      const instance = new timestream.CfnInfluxDBInstance(this, 'InfluxDb', {
        name: 'luxflow',
        dbInstanceType: 'db.influx.medium',
        dbStorageType: 'InfluxIOIncludedT1',
        allocatedStorage: 20,
        deploymentType: 'SINGLE_AZ',
        organization: 'luxflow',
        bucket: NAMES.influxBucket,
        username: admin.secretValueFromJson('username').unsafeUnwrap(),
        password: admin.secretValueFromJson('password').unsafeUnwrap(),
        publiclyAccessible: false,
        vpcSubnetIds: vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }).subnetIds,
        vpcSecurityGroupIds: [influxSecurityGroup.securityGroupId],
      });
      instance.applyRemovalPolicy(RemovalPolicy.RETAIN);
      Object.assign(environment, {
        LUXFLOW_INFLUXDB_URL: `https://${instance.attrEndpoint}:8086`,
        LUXFLOW_INFLUXDB_BUCKET: NAMES.influxBucket,
      });
      secrets.LUXFLOW_INFLUXDB_TOKEN = ecs.Secret.fromSecretsManager(token);
    }

    // ---- ECS Fargate workers ----------------------------------------------------------------
    const cluster = new ecs.Cluster(this, 'Cluster', {
      vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });
    const taskDefinition = new ecs.FargateTaskDefinition(this, 'WorkerTask', {
      family: `luxflow-worker-${config.appName}`,
      cpu: 1024,
      memoryLimitMiB: 2048,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    this.taskRole = taskDefinition.taskRole;
    const logGroup = new logs.LogGroup(this, 'WorkerLogs', {
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
      secrets,
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
    this.stream.grantRead(this.taskRole);
    for (const table of [leaseTable, coordinatorTable, workerMetricsTable, stateTable]) {
      table.grantReadWriteData(this.taskRole);
    }
    commandTable.grantReadWriteData(this.taskRole);
    deadLetterTable.grantWriteData(this.taskRole);
    for (const statement of taskPolicy) taskDefinition.addToTaskRolePolicy(statement);
    // KCL metrics (namespace = application name) when its metricsLevel is not NONE; the
    // worker's own metrics go through Embedded Metric Format in the logs instead.
    taskDefinition.addToTaskRolePolicy(
      new iam.PolicyStatement({
        actions: ['cloudwatch:PutMetricData'],
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': [config.appName, m.METRIC_NAMESPACE] } },
      }),
    );

    acknowledge(this.taskRole, `AwsSolutions-IAM5[Resource::${arnRef(leaseTable)}/index/*]`, REASONS.tableIndexes);
    const commandIndexes = isPrimary
      ? `${arnRef(commandTable)}/index/*`
      : `arn:<AWS::Partition>:dynamodb:${region}:${config.account}:table/${NAMES.commandTable}/index/*`;
    acknowledge(this.taskRole, `AwsSolutions-IAM5[Resource::${commandIndexes}]`, REASONS.tableIndexes);
    acknowledge(this.taskRole, 'AwsSolutions-IAM5[Resource::*]', REASONS.taskRoleStar);
    acknowledge(taskDefinition.obtainExecutionRole(), 'AwsSolutions-IAM5[Resource::*]', REASONS.executionRoleStar);

    this.service = new ecs.FargateService(this, 'WorkerService', {
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
    const scaling = this.service.autoScaleTaskCount({
      minCapacity: config.desiredWorkers,
      maxCapacity: config.maxWorkers,
    });
    scaling.scaleOnCpuUtilization('Cpu', { targetUtilizationPercent: 70 });
    if (influxSecurityGroup) {
      influxSecurityGroup.connections.allowFrom(this.service, ec2.Port.tcp(8086), 'luxflow workers');
    }

    // ---- Alarms and dashboard ---------------------------------------------------------------
    const topic = new sns.Topic(this, 'Alarms', { masterKey: key, enforceSSL: true });
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
      }),
    );
    if (config.alarmEmail) topic.addSubscription(new subscriptions.EmailSubscription(config.alarmEmail));
    const metric = (spec: m.MetricSpec, period = Duration.minutes(1)) =>
      new cloudwatch.Metric({
        namespace: m.METRIC_NAMESPACE,
        metricName: spec.name,
        dimensionsMap: { [m.METRIC_APP_DIMENSION]: config.appName },
        statistic: spec.statistic,
        unit: cloudwatch.Unit[spec.unit === 'Count' ? 'COUNT' : 'MILLISECONDS'],
        period,
      });
    const alarm = (
      spec: m.MetricSpec,
      description: string,
      threshold: number,
      evaluationPeriods: number,
      treatMissingData: cloudwatch.TreatMissingData,
      period?: Duration,
    ) => {
      const a = new cloudwatch.Alarm(this, `${spec.name}Alarm`, {
        alarmName: `${config.appName}-${region}-${spec.name}`,
        alarmDescription: description,
        metric: metric(spec, period),
        threshold,
        evaluationPeriods,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData,
      });
      a.addAlarmAction(new cwActions.SnsAction(topic));
      a.addOkAction(new cwActions.SnsAction(topic));
      this.alarms[spec.name] = a;
      return a;
    };
    alarm(
      m.MILLIS_BEHIND_LATEST,
      'Consumer lag: a shard is more than 60 s behind the tip of the stream for 5 minutes.',
      60_000,
      5,
      cloudwatch.TreatMissingData.NOT_BREACHING,
    );
    alarm(
      m.DEAD_LETTERS,
      'Dead-letter rate: more than 100 records dead-lettered in 5 minutes (malformed or too late).',
      100,
      1,
      cloudwatch.TreatMissingData.NOT_BREACHING,
      Duration.minutes(5),
    );
    alarm(
      m.SINK_ERRORS,
      'Sink errors: a sink write failed after its retries (DynamoDB or the query store).',
      0,
      1,
      cloudwatch.TreatMissingData.NOT_BREACHING,
      Duration.minutes(5),
    );
    alarm(
      m.CHECKPOINT_AGE_MS,
      'Checkpoint age: a held shard has not checkpointed for more than 2 minutes (stuck shard), ' +
        'or no worker reports at all.',
      120_000,
      3,
      cloudwatch.TreatMissingData.BREACHING,
    );

    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `luxflow-${config.appName}-${region}`,
    });
    dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: Object.values(this.alarms), width: 24 }),
    );
    const graph = (specs: m.MetricSpec[]) =>
      new cloudwatch.GraphWidget({
        title: specs.map((s) => s.name).join(', '),
        left: specs.map((s) => metric(s)),
        width: 12,
      });
    dashboard.addWidgets(graph([m.MILLIS_BEHIND_LATEST]), graph([m.CHECKPOINT_AGE_MS]));
    dashboard.addWidgets(graph([m.RECORDS_PROCESSED]), graph([m.DEAD_LETTERS, m.LATE_RECORDS]));
    dashboard.addWidgets(graph([m.SINK_ERRORS, m.SINK_THROTTLES]), graph([m.SHARDS_HELD]));
  }
}
