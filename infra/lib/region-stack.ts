/**
 * One region's whole pipeline (DESIGN.md, "Multi-region DR"): IoT rule -> Kinesis stream ->
 * ECS Fargate workers -> DynamoDB command model (a global table: created by the primary
 * region's stack, replicas in the others) + the query store, with the regional lease, state and
 * dead-letter tables (never replicated: shard ids repeat across regional streams), alarms and a
 * dashboard.
 *
 * This module only composes the parts, each in its own module. Every part creates its
 * resources directly in this stack's scope with the ids they have always had, so their logical
 * ids stay stable (a changed logical id replaces the resource, retained stores included); the
 * parts are added in a fixed order, which is also the order of the template's resources.
 */
import { RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { LuxflowConfig } from './config';
import { addIngest } from './ingest';
import { addMonitoring } from './monitoring';
import { addNetwork } from './network';
import { addQueryStore } from './query-store';
import { addTables } from './tables';
import { addWorkerService } from './worker-service';

export { IMAGE_EXCLUDES, REPO_ROOT } from './worker-service';

export interface LuxflowRegionStackProps extends StackProps {
  readonly config: LuxflowConfig;
}

export class LuxflowRegionStack extends Stack {
  readonly stream: kinesis.Stream;
  readonly taskRole: iam.IRole;
  readonly service: ecs.FargateService;
  readonly alarms: Record<string, cloudwatch.Alarm>;

  constructor(scope: Construct, id: string, props: LuxflowRegionStackProps) {
    super(scope, id, props);
    const config = props.config;

    // Customer managed key for the alarm topic (CloudWatch must be allowed to use it, which
    // the aws/sns key does not allow) and the Timestream database.
    const key = new kms.Key(this, 'Key', {
      description: `luxflow ${this.region}: alarm topic and query store`,
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.stream = addIngest(this, config);
    const tables = addTables(this, config);
    const vpc = addNetwork(this, config);
    const queryStore = addQueryStore(this, config, key, vpc);
    const workers = addWorkerService(this, { config, vpc, stream: this.stream, tables, queryStore });
    this.service = workers.service;
    this.taskRole = workers.taskRole;
    this.alarms = addMonitoring(this, config, key);
  }
}
