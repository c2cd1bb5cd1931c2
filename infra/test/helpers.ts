/** Builds the app as `cdk synth` does: cdk.json's and cdk.context.json's context, plus overrides. */
import { readFileSync } from 'fs';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { LuxflowApp, buildApp } from '../lib/app';

const ROOT = path.join(__dirname, '..');

export function cliContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(path.join(ROOT, 'cdk.json'), 'utf8'));
  const cached = JSON.parse(readFileSync(path.join(ROOT, 'cdk.context.json'), 'utf8'));
  return { ...cdkJson.context, ...cached };
}

export function makeApp(context: Record<string, unknown> = {}): LuxflowApp {
  // outdir in a temp folder: jest must not write into cdk.out (the CLI's).
  return buildApp(new App({ context: { ...cliContext(), ...context }, outdir: tmpOutdir() }));
}

let counter = 0;
function tmpOutdir(): string {
  const os = require('os') as typeof import('os');
  const fs = require('fs') as typeof import('fs');
  return fs.mkdtempSync(path.join(os.tmpdir(), `luxflow-cdk-${process.pid}-${counter++}-`));
}

/** Synthesizes the app once (nag gate included) and returns each stack's template. */
export class Synthesized {
  readonly assembly: CloudAssembly;
  constructor(readonly built: LuxflowApp) {
    this.assembly = built.app.synth();
  }
  template(stack: Stack): Template {
    const artifact = this.assembly.tryGetArtifact(stack.artifactId) ?? findNested(this.assembly, stack.artifactId);
    return Template.fromJSON((artifact as { template: Record<string, unknown> }).template);
  }
  region(region: string): Template {
    return this.template(this.built.regionStacks[region]);
  }
}

function findNested(assembly: CloudAssembly, artifactId: string): unknown {
  for (const nested of assembly.nestedAssemblies) {
    const found = nested.nestedAssembly.tryGetArtifact(artifactId) ?? findNested(nested.nestedAssembly, artifactId);
    if (found) return found;
  }
  return undefined;
}

export type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown };

export function actionsOf(statement: Statement): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}

/** Every statement of every AWS::IAM::Policy attached to the role with this logical id prefix. */
export function statementsOfRole(template: Template, roleLogicalIdPrefix: string): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy');
  const out: Statement[] = [];
  for (const policy of Object.values(policies)) {
    const roles = (policy.Properties.Roles ?? []) as Array<{ Ref: string }>;
    if (roles.some((r) => r.Ref.startsWith(roleLogicalIdPrefix))) {
      out.push(...(policy.Properties.PolicyDocument.Statement as Statement[]));
    }
  }
  return out;
}

/** The one container of the task definition whose logical id starts with `prefix`. */
export function containerOf(template: Template, prefix: string): Record<string, any> {
  const defs = Object.entries(template.findResources('AWS::ECS::TaskDefinition')).filter(([id]) => id.startsWith(prefix));
  expect(defs).toHaveLength(1);
  const containers = defs[0][1].Properties.ContainerDefinitions;
  expect(containers).toHaveLength(1);
  return containers[0];
}

export function envOf(container: Record<string, any>): Record<string, unknown> {
  return Object.fromEntries((container.Environment as Array<{ Name: string; Value: unknown }>).map((e) => [e.Name, e.Value]));
}
