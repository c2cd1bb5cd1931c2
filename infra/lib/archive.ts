/**
 * The raw-record archive: every record of the region's stream, as the rule put it on the stream
 * (payload + topic ids + client id), in S3 beyond the stream's retention, and replicated out of
 * the region so that a survivor can replay a lost region's tail.
 *
 *   Kinesis stream -> Firehose (the archive-format Lambda: one JSON line per record, GZIP)
 *     -> archive bucket  raw/region=<R>/<yyyy>/<MM>/<dd>/<HH>/<stream>-<version>-<time>-<uuid>.gz
 *     -> S3 replication (RTC: 99.99% within 15 minutes) -> the replica bucket in the peer region
 *
 * RPO of the raw records when a region is lost: the Firehose buffer (at most 5 minutes) + S3
 * replication (15 minutes with Replication Time Control): at most about 20 minutes of raw
 * records, usually seconds past the buffer. The device buffers cover that tail.
 *
 * The replica buckets live in their own small stacks (`LuxflowArchive-<region>`), deployed
 * before every region stack: S3 refuses a replication rule whose destination does not exist,
 * and the region stacks replicate to each other. Their names are fixed (a source stack in
 * another region names its destination): `<appName>-archive-<account>-<region>`.
 *
 * Each line keeps the record's original bytes with what a replay needs to read it in order
 * (arrival time, shard, sequence number, partition key: infra/lambda/archive-format/index.py,
 * read by `luxflow replay --archive`). The objects are not split by site: a shard's event clock
 * is shared by every site on it, so a replay needs the shard's records in their order, across
 * sites, which one object per buffer keeps.
 *
 * Storage classes: STANDARD for 30 days (replays of the last month), STANDARD_IA to 90 days,
 * GLACIER_IR (millisecond reads, for replays months back) to 365 days, then DEEP_ARCHIVE (hours
 * to restore). Encryption: SSE-S3 (see archiveBucket).
 */
import { CfnOutput, Duration, RemovalPolicy, Size, Stack, StackProps } from 'aws-cdk-lib';
import * as firehose from 'aws-cdk-lib/aws-kinesisfirehose';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { LuxflowConfig } from './config';
import { ConfigError } from './errors';
import { deployOrder } from './regions';
import * as path from 'path';
import { acknowledge, arnRef, ignoreCfnLint, skipCheckov } from './nag';
import { STATEFUL } from './tables';

/** The archive-format Lambda's source (Python, standard library only). */
export const ARCHIVE_FORMAT_CODE = path.join(__dirname, '..', 'lambda', 'archive-format');

/** The Firehose buffer: the first part of the archive's RPO. */
export const ARCHIVE_BUFFER = Duration.minutes(5);
/** S3 Replication Time Control: the second part. */
export const REPLICATION_TIME = s3.ReplicationTimeValue.FIFTEEN_MINUTES;

/** The replica bucket of `region`: it receives the archives of the other regions. */
export function replicaBucketName(config: LuxflowConfig, region: string): string {
  const name = `${config.appName}-archive-${config.account}-${region}`.toLowerCase();
  if (name.length > 63) throw new ConfigError(`archive bucket name ${name} is over 63 characters: shorten appName`);
  return name;
}

/**
 * Where the region's archive replicates to: the next region in deployment order (the primary
 * first; a ring). The primary's next is the region its devices fail over to (the SECONDARY
 * record), so the survivor of a primary loss holds the primary's tail to replay; the list's
 * order would send it elsewhere when `primaryRegion` is not the first of three or more.
 */
export function peerRegion(config: LuxflowConfig, region: string): string | undefined {
  const order = deployOrder(config);
  if (order.length < 2) return undefined;
  return order[(order.indexOf(region) + 1) % order.length];
}

const LIFECYCLE: s3.LifecycleRule[] = [
  {
    id: 'cheaper-with-age',
    transitions: [
      { storageClass: s3.StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(30) },
      { storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, transitionAfter: Duration.days(90) },
      { storageClass: s3.StorageClass.DEEP_ARCHIVE, transitionAfter: Duration.days(365) },
    ],
    noncurrentVersionExpiration: Duration.days(30),
    abortIncompleteMultipartUploadAfter: Duration.days(7),
  },
];

/**
 * SSE-S3 rather than a region key: S3 replication of KMS-encrypted objects needs the destination
 * region's key ARN in the source stack (a cross-region reference).
 */
