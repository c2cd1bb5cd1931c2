/**
 * One region's whole pipeline: IoT rule -> Kinesis stream -> ECS Fargate workers -> DynamoDB
 * command model (a global table: created by the primary region's stack, replicas in the others)
 * + the query store, with the regional lease, state and dead-letter tables (never replicated:
 * shard ids repeat across regional streams), the raw-record archive replicated to the peer
 * region, the devices' custom domain with its failover record, the read API behind HTTPS,
 * alarms and a dashboard.
 *
 * This module only composes the parts, each in its own module, in a fixed order (which is also
 * the order of the template's resources).
 */
import { Stack, StackProps } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { addArchiveAlarms, addReplicationAlarms, addServiceAlarms, addStreamAlarms, addWorkerAlarms } from './alarms';
import { addApiService } from './api-service';
import { addAccessLogs, addArchive } from './archive';
import { LuxflowConfig } from './config';
import { addDeviceDomain } from './device-domain';
import { addDeviceIngest } from './devices';
import { addIngest } from './ingest';
import { AlarmTopic, addDashboard } from './monitoring';
import { addNetwork } from './network';
import { addQueryStore } from './query-store';
import { STATEFUL, addTables } from './tables';
import { addWorkerService } from './worker-service';

export { IMAGE_EXCLUDES, REPO_ROOT } from './worker-service';

export interface LuxflowRegionStackProps extends StackProps {
  readonly config: LuxflowConfig;
}

export class LuxflowRegionStack extends Stack {
  readonly stream: kinesis.Stream;
  readonly taskRole: iam.IRole;
  readonly service: ecs.FargateService;
  readonly apiService: ecs.FargateService;
  readonly alarms: Record<string, cloudwatch.Alarm>;

  constructor(scope: Construct, id: string, props: LuxflowRegionStackProps) {
    super(scope, id, props);
    const config = props.config;

    // The region's customer managed key: the alarm topic (CloudWatch must be allowed to use it,
    // which the aws/sns key does not allow), the regional tables, queues, secrets and logs.
    const key = new kms.Key(this, 'Key', {
      description: `luxflow ${this.region}: alarm topic, regional tables, queues, secrets, logs`,
      enableKeyRotation: true,
      removalPolicy: STATEFUL,
    });
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal(`logs.${this.region}.amazonaws.com`)],
        actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
        resources: ['*'],
        conditions: {
          ArnLike: { 'kms:EncryptionContext:aws:logs:arn': `arn:${this.partition}:logs:${this.region}:${this.account}:*` },
        },
      }),
    );

    const ingest = addIngest(this, config, key);
    this.stream = ingest.stream;
    const deviceIngest = addDeviceIngest(this, config, key, ingest.ruleErrors);
    const tables = addTables(this, config, key);
    const { vpc, privateSubnets: subnets } = addNetwork(this, config, key);
    const queryStore = addQueryStore(this, config, key, vpc, subnets);
    const workers = addWorkerService(this, { config, key, vpc, subnets, stream: this.stream, tables, queryStore });
    this.service = workers.service;
    this.taskRole = workers.taskRole;
    const accessLogs = addAccessLogs(this);
    const archive = addArchive(this, config, this.stream, key, accessLogs);
    addDeviceDomain(this, config);
    const api = addApiService(this, {
      config,
      key,
      vpc,
      subnets,
      cluster: workers.cluster,
      tables,
      queryStore,
      environment: workers.environment,
      accessLogs,
    });
    this.apiService = api.service;

    const alarms = new AlarmTopic(this, config, key);
    const sources = {
      stream: this.stream,
      ruleErrors: ingest.ruleErrors,
      refused: deviceIngest.refused,
      cluster: workers.cluster,
      services: { Worker: workers.service, Api: api.service },
      apiTargets: api.targetGroup,
    };
    addWorkerAlarms(alarms, config);
    addStreamAlarms(alarms, config, sources);
    addServiceAlarms(alarms, sources);
    addReplicationAlarms(alarms, config, this.region);
    addArchiveAlarms(alarms, config, this.region, archive);
    this.alarms = alarms.alarms;
    addDashboard(this, config, Object.values(this.alarms));
  }
}
