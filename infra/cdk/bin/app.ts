#!/usr/bin/env node
// The pagure-ci-bridge deployment as a CDK app. `cdk deploy` builds the three functions with
// cargo-lambda; `scripts/cdk-synth` synthesizes without building (PCB_SKIP_BUNDLING=1).
// Context values (-c key=value) are the defaults of the stack's parameters; `--parameters
// Name=value` sets them at deploy time. No project is named here: `pagure-ci-bridge projects
// add` writes them into the deployed registry.
import * as cdk from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { PagureCiBridgeStack } from '../lib/stack';

const skipBundling = process.env.PCB_SKIP_BUNDLING === '1';
// No stack is bundled when skipping (the CLI refuses `aws:` context from the command line).
const app = new cdk.App(skipBundling ? { postCliContext: { 'aws:cdk:bundling-stacks': [] } } : {});
const context = (key: string, fallback: string): string => app.node.tryGetContext(key) ?? fallback;
new PagureCiBridgeStack(app, 'PagureCiBridge', {
  namePrefix: context('namePrefix', 'pagureci'),
  pagureUrl: context('pagureUrl', 'https://pagure.io/'),
  gitUrl: context('gitUrl', 'https://pagure.io'),
  flagUsername: context('flagUsername', 'AWS CodeBuild'),
  sourceCidrs: context('sourceCidrs', ''),
  buildSpecPath: context('buildSpecPath', 'buildspec.yml'),
  skipBundling,
});
// Every AwsSolutions finding is an error unless suppressed, with a reason, in the stack.
cdk.Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
