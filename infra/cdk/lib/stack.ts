// The same resources as infra/sam/template.yaml: the accept, work and report functions, the
// build queue and its dead-letter queue, the artifact buckets, the tokens' secret, alarms, and
// a first project's two CodePipelines (V2, S3 source with key override, parallel runs) and
// CodeBuild projects: the trusted one, and the untrusted one for pull requests of authors who
// may not commit (its build role can write its logs and read its own source, nothing else).
// IAM is written out per function, naming only its own resources.
import * as path from 'path';
import * as cdk from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct, IConstruct } from 'constructs';

export interface PagureCiBridgeProps extends cdk.StackProps {
  readonly projectKey: string;
  readonly pagureUrl: string;
  readonly gitUrl: string;
  readonly projectFullName: string;
  readonly flagUsername: string;
  readonly sourceCidrs: string;
  /**
   * The default of the `BuildSpecPath` parameter: where every CodeBuild project reads its
   * buildspec, and where the bridge writes the injected one (PCB_CODEBUILD_BUILDSPEC).
   */
  readonly buildSpecPath: string;
  /** The first project's `approval_phrase` (a committer's comment that builds a PR head in the trusted pipeline); empty: off. */
  readonly approvalPhrase: string;
  /** Synthesize without building the Rust functions (CI's offline checks). */
  readonly skipBundling: boolean;
}

/** The work function's timeout; the queue's visibility timeout is 6 × this. */
const WORK_TIMEOUT = cdk.Duration.seconds(300);
const MAX_RECEIVE_COUNT = 5;
/**
 * The PAGURE_* values each pipeline run is started with (bridge_core::buildspec::PIPELINE_VARIABLES).
 * The build action pastes them into its EnvironmentVariables JSON text: the work function
 * refuses any value with a character JSON would escape, and sends nothing the PR author
 * chooses (no branch name).
 */
const PIPELINE_VARIABLES = [
  'PAGURE_REQUEST_ID',
  'PAGURE_PROJECT',
  'PAGURE_REPO',
  'PAGURE_CAUSE',
  'PAGURE_COMMIT',
];

/** A relative .yml/.yaml path whose components never start with a dot (no `.`, `..`, `.git`). */
export const BUILDSPEC_PATH_PATTERN = '^([A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}/){0,7}[A-Za-z0-9_-][A-Za-z0-9_.-]{0,94}[.]ya?ml$';
/** Empty, or a phrase without quotes, backslashes or control characters (it becomes a TOML string). */
export const APPROVAL_PHRASE_PATTERN = '^([A-Za-z0-9/@_.:!?+-]([A-Za-z0-9 /@_.:!?+-]{0,62}[A-Za-z0-9/@_.:!?+-])?)?$';

/** Acknowledges a cdk-nag finding on a construct and its children, with the reason. */
function acknowledge(scope: Construct, id: string, reason: string): void {
  cdk.Validations.of(scope).acknowledge({ id, reason });
}

/** Skips checkov checks on a construct's CloudFormation resource, each with its reason. */
function checkovSkip(scope: IConstruct, skips: [string, string][]): void {
  const resource = (scope instanceof cdk.CfnResource ? scope : scope.node.defaultChild) as cdk.CfnResource;
  resource.addMetadata('checkov', { skip: skips.map(([id, comment]) => ({ id, comment })) });
}

const LOGS_SKIP: [string, string] = ['CKV_AWS_158', 'Logs hold no secrets (tested); CloudWatch\'s own encryption applies.'];
const SQS_SKIP: [string, string] = [
  'CKV_AWS_27',
  'Encrypted at rest with SQS-managed keys; checkov only recognises KMS keys, and a KMS key on the report DLQ would need a customer key EventBridge may use.',
];
const FUNCTION_SKIPS: [string, string][] = [
  ['CKV_AWS_117', 'It reaches Pagure and AWS endpoints over the internet with TLS; no VPC resource is used.'],
  ['CKV_AWS_115', 'Reserved concurrency would take from the account\'s unreserved pool; the queue absorbs bursts.'],
  ['CKV_AWS_173', 'The environment holds no secrets (tokens come from Secrets Manager).'],
];

