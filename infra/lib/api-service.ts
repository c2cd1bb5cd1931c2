/**
 * The read API and operator page (`luxflow serve`) as their own Fargate service, behind an
 * internet-facing Application Load Balancer that speaks HTTPS only (TLS 1.2+, the certificate
 * from `apiCertificateArn`), in the workers' cluster and private subnets. The API reads the
 * command table (read-only grant) and the query model with the InfluxDB read token; its bearer
 * token is a generated secret (rotate: put a new value, then force a new deployment).
 *
 * A rolling deploy (100/200) is right here: the API holds no lease or state.
 */
import { CfnOutput, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { LuxflowConfig, certificateArn } from './config';
import { REASONS, acknowledge, arnRef, ignoreCfnLint } from './nag';
import { QueryStore } from './query-store';
import { RegionTables } from './tables';
import * as w from './worker';
import { luxflowImage } from './worker-service';

export interface ApiServiceProps {
  readonly config: LuxflowConfig;
  readonly key: kms.IKey;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly cluster: ecs.ICluster;
  readonly tables: RegionTables;
  readonly queryStore: QueryStore;
  /** The settings the worker has that the API needs too (table names, query model). */
  readonly environment: Record<string, string>;
  /** Where the load balancer writes its access logs. */
  readonly accessLogs: s3.IBucket;
}

export interface ApiService {
  readonly service: ecs.FargateService;
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly targetGroup: elbv2.ApplicationTargetGroup;
}

export function addApiService(stack: Stack, props: ApiServiceProps): ApiService {
  const { config, key, vpc, subnets, cluster, tables, queryStore, accessLogs } = props;
  const token = new secretsmanager.Secret(stack, 'ApiToken', {
    description: 'luxflow read API: the bearer token of /api/v1 and the operator page',
    encryptionKey: key,
    generateSecretString: { excludePunctuation: true, passwordLength: 48 },
  });
  acknowledge(
    token,
    'AwsSolutions-SMG4',
    'Rotated by an operator (infra/README.md: put a new value, force a new deployment of the API ' +
      'service); a rotation Lambda would also have to restart the service.',
  );

  const taskDefinition = new ecs.FargateTaskDefinition(stack, 'ApiTask', {
    family: `luxflow-api-${config.appName}`,
    cpu: 256,
    memoryLimitMiB: 512,
    runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.X86_64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
  });
  const logGroup = new logs.LogGroup(stack, 'ApiLogs', {
    retention: logs.RetentionDays.ONE_MONTH,
    encryptionKey: key,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  taskDefinition.addContainer('api', {
    image: luxflowImage(),
    command: [...w.API_COMMAND],
    environment: props.environment,
    secrets: { LUXFLOW_API_TOKEN: ecs.Secret.fromSecretsManager(token), ...queryStore.apiSecrets },
    portMappings: [{ containerPort: w.API_PORT }],
    essential: true,
    healthCheck: {
      command: [...w.API_HEALTH_CHECK_COMMAND],
      interval: Duration.seconds(30),
      timeout: Duration.seconds(5),
      retries: 3,
      startPeriod: Duration.seconds(30),
    },
    logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'api', logGroup }),
  });
  acknowledge(
    taskDefinition,
    'AwsSolutions-ECS2',
    'The environment holds names only (tables, region, query model); the API token and the ' +
      'InfluxDB read token come from Secrets Manager through `secrets`.',
  );
  // Read-only on the command model; nothing else in DynamoDB.
  tables.command.grantReadData(taskDefinition.taskRole);
  const commandIndexes = tables.ownsGlobalTable
    ? `${arnRef(tables.command)}/index/*`
    : `arn:<AWS::Partition>:dynamodb:${stack.region}:${config.account}:table/${config.names.commandTable}/index/*`;
  acknowledge(taskDefinition.taskRole, `AwsSolutions-IAM5[Resource::${commandIndexes}]`, REASONS.tableIndexes);
  acknowledge(taskDefinition.obtainExecutionRole(), 'AwsSolutions-IAM5[Resource::*]', REASONS.executionRoleStar);

  const service = new ecs.FargateService(stack, 'ApiService', {
    cluster,
    taskDefinition,
    serviceName: `luxflow-api-${config.appName}`,
    desiredCount: config.apiTasks,
    minHealthyPercent: 100,
    maxHealthyPercent: 200,
    circuitBreaker: { rollback: true },
    vpcSubnets: subnets,
    assignPublicIp: false,
  });
  queryStore.allowFrom(service, 'luxflow read API');

  // ---- the load balancer: HTTPS only ------------------------------------------------------
  const lbSecurityGroup = new ec2.SecurityGroup(stack, 'ApiLoadBalancerSecurityGroup', {
    vpc,
    description: 'luxflow read API load balancer: HTTPS from the allowed range',
    allowAllOutbound: false,
  });
  lbSecurityGroup.addIngressRule(ec2.Peer.ipv4(config.apiAllowedCidr), ec2.Port.tcp(443), 'HTTPS');
  acknowledge(
    lbSecurityGroup,
    'AwsSolutions-EC23',
    'The operator page and read API are served to the internet on 443 only, behind a bearer ' +
      'token; narrow it with -c apiAllowedCidr.',
  );
  const loadBalancer = new elbv2.ApplicationLoadBalancer(stack, 'ApiLoadBalancer', {
    vpc,
    internetFacing: true,
    vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
    securityGroup: lbSecurityGroup,
    dropInvalidHeaderFields: true,
  });
  loadBalancer.logAccessLogs(accessLogs, 'api');
  const listener = loadBalancer.addListener('Https', {
    port: 443,
    protocol: elbv2.ApplicationProtocol.HTTPS,
    sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
    certificates: [elbv2.ListenerCertificate.fromArn(certificateArn(config, stack.region))],
    open: false,
  });
  const targetGroup = listener.addTargets('Api', {
    port: w.API_PORT,
    protocol: elbv2.ApplicationProtocol.HTTP,
    targets: [service],
    healthCheck: { path: w.API_HEALTH_PATH, healthyHttpCodes: '200', interval: Duration.seconds(15) },
    deregistrationDelay: Duration.seconds(30),
  });
  ignoreCfnLint(
    service,
    'W3005',
    'CDK makes the service depend on the listener rule beside the Ref of the target group, so ' +
      'the group is attached to the load balancer before ECS registers tasks (CDK-generated).',
  );
  new CfnOutput(stack, 'ApiUrl', {
    value: `https://${loadBalancer.loadBalancerDnsName}`,
    description: 'read API and operator page (point a DNS name of the certificate at it)',
  });
  return { service, loadBalancer, targetGroup };
}
