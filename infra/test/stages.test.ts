/**
 * Names that must be unique in an account: nothing one stack names may be a name another
 * stack of the same or another deployment uses, or a deploy stops on "already exists".
 */
import { Synthesized, makeApp } from './helpers';

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
