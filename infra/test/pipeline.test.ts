import { IMAGE_COMMANDS, TEST_COMMANDS } from '../lib/pipeline-stack';
import { Synthesized, makeApp } from './helpers';

const built = makeApp();
const synth = new Synthesized(built);
const template = synth.template(built.pipelineStack!);

type Action = { Name: string; RunOrder: number; ActionTypeId: Record<string, string>; Configuration: Record<string, any> };
const pipeline = Object.values(template.findResources('AWS::CodePipeline::Pipeline'))[0];
const stages = pipeline.Properties.Stages as Array<{ Name: string; Actions: Action[] }>;
const projects = template.findResources('AWS::CodeBuild::Project');

/** The buildspec of the CodeBuild project an action runs. */
function buildSpecOf(action: Action): string {
  const ref = action.Configuration.ProjectName.Ref as string;
  return String(projects[ref].Properties.Source.BuildSpec);
}

test('a CodePipeline sourced from the CodeStar connection, synth in infra/ with npm ci', () => {
  expect(Object.keys(template.findResources('AWS::CodePipeline::Pipeline'))).toHaveLength(1);
  const source = stages[0].Actions[0];
  expect(source.ActionTypeId).toMatchObject({ Category: 'Source', Provider: 'CodeStarSourceConnection' });
  expect(source.Configuration.ConnectionArn).toMatch(/^arn:aws:codeconnections:/);
  expect(source.Configuration.FullRepositoryId).toBe('example/luxflow');
  const synthSpec = Object.values(projects).map((p) => String(p.Properties.Source.BuildSpec)).find((s) => s.includes('cdk synth'));
  expect(synthSpec).toContain('cd infra');
  expect(synthSpec).toContain('npm ci');
  expect(synthSpec).toContain("-c 'account=111111111111'");
  expect(synthSpec).toContain("-c 'regions=us-east-1,eu-west-1'");
  expect(synthSpec).toContain("-c 'queryModel=influxdb'");
});

test('gates: tests and the image smoke test run before the first region deploys, then bake, then the next region', () => {
  const deploys = stages.filter((s) => s.Name.startsWith('Deploy-'));
  expect(deploys.map((s) => s.Name)).toEqual(['Deploy-us-east-1', 'Deploy-eu-west-1']);
  const order = (stage: { Actions: Action[] }) =>
    stage.Actions.slice()
      .sort((a, b) => a.RunOrder - b.RunOrder || a.Name.localeCompare(b.Name))
      .map((a) => `${a.RunOrder}:${a.Name}`);
  expect(order(deploys[0])).toEqual([
    '1:ImageSmokeTest',
    '1:UnitAndIntegrationTests',
    '2:LuxflowArchive-eu-west-1.Prepare',
    '2:LuxflowArchive-us-east-1.Prepare',
    '3:LuxflowArchive-eu-west-1.Deploy',
    '3:LuxflowArchive-us-east-1.Deploy',
    '4:Luxflow-us-east-1.Prepare',
    '5:Luxflow-us-east-1.Deploy',
    '6:Bake-us-east-1',
  ]);
  expect(order(deploys[1])).toEqual(['1:Luxflow-eu-west-1.Prepare', '2:Luxflow-eu-west-1.Deploy', '3:Bake-eu-west-1']);
  // The second region's stage comes after the first one's bake (stages run in sequence).
  expect(stages.indexOf(deploys[1])).toBe(stages.indexOf(deploys[0]) + 1);

  const action = (name: string) => deploys[0].Actions.find((a) => a.Name === name)!;
  const tests = buildSpecOf(action('UnitAndIntegrationTests'));
  for (const command of TEST_COMMANDS) expect(tests).toContain(command);
  expect(tests).toContain('./dev check');
  expect(tests).toContain('pytest');
  const image = action('ImageSmokeTest');
  expect(buildSpecOf(image)).toContain('./dev image');
  for (const command of IMAGE_COMMANDS) expect(buildSpecOf(image)).toContain(command);
  expect(projects[image.Configuration.ProjectName.Ref].Properties.Environment.PrivilegedMode).toBe(true);
});

