/**
 * CDK Pipelines: source from the repository through a CodeStar (CodeConnections) connection,
 * synth in infra/, then the gates and one stage per region:
 *
 *   Synth -> [UnitAndIntegrationTests | ImageSmokeTest] -> Deploy-<primary> -> Bake-<primary>
 *         -> Deploy-<next> -> Bake-<next> -> ...
 *
 * The tests run `./dev` (the same commands as a developer's `./dev test`); the image is built
 * and smoke-tested (`./dev image`) before any region deploys. After each region, a bake step
 * watches that region's alarms for `bakeMinutes` and fails the pipeline on the first one in
 * ALARM, so a bad image stops in the first region. The pipeline lives in `pipelineRegion`
 * (default: the primary region; another region keeps deploys possible while the primary is lost).
 */
import { Duration, RemovalPolicy, Stack, StackProps, Stage, StageProps } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as pipelines from 'aws-cdk-lib/pipelines';
import { Construct } from 'constructs';
import { LuxflowArchiveStack } from './archive';
import { LuxflowConfig } from './config';
import { archiveStackId, deployOrder, regionStackId } from './regions';
import { acknowledge, arnRef, ignoreCfnLint, resourcesOfType, skipCheckov } from './nag';
import { LuxflowRegionStack } from './region-stack';

export { deployOrder, regionStackId } from './regions';

export interface LuxflowStageProps extends StageProps {
  readonly config: LuxflowConfig;
  readonly region: string;
  /** The first stage also deploys every region's archive replica stack, before its region stack. */
  readonly withArchives: boolean;
}

export class LuxflowStage extends Stage {
  readonly stack: LuxflowRegionStack;
  readonly archiveStacks: LuxflowArchiveStack[] = [];
  constructor(scope: Construct, id: string, props: LuxflowStageProps) {
    super(scope, id, props);
    const config = props.config;
    if (props.withArchives) {
      for (const region of config.regions) {
        this.archiveStacks.push(
          new LuxflowArchiveStack(this, archiveStackId(config, region), {
            env: { account: config.account, region },
            stackName: archiveStackId(config, region),
            config,
          }),
        );
      }
    }
    this.stack = new LuxflowRegionStack(this, regionStackId(config, props.region), {
      env: { account: config.account, region: props.region },
      stackName: regionStackId(config, props.region),
      config,
    });
    for (const archive of this.archiveStacks) this.stack.addStackDependency(archive);
  }
}

/** The `-c` arguments that make the pipeline's synth see this app's configuration. */
export function contextArgs(config: LuxflowConfig): string {
  const args: Record<string, string> = {
    account: config.account,
    regions: config.regions.join(','),
    primaryRegion: config.primaryRegion,
    pipelineRegion: config.pipelineRegion,
    appName: config.appName,
    shards: config.shards === undefined ? 'on-demand' : String(config.shards),
    workers: String(config.desiredWorkers),
    retentionHours: String(config.retentionHours),
    queryModel: config.queryModel,
    egress: config.egress,
    deletionProtection: String(config.deletionProtection),
    apiCertificateArn: config.apiCertificateArn,
    apiAllowedCidr: config.apiAllowedCidr,
    apiTasks: String(config.apiTasks),
    deviceDomain: config.deviceDomain,
    deviceHostedZoneId: config.deviceHostedZoneId,
    deviceCertificateArn: config.deviceCertificateArn,
    iotEndpointPrefix: config.iotEndpointPrefix,
    connectionArn: config.connectionArn,
    repository: config.repository,
    branch: config.branch,
    bakeMinutes: String(config.bakeMinutes),
  };
  if (config.shards === undefined) args.onDemandShards = String(config.maxWorkers);
  if (config.alarmEmail) args.alarmEmail = config.alarmEmail;
  // The CA's PEM is read from a file of the repository (e.g. infra/ca/devices.pem).
  if (config.deviceCaCertificateFile) args.deviceCaCertificateFile = config.deviceCaCertificateFile;
  if (config.fenceWitnessRegion) args.fenceWitnessRegion = config.fenceWitnessRegion;
  return Object.entries(args)
    .map(([k, v]) => `-c '${k}=${v}'`)
    .join(' ');
}

/** The commands of the tests gate: `./dev test` without the image (its own step) and in parts. */
export const TEST_COMMANDS = [
  './dev setup',
  './dev jars',
  './dev influxd',
  './dev chromium',
  './dev check',
  './dev infra',
  '.venv/bin/python -m pytest -q',
];
export const IMAGE_COMMANDS = ['apt-get update -qq', 'apt-get install -y -qq podman buildah mmdebstrap runc', './dev image'];

/** Beyond bakeMinutes, the bake step's timeout: its start, the polls' calls, the last sleep. */
export const BAKE_MARGIN_MINUTES = 15;

