/**
 * CDK Pipelines: source from the repository through a CodeStar (CodeConnections) connection,
 * synth in infra/ with the same context as this app, then one stage per region, the primary
 * region first (its stack creates the global table whose replicas the others use).
 */
import { Stack, StackProps, Stage, StageProps } from 'aws-cdk-lib';
import * as pipelines from 'aws-cdk-lib/pipelines';
import { Construct } from 'constructs';
import { LuxflowConfig } from './config';
import { acknowledge, arnRef } from './nag';
import { LuxflowRegionStack } from './region-stack';

export function regionStackId(region: string): string {
  return `Luxflow-${region}`;
}

/** Ordered regions: the primary first. */
export function deployOrder(config: LuxflowConfig): string[] {
  return [config.primaryRegion, ...config.regions.filter((r) => r !== config.primaryRegion)];
}

export interface LuxflowStageProps extends StageProps {
  readonly config: LuxflowConfig;
  readonly region: string;
}

export class LuxflowStage extends Stage {
  readonly stack: LuxflowRegionStack;
  constructor(scope: Construct, id: string, props: LuxflowStageProps) {
    super(scope, id, props);
    this.stack = new LuxflowRegionStack(this, regionStackId(props.region), {
      env: { account: props.config.account, region: props.region },
      stackName: regionStackId(props.region),
      config: props.config,
    });
  }
}

/** The `-c` arguments that make the pipeline's synth see this app's configuration. */
export function contextArgs(config: LuxflowConfig): string {
  const args: Record<string, string> = {
    account: config.account,
    regions: config.regions.join(','),
    primaryRegion: config.primaryRegion,
    appName: config.appName,
    shards: config.shards === undefined ? 'on-demand' : String(config.shards),
    workers: String(config.desiredWorkers),
    queryModel: config.queryModel,
    natGateways: String(config.natGateways),
    connectionArn: config.connectionArn,
    repository: config.repository,
    branch: config.branch,
  };
  if (config.shards === undefined) args.onDemandShards = String(config.maxWorkers);
  if (config.alarmEmail) args.alarmEmail = config.alarmEmail;
  return Object.entries(args)
    .map(([k, v]) => `-c ${k}=${v}`)
    .join(' ');
}

export interface LuxflowPipelineStackProps extends StackProps {
  readonly config: LuxflowConfig;
}

export class LuxflowPipelineStack extends Stack {
  readonly pipeline: pipelines.CodePipeline;
  readonly stages: LuxflowStage[] = [];

  constructor(scope: Construct, id: string, props: LuxflowPipelineStackProps) {
    super(scope, id, props);
    const config = props.config;
    this.pipeline = new pipelines.CodePipeline(this, 'Pipeline', {
      pipelineName: `luxflow-${config.appName}`,
      crossAccountKeys: false,
      synth: new pipelines.ShellStep('Synth', {
        input: pipelines.CodePipelineSource.connection(config.repository, config.branch, {
          connectionArn: config.connectionArn,
        }),
        commands: ['cd infra', 'npm ci', `npx cdk synth --no-notices ${contextArgs(config)}`],
        env: { CDK_DISABLE_CLI_TELEMETRY: 'true' },
        primaryOutputDirectory: 'infra/cdk.out',
      }),
    });
    for (const region of deployOrder(config)) {
      const stage = new LuxflowStage(this, `Deploy-${region}`, {
        env: { account: config.account, region },
        config: { ...config, pipeline: false },
        region,
      });
      this.pipeline.addStage(stage);
      this.stages.push(stage);
    }
    this.pipeline.buildPipeline();
    this.acknowledgePipelineFindings(config);
  }

  /** CDK Pipelines' own roles, projects and buckets: findings it generates, each explained. */
  private acknowledgePipelineFindings(config: LuxflowConfig): void {
    const codePipeline = this.pipeline.pipeline;
    const artifacts = codePipeline.artifactBucket;
    const projects = [this.pipeline.synthProject, this.pipeline.selfMutationProject];
    const prefix = `arn:<AWS::Partition>`;
    const where = `${this.region}:${config.account}`;
    const s3Grant =
      'CDK Pipelines grants its roles read/write on the pipeline artifacts bucket with the ' +
      'standard CDK bucket grant (s3:GetObject*, s3:List*, ...) limited to that bucket.';
    for (const action of ['s3:Abort*', 's3:DeleteObject*', 's3:GetBucket*', 's3:GetObject*', 's3:List*']) {
      acknowledge(this, `AwsSolutions-IAM5[Action::${action}]`, s3Grant);
    }
    acknowledge(this, `AwsSolutions-IAM5[Resource::${arnRef(artifacts)}/*]`, s3Grant);
    acknowledge(
      this,
      'AwsSolutions-IAM5[Resource::*]',
      'CDK Pipelines: the asset and self-mutation CodeBuild roles call ecr:GetAuthorizationToken ' +
        'and read CloudFormation stacks, which have no resource-level permissions.',
    );
    acknowledge(
      this,
      `AwsSolutions-IAM5[Resource::arn:*:iam::${config.account}:role/*]`,
      'CDK Pipelines: the asset and self-mutation roles assume the CDK bootstrap roles ' +
        '(cdk-*-deploy/-file-publishing/-image-publishing) of this account, guarded by the ' +
        'aws-cdk:bootstrap-role tag condition.',
    );
    acknowledge(
      this,
      `AwsSolutions-IAM5[Resource::${prefix}:codebuild:${where}:report-group/*]`,
      'CDK Pipelines asset CodeBuild role: report groups of its own projects (CDK default).',
    );
    acknowledge(
      this,
      `AwsSolutions-IAM5[Resource::${prefix}:logs:${where}:log-group:/aws/codebuild/*]`,
      'CDK Pipelines asset CodeBuild role: log groups of its own projects (CDK default).',
    );
    for (const project of projects) {
      const ref = arnRef(project).replace('.Arn>', '>');
      acknowledge(
        this,
        `AwsSolutions-IAM5[Resource::${prefix}:codebuild:${where}:report-group/${ref}-*]`,
        'CodeBuild report groups of this one project (CDK default grant).',
      );
      acknowledge(
        this,
        `AwsSolutions-IAM5[Resource::${prefix}:logs:${where}:log-group:/aws/codebuild/${ref}:*]`,
        'CloudWatch log streams of this one CodeBuild project (CDK default grant).',
      );
    }
    const kmsReason =
      'Single-account pipeline (crossAccountKeys: false): build artifacts are encrypted at ' +
      'rest with S3-managed keys; a customer managed key adds cost and no isolation here.';
    acknowledge(this, 'AwsSolutions-CB4', kmsReason);
    const accessLogs =
      'Pipeline artifact buckets hold build outputs only (no telemetry, no secrets); ' +
      'CloudTrail records the API access; server access logs would need another bucket.';
    acknowledge(artifacts, 'AwsSolutions-S1', accessLogs);
    for (const support of Object.values(codePipeline.crossRegionSupport)) {
      acknowledge(support.replicationBucket, 'AwsSolutions-S1', accessLogs);
      const name = this.resolve(support.replicationBucket.bucketName);
      acknowledge(this, `AwsSolutions-IAM5[Resource::${prefix}:s3:::${name}/*]`, s3Grant);
    }
  }
}
