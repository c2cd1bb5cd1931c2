/**
 * Two deployments of the app in one account (a staging and a production `appName`), in the
 * same regions: nothing one of them names may be a name the other uses, or the second deploy
 * updates the first one's stacks or stops on "already exists".
 */
import { Synthesized, makeApp } from './helpers';

type Named = Set<string>;

/** Names scoped inside another resource (a role's inline policy, a cluster's service, ...). */
const SCOPED = new Set([
  'AWS::IAM::Policy PolicyName',
  'AWS::ApplicationAutoScaling::ScalingPolicy PolicyName',
  'AWS::EC2::VPCEndpoint ServiceName',
  'AWS::CloudWatch::Alarm MetricName',
  'AWS::ECS::Service ServiceName',
]);

/** Every stack name and every physical name (`*Name`, `Family`) of a built app, by region. */
function namesOf(context: Record<string, string>): Named {
  const built = makeApp(context);
  const synth = new Synthesized(built);
  const stacks = [
    ...Object.values(built.regionStacks),
    ...Object.values(built.archiveStacks),
    ...(built.pipelineStack ? [built.pipelineStack, ...built.pipelineStack.stages.map((s) => s.stack)] : []),
  ];
  const names: Named = new Set();
  for (const stack of stacks) {
    names.add(`stack ${stack.region} ${stack.stackName}`);
    const resources = synth.template(stack).toJSON().Resources as Record<string, { Type: string; Properties?: Record<string, unknown> }>;
    for (const resource of Object.values(resources)) {
      for (const [key, value] of Object.entries(resource.Properties ?? {})) {
        if (typeof value === 'string' && (/Name$/.test(key) || key === 'Family') && !SCOPED.has(`${resource.Type} ${key}`)) {
          names.add(`${resource.Type} ${stack.region} ${key}=${value}`);
        }
      }
    }
  }
  return names;
}

test('a second appName in the same account and regions shares no stack or resource name with the first', () => {
  const production = namesOf({});
  const staging = namesOf({ appName: 'luxflow-staging', deviceDomain: 'iot-staging.example.com' });
  expect(production.size).toBeGreaterThan(20);
  expect([...staging].filter((name) => production.has(name))).toEqual([]);
});

test('the default appName keeps its stack and table names', () => {
  const names = namesOf({ pipeline: 'false' });
  expect(names).toContain('stack us-east-1 Luxflow-us-east-1');
  expect(names).toContain('stack eu-west-1 LuxflowArchive-eu-west-1');
  expect(names).toContain('AWS::DynamoDB::GlobalTable us-east-1 TableName=luxflow-model');
});

test('no IAM role has a fixed name: IAM is global, so the region stacks of one deployment would collide', () => {
  const built = makeApp();
  const synth = new Synthesized(built);
  const stacks = [...Object.values(built.regionStacks), ...Object.values(built.archiveStacks), built.pipelineStack!];
  for (const stack of stacks) {
    const roles = synth.template(stack).findResources('AWS::IAM::Role');
    const named = Object.entries(roles).filter(([, r]) => typeof r.Properties.RoleName === 'string');
    expect([stack.stackName, named.map(([id, r]) => `${id}=${r.Properties.RoleName}`)]).toEqual([stack.stackName, []]);
  }
});