/** The bake: poll the region's alarms; any in ALARM fails the step (and stops the pipeline). */
export function bakeCommands(config: LuxflowConfig, region: string): string[] {
  const prefix = `${config.appName}-${region}-`;
  return [
    `end=$(( $(date +%s) + ${config.bakeMinutes * 60} ))`,
    'while :; do ' +
      `firing=$(aws cloudwatch describe-alarms --region ${region} --alarm-name-prefix '${prefix}' ` +
      "--state-value ALARM --query 'MetricAlarms[].AlarmName' --output text); " +
      'if [ -n "$firing" ] && [ "$firing" != None ]; then echo "in ALARM: $firing"; exit 1; fi; ' +
      '[ "$(date +%s)" -ge "$end" ] && break; sleep 60; done',
    `echo "${region}: no alarm in ALARM for ${config.bakeMinutes} minutes"`,
  ];
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
    // CodeBuild's default log groups (/aws/codebuild/<project>) are created on first use and
    // never expire: every run's test output would be stored for good. One group for all of
    // the pipeline's projects, kept 90 days.
    const buildLogs = new logs.LogGroup(this, 'BuildLogs', {
      retention: logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    skipCheckov(
      buildLogs,
      'CKV_AWS_158',
      'Build and test output of the repository\'s own code (no telemetry, no secrets), like the ' +
        'artifacts bucket (S3-managed keys): a customer managed key would add a key and its cost to an idle pipeline.',
    );
    const source = pipelines.CodePipelineSource.connection(config.repository, config.branch, {
      connectionArn: config.connectionArn,
    });
    this.pipeline = new pipelines.CodePipeline(this, 'Pipeline', {
      pipelineName: `luxflow-${config.appName}`,
      crossAccountKeys: false,
      codeBuildDefaults: {
        buildEnvironment: { buildImage: codebuild.LinuxBuildImage.STANDARD_7_0 },
        logging: { cloudWatch: { logGroup: buildLogs } },
      },
      synth: new pipelines.ShellStep('Synth', {
        input: source,
        commands: ['cd infra', 'npm ci', `npx cdk synth --no-notices ${contextArgs(config)}`],
        env: { CDK_DISABLE_CLI_TELEMETRY: 'true' },
        primaryOutputDirectory: 'infra/cdk.out',
      }),
    });
    const tests = new pipelines.CodeBuildStep('UnitAndIntegrationTests', {
      input: source,
      commands: TEST_COMMANDS,
      buildEnvironment: { computeType: codebuild.ComputeType.LARGE },
    });
    const image = new pipelines.CodeBuildStep('ImageSmokeTest', {
      input: source,
      commands: IMAGE_COMMANDS,
      // podman builds the image inside the build container.
      buildEnvironment: { privileged: true },
    });
    deployOrder(config).forEach((region, index) => {
      const stage = new LuxflowStage(this, `Deploy-${region}`, {
        env: { account: config.account, region },
        config: { ...config, pipeline: false },
        region,
        withArchives: index === 0,
      });
      const bake = new pipelines.CodeBuildStep(`Bake-${region}`, {
        commands: bakeCommands(config, region),
        // CodeBuild stops a build after 60 minutes unless told otherwise: a longer bake would
        // fail by timeout, not by an alarm. The loop's own overhead is a few minutes at most.
        timeout: Duration.minutes(config.bakeMinutes + BAKE_MARGIN_MINUTES),
        rolePolicyStatements: [
          // DescribeAlarms has no resource-level permission.
          new iam.PolicyStatement({ actions: ['cloudwatch:DescribeAlarms'], resources: ['*'] }),
        ],
      });
      this.pipeline.addStage(stage, { pre: index === 0 ? [tests, image] : [], post: [bake] });
      this.stages.push(stage);
    });
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
        'and read CloudFormation stacks, and the bake steps call cloudwatch:DescribeAlarms: ' +
        'none of them has resource-level permissions.',
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
      'CDK Pipelines CodeBuild roles: report groups of its own projects (CDK default).',
    );
    acknowledge(
      this,
      `AwsSolutions-IAM5[Resource::${prefix}:logs:${where}:log-group:/aws/codebuild/*]`,
      'CDK Pipelines CodeBuild roles: log groups of its own projects (CDK default).',
    );
    const allProjects = [
      ...projects,
      ...this.node.findAll().filter((c): c is codebuild.Project => c instanceof codebuild.Project && !projects.includes(c)),
    ];
    for (const project of allProjects) {
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
    acknowledge(
      this,
      'AwsSolutions-CB3',
      'The image smoke test builds the container image with podman inside the build, which ' +
        'needs privileged mode; it runs the repository\'s own scripts only.',
    );
    const accessLogs =
      'Pipeline artifact buckets hold build outputs only (no telemetry, no secrets); ' +
      'CloudTrail records the API access; server access logs would need another bucket.';
    acknowledge(artifacts, 'AwsSolutions-S1', accessLogs);
    for (const support of Object.values(codePipeline.crossRegionSupport)) {
      acknowledge(support.replicationBucket, 'AwsSolutions-S1', accessLogs);
      const name = this.resolve(support.replicationBucket.bucketName);
      acknowledge(this, `AwsSolutions-IAM5[Resource::${prefix}:s3:::${name}/*]`, s3Grant);
    }
    const buckets = [artifacts, ...Object.values(codePipeline.crossRegionSupport).map((x) => x.replicationBucket)];
    for (const bucket of buckets) {
      skipCheckov(bucket, 'CKV_AWS_18', accessLogs);
      skipCheckov(
        bucket,
        'CKV_AWS_21',
        'CDK Pipelines artifact bucket: each execution writes new objects under new keys; ' +
          'the source of truth is the repository, so versions would only keep garbage.',
      );
    }
    for (const policy of resourcesOfType(this, 'AWS::IAM::Policy').filter((p) => p.node.path.includes('/Assets/'))) {
      skipCheckov(
        policy,
        'CKV_AWS_111',
        'CDK Pipelines asset role: codebuild:BatchGetBuilds/StartBuild/StopBuild on "*" is how ' +
          'the CDK asset step drives its own CodeBuild projects (CDK-generated).',
      );
    }
    for (const pipeline of resourcesOfType(this, 'AWS::CodePipeline::Pipeline')) {
      ignoreCfnLint(
        pipeline,
        'W3005',
        'CDK Pipelines adds DependsOn on its role beside the GetAtt of it (CDK-generated).',
      );
    }
  }
}
