/**
 * The query model's store, per `config.queryModel`: Timestream for InfluxDB (the default: an
 * instance in the private subnets, its admin secret, the workers' write token and the read
 * API's read token) or, for accounts that already have it, Timestream for LiveAnalytics (a
 * database encrypted with the region's key and its tables; closed to new customers since
 * 2025-06-20). Returns what the worker and the API need to use it: settings, secrets,
 * task-role statements and network access.
 *
 * The instance has a generated name and RETAIN_ON_UPDATE_OR_DELETE: a rolled-back first
 * deploy deletes it, so the next attempt does not stop on "already exists".
 */
import { Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as timestream from 'aws-cdk-lib/aws-timestream';
import { LuxflowConfig, NAMES } from './config';
import { ignoreCfnLint } from './nag';
import { STATEFUL } from './tables';
import * as w from './worker';

/** The InfluxDB API port (HTTPS). */
export const INFLUXDB_PORT = 8086;

export interface QueryStore {
  /** The store's `LUXFLOW_*` settings for the worker container. */
  readonly environment: Record<string, string>;
  /** The store's secret settings for the worker container (InfluxDB: the write token). */
  readonly secrets: Record<string, ecs.Secret>;
  /** The store's secret settings for the read API (InfluxDB: the read token; else none). */
  readonly apiSecrets: Record<string, ecs.Secret>;
  /** What the worker's task role needs on the store. */
  readonly taskPolicy: iam.PolicyStatement[];
  /** Lets a service reach the store over the network (Timestream: nothing to open). */
  allowFrom(service: ecs.FargateService, who: string): void;
}

export function addQueryStore(
  stack: Stack,
  config: LuxflowConfig,
  key: kms.IKey,
  vpc: ec2.IVpc,
  subnets: ec2.SubnetSelection,
): QueryStore {
  return config.queryModel === 'timestream' ? addTimestream(stack, key, config.names.timestreamDatabase) : addInfluxDb(stack, key, vpc, subnets);
}

/**
 * The telemetry series' tiers (LUXFLOW_SERIES_HOT_DAYS / _COLD_DAYS, the Python defaults): the
 * fine series is hot for a week, the hourly downsample is kept 400 days. In LiveAnalytics both
 * are points of one table whose memory store (fast queries, writable) holds the hot week and
 * whose magnetic store (cheap, for history) holds the rest of the 400 days.
 */
export const SERIES_TABLE = 'series';
export const SERIES_HOT_DAYS = 7;
export const SERIES_COLD_DAYS = 400;

const LIVE_ANALYTICS =
  'Timestream for LiveAnalytics is closed to new customers since 2025-06-20: this resource exists ' +
  'only with -c queryModel=timestream, for accounts that have it; the default is InfluxDB.';

function addTimestream(stack: Stack, key: kms.IKey, databaseName: string): QueryStore {
  const database = new timestream.CfnDatabase(stack, 'TimestreamDatabase', {
    databaseName,
    kmsKeyId: key.keyArn,
  });
  Validations.of(database).acknowledge({ id: 'CloudFormation-Validate::W3697', reason: LIVE_ANALYTICS });
  ignoreCfnLint(database, 'W3697', LIVE_ANALYTICS);
  database.applyRemovalPolicy(STATEFUL);
  const tableArns: string[] = [];
  const retentions: [string, number, number][] = [
    ...NAMES.timestreamTables.map((name): [string, number, number] => [
      name,
      w.TIMESTREAM_MEMORY_RETENTION_HOURS,
      w.TIMESTREAM_MAGNETIC_RETENTION_DAYS,
    ]),
    [SERIES_TABLE, SERIES_HOT_DAYS * 24, SERIES_COLD_DAYS],
  ];
  for (const [name, memoryHours, magneticDays] of retentions) {
    const table = new timestream.CfnTable(stack, `Timestream-${name}`, {
      databaseName,
      tableName: name,
      retentionProperties: {
        MemoryStoreRetentionPeriodInHours: String(memoryHours),
        MagneticStoreRetentionPeriodInDays: String(magneticDays),
      },
      magneticStoreWriteProperties: { EnableMagneticStoreWrites: true },
    });
    table.addResourceDependency(database);
    Validations.of(table).acknowledge({ id: 'CloudFormation-Validate::W3697', reason: LIVE_ANALYTICS });
    ignoreCfnLint(table, 'W3697', LIVE_ANALYTICS);
    table.applyRemovalPolicy(STATEFUL);
    tableArns.push(table.attrArn);
  }
  return {
    environment: {
      LUXFLOW_TIMESTREAM_DATABASE: databaseName,
      LUXFLOW_TIMESTREAM_MEMORY_RETENTION_HOURS: String(w.TIMESTREAM_MEMORY_RETENTION_HOURS),
      LUXFLOW_TIMESTREAM_MAGNETIC_RETENTION_DAYS: String(w.TIMESTREAM_MAGNETIC_RETENTION_DAYS),
      LUXFLOW_TIMESTREAM_MAGNETIC_WRITES: 'true',
      LUXFLOW_SERIES_HOT_DAYS: String(SERIES_HOT_DAYS),
      LUXFLOW_SERIES_COLD_DAYS: String(SERIES_COLD_DAYS),
    },
    secrets: {},
    apiSecrets: {},
    taskPolicy: [
      new iam.PolicyStatement({ actions: ['timestream:WriteRecords'], resources: tableArns }),
      // Endpoint discovery has no resource-level permission.
      new iam.PolicyStatement({ actions: ['timestream:DescribeEndpoints'], resources: ['*'] }),
    ],
    allowFrom: () => {},
  };
}

function addInfluxDb(stack: Stack, key: kms.IKey, vpc: ec2.IVpc, subnets: ec2.SubnetSelection): QueryStore {
  const securityGroup = new ec2.SecurityGroup(stack, 'InfluxDbSecurityGroup', {
    vpc,
    description: 'Timestream for InfluxDB: reachable from the luxflow workers and read API only',
    allowAllOutbound: false,
  });
  const admin = new secretsmanager.Secret(stack, 'InfluxDbAdmin', {
    description: 'Timestream for InfluxDB: initial admin user and password',
    encryptionKey: key,
    generateSecretString: {
      secretStringTemplate: JSON.stringify({ username: 'luxflow-admin' }),
      generateStringKey: 'password',
      excludePunctuation: true,
      passwordLength: 32,
    },
  });
  // InfluxDB creates tokens, not CloudFormation. After the instance is up an operator creates a
  // write token (workers) and a read token (API) for the bucket and stores them here
  // (infra/README.md, first deploy); until then the values are random placeholders InfluxDB
  // refuses.
  const token = new secretsmanager.Secret(stack, 'InfluxDbToken', {
    description: 'Timestream for InfluxDB: the luxflow workers\' write token (set after creation)',
    encryptionKey: key,
    generateSecretString: { excludePunctuation: true, passwordLength: 32 },
  });
  const readToken = new secretsmanager.Secret(stack, 'InfluxDbReadToken', {
    description: 'Timestream for InfluxDB: the read API\'s read-only token (set after creation)',
    encryptionKey: key,
    generateSecretString: { excludePunctuation: true, passwordLength: 32 },
  });
  for (const secret of [admin, token, readToken]) {
    Validations.of(secret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'InfluxDB credentials and tokens are rotated inside InfluxDB; a Secrets Manager ' +
        'rotation Lambda would need the InfluxDB API and is not part of this app yet.',
    });
  }
  const instance = new timestream.CfnInfluxDBInstance(stack, 'InfluxDb', {
    dbInstanceType: 'db.influx.medium',
    dbStorageType: 'InfluxIOIncludedT1',
    allocatedStorage: 20,
    deploymentType: 'SINGLE_AZ',
    organization: NAMES.influxOrganization,
    bucket: NAMES.influxBucket,
    username: admin.secretValueFromJson('username').unsafeUnwrap(),
    password: admin.secretValueFromJson('password').unsafeUnwrap(),
    publiclyAccessible: false,
    vpcSubnetIds: vpc.selectSubnets(subnets).subnetIds,
    vpcSecurityGroupIds: [securityGroup.securityGroupId],
  });
  instance.applyRemovalPolicy(STATEFUL);
  return {
    environment: {
      LUXFLOW_INFLUXDB_URL: `https://${instance.attrEndpoint}:${INFLUXDB_PORT}`,
      LUXFLOW_INFLUXDB_BUCKET: NAMES.influxBucket,
    },
    secrets: { LUXFLOW_INFLUXDB_TOKEN: ecs.Secret.fromSecretsManager(token) },
    // The API gets only the reader token, under the reader's name: a writer token in its
    // environment would let a compromised API task rewrite the query model.
    apiSecrets: { LUXFLOW_INFLUXDB_READ_TOKEN: ecs.Secret.fromSecretsManager(readToken) },
    taskPolicy: [],
    allowFrom: (service, who) => securityGroup.connections.allowFrom(service, ec2.Port.tcp(INFLUXDB_PORT), who),
  };
}