function archiveBucket(scope: Construct, id: string, props: Partial<s3.BucketProps>): s3.Bucket {
  return new s3.Bucket(scope, id, {
    encryption: s3.BucketEncryption.S3_MANAGED,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    versioned: true, // replication needs versioning on both sides
    lifecycleRules: LIFECYCLE,
    removalPolicy: STATEFUL,
    ...props,
  });
}

/** The stack of one region's replica bucket. */
export class LuxflowArchiveStack extends Stack {
  readonly replica: s3.Bucket;
  constructor(scope: Construct, id: string, props: StackProps & { config: LuxflowConfig }) {
    super(scope, id, props);
    this.replica = archiveBucket(this, 'ArchiveReplica', { bucketName: replicaBucketName(props.config, this.region) });
    const noLogs =
      'Replica bucket: written by S3 replication only, read by a replay after a region loss; ' +
      'server access logs would need a log bucket in this stack for a bucket with no other writer.';
    acknowledge(this.replica, 'AwsSolutions-S1', noLogs);
    skipCheckov(this.replica, 'CKV_AWS_18', noLogs);
    new CfnOutput(this, 'ArchiveReplicaBucket', { value: this.replica.bucketName });
  }
}

/**
 * The region's access-log bucket: the load balancer's access logs and the archive bucket's
 * server access logs (SSE-S3: the log delivery services write with S3 keys only).
 */
export function addAccessLogs(stack: Stack): s3.Bucket {
  const accessLogs = new s3.Bucket(stack, 'AccessLogs', {
    encryption: s3.BucketEncryption.S3_MANAGED,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    lifecycleRules: [{ expiration: Duration.days(90) }],
    removalPolicy: STATEFUL,
  });
  const reason =
    'The access-log bucket itself: logging its own access would need another bucket; written ' +
    'by the ELB and S3 log delivery only, objects expire after 90 days.';
  acknowledge(accessLogs, 'AwsSolutions-S1', reason);
  skipCheckov(accessLogs, 'CKV_AWS_18', reason);
  skipCheckov(accessLogs, 'CKV_AWS_21', 'Access logs are written once and never changed: versioning adds nothing.');
  return accessLogs;
}

export interface Archive {
  readonly bucket: s3.Bucket;
  readonly deliveryStream: firehose.DeliveryStream;
}

/**
 * The Firehose transformation that writes the archive's format. About $0.04 per million records
 * (arm64, 128 MB, ~60 ms per 3 MB batch of ~3,000 records; costs in the handler's docstring).
 * A batch that fails after Firehose's retries goes whole to the error prefix, never dropped.
 */
