import { Synthesized, makeApp } from './helpers';

const built = makeApp();
const synth = new Synthesized(built);
const template = synth.template(built.pipelineStack!);

test('a CodePipeline sourced from the CodeStar connection, synth in infra/ with npm ci', () => {
  const pipelines = Object.values(template.findResources('AWS::CodePipeline::Pipeline'));
  expect(pipelines).toHaveLength(1);
  const stages = pipelines[0].Properties.Stages as Array<{ Name: string; Actions: Array<Record<string, any>> }>;
  const source = stages[0].Actions[0];
  expect(source.ActionTypeId).toMatchObject({ Category: 'Source', Provider: 'CodeStarSourceConnection' });
  expect(source.Configuration.ConnectionArn).toMatch(/^arn:aws:codeconnections:/);
  expect(source.Configuration.FullRepositoryId).toBe('example/luxflow');

  const projects = Object.values(template.findResources('AWS::CodeBuild::Project'));
  const synthSpec = projects.map((p) => String(p.Properties.Source.BuildSpec)).find((s) => s.includes('cdk synth'));
  expect(synthSpec).toBeDefined();
  expect(synthSpec).toContain('cd infra');
  expect(synthSpec).toContain('npm ci');
  expect(synthSpec).toContain('-c account=111111111111');
  expect(synthSpec).toContain('-c regions=us-east-1,eu-west-1');
});

test('one deploy stage per region, the primary region first', () => {
  const pipeline = Object.values(template.findResources('AWS::CodePipeline::Pipeline'))[0];
  const names = (pipeline.Properties.Stages as Array<{ Name: string }>).map((s) => s.Name);
  const deploys = names.filter((n) => n.startsWith('Deploy-'));
  expect(deploys).toEqual(['Deploy-us-east-1', 'Deploy-eu-west-1']);
  expect(built.pipelineStack!.stages.map((s) => s.stack.stackName)).toEqual(['Luxflow-us-east-1', 'Luxflow-eu-west-1']);
});

test('the stage stacks are the same region stacks (global table only in the primary stage)', () => {
  const [first, second] = built.pipelineStack!.stages.map((s) => synth.template(s.stack));
  expect(Object.keys(first.findResources('AWS::DynamoDB::GlobalTable'))).toHaveLength(1);
  expect(Object.keys(second.findResources('AWS::DynamoDB::GlobalTable'))).toHaveLength(0);
  expect(Object.keys(second.findResources('AWS::IoT::TopicRule'))).toHaveLength(1);
});
