/**
 * The query model's store, per `config.queryModel`: Timestream for LiveAnalytics (a database
 * encrypted with the region's key and its tables) or Timestream for InfluxDB (an instance in
 * the workers' subnets, its admin secret and the workers' write token). Returns what the
 * worker needs to use it: settings, secrets, task-role statements and network access.
 *
 * Created directly in the stack's scope, with the ids the stack always had, so that the
 * logical ids of the retained database, tables and instance do not change.
 */
import { RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as timestream from 'aws-cdk-lib/aws-timestream';
import { LuxflowConfig, NAMES } from './config';
import * as w from './worker';

/** The InfluxDB API port (HTTPS). */
export const INFLUXDB_PORT = 8086;

export interface QueryStore {
  /** The store's `LUXFLOW_*` settings for the worker container. */
  readonly environment: Record<string, string>;
  /** The store's secret settings for the worker container (InfluxDB: the write token). */
  readonly secrets: Record<string, ecs.Secret>;
  /** What the worker's task role needs on the store. */
  readonly taskPolicy: iam.PolicyStatement[];
  /** Lets the workers reach the store over the network (Timestream: nothing to open). */
  allowWorkers(service: ecs.FargateService): void;
}

export function addQueryStore(stack: Stack, config: LuxflowConfig, key: kms.IKey, vpc: ec2.IVpc): QueryStore {
  return config.queryModel === 'timestream' ? addTimestream(stack, key) : addInfluxDb(stack, vpc);
}

function addTimestream(stack: Stack, key: kms.IKey): QueryStore {
  const database = new timestream.CfnDatabase(stack, 'TimestreamDatabase', {
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
    const table = new timestream.CfnTable(stack, `Timestream-${name}`, {
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
  return {
    environment: {
      LUXFLOW_TIMESTREAM_DATABASE: NAMES.timestreamDatabase,
      LUXFLOW_TIMESTREAM_MEMORY_RETENTION_HOURS: String(w.TIMESTREAM_MEMORY_RETENTION_HOURS),
      LUXFLOW_TIMESTREAM_MAGNETIC_RETENTION_DAYS: String(w.TIMESTREAM_MAGNETIC_RETENTION_DAYS),
      LUXFLOW_TIMESTREAM_MAGNETIC_WRITES: 'true',
    },
    secrets: {},
    taskPolicy: [
      new iam.PolicyStatement({ actions: ['timestream:WriteRecords'], resources: tableArns }),
      // Endpoint discovery has no resource-level permission.
      new iam.PolicyStatement({ actions: ['timestream:DescribeEndpoints'], resources: ['*'] }),
    ],
    allowWorkers: () => {},
  };
}

function addInfluxDb(stack: Stack, vpc: ec2.IVpc): QueryStore {
  const securityGroup = new ec2.SecurityGroup(stack, 'InfluxDbSecurityGroup', {
    vpc,
    description: 'Timestream for InfluxDB: reachable from the luxflow workers only',
    allowAllOutbound: false,
  });
  const admin = new secretsmanager.Secret(stack, 'InfluxDbAdmin', {
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
  const token = new secretsmanager.Secret(stack, 'InfluxDbToken', {
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
  const instance = new timestream.CfnInfluxDBInstance(stack, 'InfluxDb', {
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
    vpcSecurityGroupIds: [securityGroup.securityGroupId],
  });
  instance.applyRemovalPolicy(RemovalPolicy.RETAIN);
  return {
    environment: {
      LUXFLOW_INFLUXDB_URL: `https://${instance.attrEndpoint}:${INFLUXDB_PORT}`,
      LUXFLOW_INFLUXDB_BUCKET: NAMES.influxBucket,
    },
    secrets: { LUXFLOW_INFLUXDB_TOKEN: ecs.Secret.fromSecretsManager(token) },
    taskPolicy: [],
    allowWorkers: (service) =>
      securityGroup.connections.allowFrom(service, ec2.Port.tcp(INFLUXDB_PORT), 'luxflow workers'),
  };
}