test('the bake watches the region\'s alarms for bakeMinutes and fails on one in ALARM', () => {
  for (const region of ['us-east-1', 'eu-west-1']) {
    const stage = stages.find((s) => s.Name === `Deploy-${region}`)!;
    const spec = buildSpecOf(stage.Actions.find((a) => a.Name === `Bake-${region}`)!);
    expect(spec).toContain(`aws cloudwatch describe-alarms --region ${region} --alarm-name-prefix 'luxflow-lighting-${region}-'`);
    expect(spec).toContain('--state-value ALARM');
    expect(spec).toContain('exit 1');
    expect(spec).toContain(`$(date +%s) + ${30 * 60}`);
  }
  const statements = Object.values(template.findResources('AWS::IAM::Policy')).flatMap(
    (p) => p.Properties.PolicyDocument.Statement as Array<{ Action: string | string[] }>,
  );
  expect(statements.some((s) => s.Action === 'cloudwatch:DescribeAlarms')).toBe(true);
});

test('the stage stacks are the same region stacks (global table only in the primary stage)', () => {
  expect(built.pipelineStack!.stages.map((s) => s.stack.stackName)).toEqual(['Luxflow-us-east-1', 'Luxflow-eu-west-1']);
  const [first, second] = built.pipelineStack!.stages.map((s) => synth.template(s.stack));
  expect(Object.keys(first.findResources('AWS::DynamoDB::GlobalTable'))).toHaveLength(1);
  expect(Object.keys(second.findResources('AWS::DynamoDB::GlobalTable'))).toHaveLength(0);
  expect(Object.keys(second.findResources('AWS::IoT::TopicRule')).length).toBeGreaterThanOrEqual(1);
});

test('pipelineRegion puts the pipeline outside the primary region', () => {
  const other = makeApp({ pipelineRegion: 'eu-west-1' });
  expect(other.pipelineStack!.region).toBe('eu-west-1');
});

test('every CodeBuild project logs to a log group that expires (CodeBuild\'s own /aws/codebuild groups never do)', () => {
  const groups = template.findResources('AWS::Logs::LogGroup');
  expect(Object.keys(projects).length).toBeGreaterThan(0);
  for (const [id, project] of Object.entries(projects)) {
    const logs = project.Properties.LogsConfig?.CloudWatchLogs;
    expect([id, logs?.Status]).toEqual([id, 'ENABLED']);
    const group = groups[logs.GroupName?.Ref];
    expect([id, group?.Properties.RetentionInDays]).toEqual([id, 90]);
  }
});

test('the pipeline\'s synth sees the same configuration as the deploy that created it (every -c key carried over)', () => {
  const { App } = require('aws-cdk-lib') as typeof import('aws-cdk-lib');
  const { readConfig } = require('../lib/config') as typeof import('../lib/config');
  const { contextArgs } = require('../lib/pipeline-stack') as typeof import('../lib/pipeline-stack');
  const given = {
    regions: 'us-east-1,us-east-2',
    fenceWitnessRegion: 'us-west-2',
    appName: 'luxflow-prod',
    alarmEmail: 'ops@example.com',
    shards: '6',
    egress: 'nat',
    apiAllowedCidr: '10.0.0.0/8',
  };
  const first = readConfig(new App({ context: given }).node);
  const carried: Record<string, string> = {};
  for (const m of contextArgs(first).matchAll(/-c '([^=]+)=([^']*)'/g)) carried[m[1]] = m[2];
  expect(readConfig(new App({ context: carried }).node)).toEqual(first);
});

test('a bake longer than CodeBuild\'s default hour is not cut off: the step\'s timeout covers bakeMinutes', () => {
  const long = makeApp({ bakeMinutes: '120' });
  const t = new Synthesized(long).template(long.pipelineStack!);
  const all = t.findResources('AWS::CodeBuild::Project');
  const bakes = Object.values(all).filter((p) => String(p.Properties.Source.BuildSpec).includes('describe-alarms'));
  expect(bakes).toHaveLength(2);
  for (const bake of bakes) expect(bake.Properties.TimeoutInMinutes).toBeGreaterThanOrEqual(120 + 10);
});