function archiveFormatFunction(stack: Stack, key: kms.IKey): lambda.Function {
  const logGroup = new logs.LogGroup(stack, 'ArchiveFormatLogs', {
    retention: logs.RetentionDays.ONE_MONTH,
    encryptionKey: key,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const fn = new lambda.Function(stack, 'ArchiveFormat', {
    runtime: lambda.Runtime.PYTHON_3_14,
    architecture: lambda.Architecture.ARM_64,
    handler: 'index.handler',
    code: lambda.Code.fromAsset(ARCHIVE_FORMAT_CODE),
    memorySize: 128,
    timeout: Duration.minutes(1),
    logGroup,
    description: 'Firehose transformation: one JSON line per Kinesis record, with its arrival time, shard, sequence number and partition key',
  });
  const invokedByFirehose =
    'Invoked synchronously by its Firehose delivery stream only, which retries a failed batch and ' +
    'then writes it to the error prefix';
  skipCheckov(fn, 'CKV_AWS_116', `${invokedByFirehose}: a dead-letter queue would never receive anything.`);
  skipCheckov(
    fn,
    'CKV_AWS_117',
    'Reads nothing and calls nothing: it transforms the batch Firehose passes and returns it; a VPC adds ENIs and cost.',
  );
  skipCheckov(
    fn,
    'CKV_AWS_115',
    'Concurrency follows Firehose (one invocation per shard at most); a reserved limit would only throttle the archive.',
  );
  skipCheckov(fn, 'CKV_AWS_173', 'The function has no environment variables: nothing to encrypt with a key.');
  ignoreCfnLint(
    fn,
    'W3005',
    'The DependsOn on its role is the CDK\'s own (lambda.Function), beside the GetAtt: harmless, and not ours to drop.',
  );
  skipCheckov(
    fn,
    'CKV_AWS_272',
    'Code is a single file from this repository, deployed as a CDK asset by the pipeline; no signing profile in the deployment.',
  );
  acknowledge(
    fn,
    'AwsSolutions-L1',
    'Python 3.14, not the newest runtime aws-cdk-lib names (3.15, new this autumn): the handler uses the standard ' +
      'library only and its unit test runs on the project\'s Python; moving up is this one line.',
  );
  const basicRole =
    'AWSLambdaBasicExecutionRole, the CDK default for a Lambda function: CloudWatch Logs writes only.';
  acknowledge(fn, 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]', basicRole);
  return fn;
}

export function addArchive(
  stack: Stack,
  config: LuxflowConfig,
  stream: kinesis.IStream,
  key: kms.IKey,
  accessLogs: s3.IBucket,
): Archive {
  const peer = peerRegion(config, stack.region);
  const bucket = archiveBucket(stack, 'Archive', {
    serverAccessLogsBucket: accessLogs,
    serverAccessLogsPrefix: 'archive/',
    replicationRules: peer
      ? [
          {
            destination: s3.Bucket.fromBucketAttributes(stack, 'PeerArchiveReplica', {
              bucketName: replicaBucketName(config, peer),
              region: peer,
            }),
            replicationTimeControl: REPLICATION_TIME,
            metrics: REPLICATION_TIME,
            deleteMarkerReplication: false,
            priority: 1,
            id: `to-${peer}`,
          },
        ]
      : undefined,
  });
  const logGroup = new logs.LogGroup(stack, 'ArchiveDeliveryLogs', {
    retention: logs.RetentionDays.ONE_MONTH,
    encryptionKey: key,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const format = archiveFormatFunction(stack, key);
  const deliveryStream = new firehose.DeliveryStream(stack, 'ArchiveDelivery', {
    source: new firehose.KinesisStreamSource(stream),
    destination: new firehose.S3Bucket(bucket, {
      // One JSON line per record (arrival time, shard, sequence number, partition key, bytes),
      // one object per buffer: not split by site, so a shard's order across sites is kept.
      dataOutputPrefix: `raw/region=${stack.region}/!{timestamp:yyyy/MM/dd/HH}/`,
      errorOutputPrefix: `errors/region=${stack.region}/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/`,
      bufferingInterval: ARCHIVE_BUFFER,
      bufferingSize: Size.mebibytes(64),
      compression: firehose.Compression.GZIP,
      processors: [
        new firehose.LambdaFunctionProcessor(format, {
          bufferInterval: Duration.minutes(1),
          bufferSize: Size.mebibytes(3),
          retries: 3,
        }),
      ],
      loggingConfig: new firehose.EnableLogging(logGroup),
    }),
  });
  // The log stream Firehose writes to goes with its log group.
  logGroup.node.findAll().forEach((c) => {
    if (c instanceof logs.CfnLogStream) c.applyRemovalPolicy(RemovalPolicy.DESTROY);
  });
  const sourceEncrypted =
    'A delivery stream whose source is a Kinesis stream cannot have its own server-side ' +
    'encryption: the records are encrypted in the stream (aws/kinesis key) and in S3 (SSE-S3).';
  acknowledge(deliveryStream, 'AwsSolutions-KDF1', sourceEncrypted);
  const grant =
    'CDK grant of the archive bucket to its writer (Firehose) or to S3 replication: the ' +
    'objects of that one bucket (`/*`), with the S3 action groups of the standard grant.';
  for (const action of ['s3:Abort*', 's3:DeleteObject*', 's3:GetBucket*', 's3:GetObject*', 's3:List*']) {
    acknowledge(deliveryStream, `AwsSolutions-IAM5[Action::${action}]`, grant);
  }
  acknowledge(deliveryStream, `AwsSolutions-IAM5[Resource::${arnRef(bucket)}/*]`, grant);
  acknowledge(
    deliveryStream,
    `AwsSolutions-IAM5[Resource::${arnRef(format)}:*]`,
    'CDK grant of the archive-format function to Firehose: its versions and aliases (`:*`) only.',
  );
  acknowledge(bucket, `AwsSolutions-IAM5[Resource::${arnRef(bucket)}/*]`, grant);
  if (peer) {
    acknowledge(
      bucket,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${replicaBucketName(config, peer)}/*]`,
      'S3 replication writes replicas (ReplicateObject/Delete/Tags) into the peer region\'s replica bucket: its objects.',
    );
  }
  new CfnOutput(stack, 'ArchiveBucket', { value: bucket.bucketName, description: 'raw records of this region' });
  if (peer) new CfnOutput(stack, 'ArchiveReplicatesTo', { value: replicaBucketName(config, peer) });
  return { bucket, deliveryStream };
}