export class PagureCiBridgeStack extends cdk.Stack {
  constructor(scope: Construct, id: string, props: PagureCiBridgeProps) {
    super(scope, id, props);
    const workspace = path.join(__dirname, '..', '..', '..', '..');
    const pipelineName = `${this.stackName}-${props.projectKey}`;
    const untrustedName = `${pipelineName}-untrusted`;
    for (const [what, value, pattern] of [
      ['buildSpecPath', props.buildSpecPath, BUILDSPEC_PATH_PATTERN],
      ['approvalPhrase', props.approvalPhrase, APPROVAL_PHRASE_PATTERN],
    ]) {
      if (!new RegExp(pattern).test(value)) {
        throw new Error(`context ${what} = ${JSON.stringify(value)} does not match ${pattern}`);
      }
    }
    // One setting for the path every CodeBuild project reads and the path the bridge writes
    // the injected buildspec at (a deploy-time parameter; the context value is its default).
    const buildSpecPath = new cdk.CfnParameter(this, 'BuildSpecPath', {
      type: 'String',
      default: props.buildSpecPath,
      allowedPattern: BUILDSPEC_PATH_PATTERN,
      description: 'Where every CodeBuild project reads its buildspec in the source archive; the bridge writes the injected buildspec at exactly this path (PCB_CODEBUILD_BUILDSPEC).',
    }).valueAsString;
    const pipelineArns = `arn:${this.partition}:codepipeline:${this.region}:${this.account}:${this.stackName}-*`;
    // Confused-deputy guard on the CodeBuild and CodePipeline roles: only this account's own
    // project or pipeline (its ARN is known from its name, without a dependency) may assume it.
    // The Lambda execution roles keep lambda.amazonaws.com plain (docs/admin-guide.md).
    const trustedBy = (service: string, sourceArn: string) => new iam.ServicePrincipal(service, {
      conditions: { StringEquals: { 'aws:SourceAccount': this.account, 'aws:SourceArn': sourceArn } },
    });
    const projectArn = (name: string) => `arn:${this.partition}:codebuild:${this.region}:${this.account}:project/${name}`;
    const pipelineArn = (name: string) => `arn:${this.partition}:codepipeline:${this.region}:${this.account}:${name}`;

    const secret = new secretsmanager.Secret(this, 'BridgeSecret', {
      description: 'pagure-ci-bridge tokens; layout in docs/admin-guide.md.',
      // A valid, empty document: the tokens are put in after deploying.
      secretStringValue: cdk.SecretValue.unsafePlainText('{"projects": {}}'),
    });
    checkovSkip(secret, [['CKV_AWS_149', 'The AWS-managed key is enough for tokens only the bridge\'s functions may read; a customer key adds cost, no isolation.']]);
    acknowledge(secret, 'AwsSolutions::AwsSolutions-SMG4', 'Pagure issues these tokens; they are rotated in Pagure and pasted here (docs/operations.md), not by a rotation Lambda.');

    const deadLetters = new sqs.Queue(this, 'BuildDeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: cdk.Duration.days(14),
    });
    const queue = new sqs.Queue(this, 'BuildQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: cdk.Duration.seconds(WORK_TIMEOUT.toSeconds() * 6),
      retentionPeriod: cdk.Duration.days(4),
      deadLetterQueue: { queue: deadLetters, maxReceiveCount: MAX_RECEIVE_COUNT },
    });
    const reportDeadLetters = new sqs.Queue(this, 'ReportDeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: cdk.Duration.days(14),
    });
    for (const q of [queue, deadLetters, reportDeadLetters]) {
      checkovSkip(q, [SQS_SKIP]);
    }

    const bucket = (id: string, encryption = s3.BucketEncryption.KMS_MANAGED) => {
      const b = new s3.Bucket(this, id, {
        versioned: true,
        encryption,
        ...(encryption === s3.BucketEncryption.KMS_MANAGED ? { bucketKeyEnabled: true } : {}),
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        enforceSSL: true,
        objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        lifecycleRules: [{
          expiration: cdk.Duration.days(14),
          noncurrentVersionExpiration: cdk.Duration.days(1),
          abortIncompleteMultipartUploadAfter: cdk.Duration.days(1),
        }],
      });
      checkovSkip(b, [['CKV_AWS_18', 'Only the bridge, CodePipeline and CodeBuild write here; CloudTrail records it.']]);
      acknowledge(b, 'AwsSolutions::AwsSolutions-S1', 'Only the bridge, CodePipeline and CodeBuild write here; CloudTrail records it. Access logs would need a third bucket.');
      return b;
    };
    const artifacts = bucket('ArtifactBucket');
    const stageArtifacts = bucket('StageArtifactBucket');
    // The untrusted pipeline's artifact store: SSE-S3, so its build role needs no KMS grant.
    const untrustedArtifacts = bucket('UntrustedArtifactBucket', s3.BucketEncryption.S3_MANAGED);

    const environment: Record<string, string> = {
      RUST_LOG: 'info',
      PCB_SECRET_ID: secret.secretArn,
      PCB_FLAG_USERNAME: props.flagUsername,
      PCB_PROJECTS: [
        `[${props.projectKey}]`,
        `pagure_url = "${props.pagureUrl}"`,
        `git_url = "${props.gitUrl}"`,
        `project = "${props.projectFullName}"`,
        `pipeline = "${pipelineName}"`,
        `untrusted_pipeline = "${untrustedName}"`,
        ...(props.approvalPhrase ? [`approval_phrase = "${props.approvalPhrase}"`] : []),
      ].join('\n'),
    };

    const rustFunction = (id: string, binary: string, extra: Partial<lambda.FunctionOptions>) => {
      const logGroup = new logs.LogGroup(this, `${id}Logs`, {
        retention: logs.RetentionDays.ONE_MONTH,
        removalPolicy: cdk.RemovalPolicy.DESTROY,
      });
      checkovSkip(logGroup, [LOGS_SKIP]);
      // Its own role: logs to its own group only (no managed policy with logs:* on *).
      const role = new iam.Role(this, `${id}Role`, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
      role.addToPolicy(new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }));
      const fn = new RustFunction(this, id, {
        memorySize: 256,
        ...extra,
        manifestPath: path.join(workspace, 'Cargo.toml'),
        binaryName: binary,
        architecture: lambda.Architecture.ARM_64,
        role,
        logGroup,
        loggingFormat: lambda.LoggingFormat.JSON,
        environment: { ...environment, ...(extra.environment ?? {}) },
        // Offline synthesis: a fixed hash instead of building (and hashing) the workspace.
        ...(props.skipBundling ? { assetHash: `skipped-${binary}` } : {}),
      });
      checkovSkip(fn, [
        ...FUNCTION_SKIPS,
        ...(binary === 'report' ? [] : [[
          'CKV_AWS_116',
          binary === 'accept'
            ? 'Called synchronously through its function URL; a failure is answered to Pagure.'
            : 'Its SQS source has the dead-letter queue (redrive after 5 receives).',
        ] as [string, string]]),
      ]);
      return fn;
    };

    const accept = rustFunction('AcceptFunction', 'accept', {
      description: 'pagure-ci-bridge accept: authenticates and queues triggers.',
      timeout: cdk.Duration.seconds(10),
      environment: { PCB_QUEUE_URL: queue.queueUrl, PCB_SOURCE_CIDRS: props.sourceCidrs },
    });
    accept.addToRolePolicy(new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [queue.queueArn] }));
    accept.addToRolePolicy(new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [secret.secretArn] }));
    // Pagure cannot sign SigV4: the bridge authenticates each call itself.
    const url = accept.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });
    checkovSkip(url, [['CKV_AWS_258', 'Pagure cannot sign requests; the bridge checks tokens and HMAC signatures itself.']]);

    const work = rustFunction('WorkFunction', 'work', {
      description: 'pagure-ci-bridge work: clones, injects the buildspec, zips, uploads, starts the pipeline.',
      timeout: WORK_TIMEOUT,
      memorySize: 1024,
      ephemeralStorageSize: cdk.Size.gibibytes(4),
      environment: {
        PCB_BUCKET: artifacts.bucketName,
        PCB_KEY_PREFIX: 'sources',
        PCB_SOURCE_ACTION: 'Source',
        PCB_MAX_RECEIVE_COUNT: String(MAX_RECEIVE_COUNT),
        PCB_FETCH_TIMEOUT_SECONDS: '240',
        // The path every CodeBuild project reads (source.buildSpec): the same parameter.
        PCB_CODEBUILD_BUILDSPEC: buildSpecPath,
      },
    });
    work.addEventSource(new SqsEventSource(queue, { batchSize: 5, reportBatchItemFailures: true }));
    work.addToRolePolicy(new iam.PolicyStatement({
      actions: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload'],
      resources: [artifacts.arnForObjects('sources/*')],
    }));
    // Unconditional: S3 answers a GetObject of a missing key (the `.started` marker) with 404
    // only to a caller that may ListBucket; a GetObject request carries no s3:prefix key, so a
    // prefix-conditioned grant would turn "absent" into 403.
    work.addToRolePolicy(new iam.PolicyStatement({
      actions: ['s3:ListBucket'],
      resources: [artifacts.bucketArn],
    }));
    work.addToRolePolicy(new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [secret.secretArn] }));
    work.addToRolePolicy(new iam.PolicyStatement({ actions: ['codepipeline:StartPipelineExecution'], resources: [pipelineArns] }));

    const report = rustFunction('ReportFunction', 'report', {
      description: 'pagure-ci-bridge report: CodeBuild and CodePipeline state changes become Pagure flags.',
      timeout: cdk.Duration.seconds(60),
      deadLetterQueue: reportDeadLetters,
      retryAttempts: 2,
      maxEventAge: cdk.Duration.hours(6),
    });
    report.addToRolePolicy(new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [secret.secretArn] }));
    report.addToRolePolicy(new iam.PolicyStatement({
      actions: ['codepipeline:GetPipelineExecution', 'codepipeline:ListActionExecutions'],
      resources: [pipelineArns],
    }));
    // Wildcards that are scoped to this stack's own resources, each acknowledged exactly.
    const arnOf = (bucket: s3.Bucket) => `<${this.getLogicalId(bucket.node.defaultChild as cdk.CfnElement)}.Arn>`;
    const iam5 = (scope: Construct, resource: string, reason: string) =>
      acknowledge(scope, `AwsSolutions::AwsSolutions-IAM5[Resource::${resource}]`, reason);
    const ownPipelines = 'arn:<AWS::Partition>:codepipeline:<AWS::Region>:<AWS::AccountId>:' + `${this.stackName}-*`;
    const sources = `${arnOf(artifacts)}/sources/*`;
    iam5(work.role!, sources, 'The source archives it writes: objects under sources/ of its own bucket.');
    for (const role of [work.role!, report.role!]) {
      iam5(role, ownPipelines, 'The pipelines of this stack (one per project, named <stack>-<project>).');
    }

    // The first project's pipeline.
    const buildLogs = new logs.LogGroup(this, 'BuildLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: cdk.RemovalPolicy.DESTROY,
    });
    checkovSkip(buildLogs, [LOGS_SKIP]);
    const buildRole = new iam.Role(this, 'BuildRole', { assumedBy: trustedBy('codebuild.amazonaws.com', projectArn(pipelineName)) });
    buildRole.addToPolicy(new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [buildLogs.logGroupArn] }));
    buildRole.addToPolicy(new iam.PolicyStatement({
      actions: ['s3:GetObject', 's3:GetObjectVersion', 's3:PutObject'],
      resources: [stageArtifacts.arnForObjects('*')],
    }));
    buildRole.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetBucketAcl', 's3:GetBucketLocation'], resources: [stageArtifacts.bucketArn] }));
    const buildProject = new codebuild.CfnProject(this, 'BuildProject', {
      name: pipelineName,
      description: `Builds ${props.projectFullName} for pagure-ci-bridge`,
      serviceRole: buildRole.roleArn,
      // The bridge writes the injected buildspec at exactly this path (PCB_CODEBUILD_BUILDSPEC).
      source: { type: 'CODEPIPELINE', buildSpec: buildSpecPath },
      artifacts: { type: 'CODEPIPELINE' },
      environment: {
        type: 'ARM_CONTAINER',
        image: 'aws/codebuild/amazonlinux-aarch64-standard:3.0',
        computeType: 'BUILD_GENERAL1_SMALL',
        privilegedMode: false,
      },
      timeoutInMinutes: 60,
      encryptionKey: `arn:${this.partition}:kms:${this.region}:${this.account}:alias/aws/s3`,
      logsConfig: { cloudWatchLogs: { status: 'ENABLED', groupName: buildLogs.logGroupName } },
    });

    // A pipeline's service role, the same for both pipelines: it reads the bridge's source
    // archives, reads and writes its own artifact store, and runs its own CodeBuild project.
    const newPipelineRole = (id: string, name: string, store: s3.Bucket, project: codebuild.CfnProject, storeLabel: string) => {
      const role = new iam.Role(this, id, { assumedBy: trustedBy('codepipeline.amazonaws.com', pipelineArn(name)) });
      role.addToPolicy(new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:GetObjectVersion', 's3:GetBucketVersioning'],
        resources: [artifacts.bucketArn, artifacts.arnForObjects('sources/*')],
      }));
      role.addToPolicy(new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:GetObjectVersion', 's3:PutObject'],
        resources: [store.arnForObjects('*')],
      }));
      // The artifact store itself: AWS's minimal CodePipeline service role has these.
      role.addToPolicy(new iam.PolicyStatement({
        actions: ['s3:GetBucketVersioning', 's3:GetBucketAcl', 's3:GetBucketLocation'],
        resources: [store.bucketArn],
      }));
      role.addToPolicy(new iam.PolicyStatement({
        actions: ['codebuild:StartBuild', 'codebuild:BatchGetBuilds'],
        resources: [project.attrArn],
      }));
      iam5(role, `${arnOf(store)}/*`, `Objects of ${storeLabel} (CodePipeline names them).`);
      iam5(role, sources, 'The source archives it reads: objects under sources/ of the bridge\'s bucket.');
      return role;
    };
    const pipelineRole = newPipelineRole('PipelineRole', pipelineName, stageArtifacts, buildProject, 'the stack\'s own stage-artifact bucket');
    iam5(buildRole, `${arnOf(stageArtifacts)}/*`, 'Objects of the stack\'s own stage-artifact bucket (CodePipeline names them).');
    const actionVariables = [
      ...PIPELINE_VARIABLES.map((name) => ({ name, value: `#{variables.${name}}`, type: 'PLAINTEXT' })),
      { name: 'PAGURE_PIPELINE_EXECUTION_ID', value: '#{codepipeline.PipelineExecutionId}', type: 'PLAINTEXT' },
    ];
    // Both pipelines: the bridge's source bucket and key scheme (the work function overrides
    // S3_OBJECT_KEY on the action named `Source`), then one CodeBuild action without output
    // artifacts, given PLAINTEXT variables only.
    const newPipeline = (id: string, name: string, role: iam.Role, store: s3.Bucket, project: codebuild.CfnProject) =>
      new codepipeline.CfnPipeline(this, id, {
        name,
        pipelineType: 'V2',
        // Each run names its own archive (a key per request): runs never race on one object.
        executionMode: 'PARALLEL',
        roleArn: role.roleArn,
        artifactStore: { type: 'S3', location: store.bucketName },
        // A run started by hand carries these defaults (bridge_core::buildspec::MANUAL_RUN): ignored by report.
        variables: PIPELINE_VARIABLES.map((name) => ({ name, defaultValue: 'manual' })),
        stages: [
          {
            name: 'Source',
            actions: [{
              name: 'Source',
              actionTypeId: { category: 'Source', owner: 'AWS', provider: 'S3', version: '1' },
              configuration: {
                S3Bucket: artifacts.bucketName,
                S3ObjectKey: `sources/${props.projectKey}/latest.zip`,
                PollForSourceChanges: false,
                AllowOverrideForS3ObjectKey: true,
              },
              outputArtifacts: [{ name: 'Source' }],
            }],
          },
          {
            name: 'Build',
            actions: [{
              name: 'Build',
              actionTypeId: { category: 'Build', owner: 'AWS', provider: 'CodeBuild', version: '1' },
              inputArtifacts: [{ name: 'Source' }],
              configuration: { ProjectName: project.ref, EnvironmentVariables: JSON.stringify(actionVariables) },
            }],
          },
        ],
      });
    const pipeline = newPipeline('Pipeline', pipelineName, pipelineRole, stageArtifacts, buildProject);

    // The first project's untrusted pipeline: pull requests whose author may not commit to the
    // target branch. Its build role can write its own logs and read its own artifact bucket's
    // objects (the source zip), nothing else: no secret, no parameter, no KMS key, no other
    // bucket; the project has no environment variables, no VPC, and is not privileged.
    const untrustedLogs = new logs.LogGroup(this, 'UntrustedBuildLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: cdk.RemovalPolicy.DESTROY,
    });
    checkovSkip(untrustedLogs, [LOGS_SKIP]);
    const untrustedBuildRole = new iam.Role(this, 'UntrustedBuildRole', {
      assumedBy: trustedBy('codebuild.amazonaws.com', projectArn(untrustedName)),
      description: 'pagure-ci-bridge untrusted builds: own logs, own source; infra/tests/check_templates.py refuses any other grant.',
    });
    untrustedBuildRole.addToPolicy(new iam.PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [untrustedLogs.logGroupArn],
    }));
    // The source zip CodePipeline hands the build; there is no output artifact to write.
    untrustedBuildRole.addToPolicy(new iam.PolicyStatement({
      actions: ['s3:GetObject', 's3:GetObjectVersion'],
      resources: [untrustedArtifacts.arnForObjects('*')],
    }));
    // The bucket itself, no object: AWS's minimal CodeBuild service role has these.
    untrustedBuildRole.addToPolicy(new iam.PolicyStatement({
      actions: ['s3:GetBucketAcl', 's3:GetBucketLocation'],
      resources: [untrustedArtifacts.bucketArn],
    }));
    const untrustedProject = new codebuild.CfnProject(this, 'UntrustedBuildProject', {
      name: untrustedName,
      description: `Builds pull requests of ${props.projectFullName} from authors without commit access: no secrets, logs and source only`,
      serviceRole: untrustedBuildRole.roleArn,
      // The same parameter as the trusted project and the bridge's PCB_CODEBUILD_BUILDSPEC.
      source: { type: 'CODEPIPELINE', buildSpec: buildSpecPath },
      artifacts: { type: 'CODEPIPELINE' },
      environment: {
        type: 'ARM_CONTAINER',
        image: 'aws/codebuild/amazonlinux-aarch64-standard:3.0',
        computeType: 'BUILD_GENERAL1_SMALL',
        privilegedMode: false,
      },
      timeoutInMinutes: 60,
      encryptionKey: `arn:${this.partition}:kms:${this.region}:${this.account}:alias/aws/s3`,
      logsConfig: { cloudWatchLogs: { status: 'ENABLED', groupName: untrustedLogs.logGroupName } },
    });
    const untrustedPipelineRole = newPipelineRole(
      'UntrustedPipelineRole', untrustedName, untrustedArtifacts, untrustedProject, 'the untrusted pipeline\'s own artifact bucket');
    iam5(untrustedBuildRole, `${arnOf(untrustedArtifacts)}/*`, 'Objects of the untrusted pipeline\'s own artifact bucket: the source zip of the build (CodePipeline names them).');
    const untrustedPipeline = newPipeline('UntrustedPipeline', untrustedName, untrustedPipelineRole, untrustedArtifacts, untrustedProject);

    const ruleTarget = new targets.LambdaFunction(report, { deadLetterQueue: reportDeadLetters, retryAttempts: 10 });
    new events.Rule(this, 'BuildStates', {
      eventPattern: {
        source: ['aws.codebuild'],
        detailType: ['CodeBuild Build State Change'],
        detail: { 'project-name': [buildProject.ref, untrustedProject.ref] },
      },
      targets: [ruleTarget],
    });
    new events.Rule(this, 'PipelineStates', {
      eventPattern: {
        source: ['aws.codepipeline'],
        detailType: ['CodePipeline Pipeline Execution State Change'],
        detail: { pipeline: [pipeline.ref, untrustedPipeline.ref], state: ['SUCCEEDED', 'FAILED', 'STOPPED', 'SUPERSEDED', 'CANCELED'] },
      },
      targets: [ruleTarget],
    });

    for (const [id, dlq, what] of [
      ['BuildDeadLetterAlarm', deadLetters, 'A build request failed for good (its reason is in the work function\'s logs); see docs/operations.md to redrive.'],
      ['ReportDeadLetterAlarm', reportDeadLetters, 'A build state could not be posted on Pagure (Pagure down, or a token refused); see docs/operations.md.'],
    ] as const) {
      new cloudwatch.Alarm(this, id, {
        alarmDescription: what,
        metric: dlq.metricApproximateNumberOfMessagesVisible({ period: cdk.Duration.minutes(5), statistic: 'Maximum' }),
        threshold: 0,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }

    new cdk.CfnOutput(this, 'PagureCiUrl', {
      description: 'Paste into Pagure, Settings → Hooks → Pagure CI, type jenkins, as the URL (job = the project key).',
      value: url.url,
    });
    new cdk.CfnOutput(this, 'WebhookUrl', { value: `${url.url}webhook/${props.projectKey}` });
    new cdk.CfnOutput(this, 'SecretName', { value: secret.secretName });
    new cdk.CfnOutput(this, 'ArtifactBucketName', { value: artifacts.bucketName });
    new cdk.CfnOutput(this, 'PipelineName', {
      description: 'Trusted builds (pushes, and pull requests whose author may commit to the target branch).',
      value: pipeline.ref,
    });
    new cdk.CfnOutput(this, 'UntrustedPipelineName', {
      description: 'Every other pull request builds here, without secrets (the first project\'s untrusted_pipeline).',
      value: untrustedPipeline.ref,
    });
  }
}
