// The same resources and parameters as infra/sam/template.yaml (scripts/check-infra compares
// them): the accept, work and report functions (report also on a sweep schedule), the build
// queue and its dead-letter queue, the artifact buckets, the project registry's bucket, the
// tokens' secret, alarms (on the dead-letter queues and on the functions' own metrics), and
// one shared pair of CodePipelines (V2, S3 source with key override, parallel runs) and
// CodeBuild projects for every project of the forge: the trusted
// one, and the untrusted one for pull requests of authors who may not commit (its build role
// can write its logs and read its own source, nothing else). No resource or parameter names a
// project: they live in the registry (`pagure-ci-bridge projects add`).
// IAM is written out per function, naming only its own resources; pipelines and projects are
// matched by the NamePrefix, never by a list.
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

/** Defaults of the stack's parameters (context values of bin/app.ts); deploy-time `--parameters` override them. */
export interface PagureCiBridgeProps extends cdk.StackProps {
  /** NamePrefix: every name the stack gives starts with `<prefix>-`. */
  readonly namePrefix: string;
  /** PagureUrl, GitUrl: the forge's defaults for every registry rule. */
  readonly pagureUrl: string;
  readonly gitUrl: string;
  readonly flagUsername: string;
  readonly sourceCidrs: string;
  /**
   * BuildSpecPath: where every CodeBuild project reads its buildspec, and where the bridge
   * writes the injected one (PCB_CODEBUILD_BUILDSPEC).
   */
  readonly buildSpecPath: string;
  /** Synthesize without building the Rust functions (CI's offline checks). */
  readonly skipBundling: boolean;
}

/** The registry object in the registry bucket (PCB_REGISTRY_KEY); the functions may read it and nothing else there. */
const REGISTRY_KEY = 'registry.json';
/** The work function's timeout; the queue's visibility timeout is 6 × this. */
const WORK_TIMEOUT = cdk.Duration.seconds(300);
const MAX_RECEIVE_COUNT = 5;
/** The namespace of the metrics the functions write (embedded metric format; docs/operations.md). */
const METRICS_NAMESPACE = 'PagureCiBridge';
/** Where the work function writes archives and markers in the artifact bucket (PCB_KEY_PREFIX). */
const KEY_PREFIX = 'sources';
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
/**
 * Letters and digits, no dash: the first `-` of every name the stack gives ends its prefix, so
 * one stack's `<prefix>-*` (grants, event rules) never matches another stack's names (with
 * dashes, `pagure-ci-*` would match the pipelines of a stack named `pagure-ci-staging`).
 * Valid in every name derived from it (CodeBuild refuses dots).
 */
export const NAME_PREFIX_PATTERN = '^[A-Za-z][A-Za-z0-9]{1,39}$';
/** At most 40: <prefix>-pipeline-states must fit EventBridge's 64 characters. */
export const NAME_PREFIX_MAX_LENGTH = 40;
/** A URL without whitespace, quotes or backslashes (the CliEnvironment output pastes it into a shell line). */
export const PAGURE_URL_PATTERN = "^https?://[^\\s'\"\\\\]+$";
export const GIT_URL_PATTERN = "^https://[^\\s'\"\\\\]+$";
/** AWS's standard images (Amazon Linux 2023) when CodeBuildImage is empty. */
const ARM_IMAGE = 'aws/codebuild/amazonlinux-aarch64-standard:3.0';
const X86_IMAGE = 'aws/codebuild/amazonlinux-x86_64-standard:5.0';

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
    for (const [what, value, pattern] of [
      ['buildSpecPath', props.buildSpecPath, BUILDSPEC_PATH_PATTERN],
      ['namePrefix', props.namePrefix, NAME_PREFIX_PATTERN],
      ['pagureUrl', props.pagureUrl, PAGURE_URL_PATTERN],
      ['gitUrl', props.gitUrl, GIT_URL_PATTERN],
    ]) {
      if (!new RegExp(pattern).test(value)) {
        const why = what === 'namePrefix' ? ' (letters and digits only: with a dash, another stack\'s <prefix>-* could match this one\'s names)' : '';
        throw new Error(`context ${what} = ${JSON.stringify(value)} does not match ${pattern}${why}`);
      }
    }
    if (props.namePrefix.length > NAME_PREFIX_MAX_LENGTH) {
      throw new Error(`context namePrefix = ${JSON.stringify(props.namePrefix)} does not match its maximum length ${NAME_PREFIX_MAX_LENGTH}`);
    }

    // The same parameters as the SAM template (names, defaults, constraints): check-infra compares them.
    const parameter = (name: string, options: cdk.CfnParameterProps) => new cdk.CfnParameter(this, name, options);
    const namePrefix = parameter('NamePrefix', {
      type: 'String',
      default: props.namePrefix,
      allowedPattern: NAME_PREFIX_PATTERN,
      minLength: 2,
      maxLength: NAME_PREFIX_MAX_LENGTH,
      description: 'Every name the stack gives: pipelines and CodeBuild projects <prefix>-trusted and <prefix>-untrusted, event rules <prefix>-build-states, -pipeline-states, -sweep, the secret <prefix>-secrets (shards <prefix>-secrets-shard-N); work and report act on <prefix>-* (PCB_PIPELINE_PREFIX). Letters and digits only (no dash: another stack\'s <prefix>-* could match this one\'s names).',
    }).valueAsString;
    const pagureUrl = parameter('PagureUrl', {
      type: 'String', default: props.pagureUrl, allowedPattern: PAGURE_URL_PATTERN,
      description: 'The forge\'s default Pagure APP_URL, e.g. https://pagure.io/ (a registry rule may name another).',
    }).valueAsString;
    const gitUrl = parameter('GitUrl', {
      type: 'String', default: props.gitUrl, allowedPattern: GIT_URL_PATTERN,
      description: 'The forge\'s default GIT_URL_GIT, e.g. https://pagure.io (where clones come from; a rule may name another).',
    }).valueAsString;
    const sourceCidrs = parameter('SourceCidrs', {
      type: 'String', default: props.sourceCidrs, description: 'Comma-separated networks allowed to call the function URL; empty for any.',
    }).valueAsString;
    const flagUsername = parameter('FlagUsername', { type: 'String', default: props.flagUsername, description: 'The flags\' name on Pagure.' }).valueAsString;
    const alarmTopicArn = parameter('AlarmTopicArn', {
      type: 'String', default: '',
      description: 'SNS topic the stack\'s alarms notify (dead-letter queues, failures and refused triggers the functions count; docs/operations.md); empty for none.',
    }).valueAsString;
    const maximumConcurrency = parameter('MaximumConcurrency', {
      type: 'Number', default: 5, minValue: 2, maxValue: 1000,
      description: 'At most this many work functions run at once (the SQS event source\'s ScalingConfig.MaximumConcurrency); more requests wait in the queue.',
    }).valueAsNumber;
    const sweepSchedule = parameter('SweepSchedule', {
      type: 'String', default: 'rate(15 minutes)', allowedPattern: '^(rate|cron)\\([^()]+\\)$',
      description: 'How often the report function sweeps flags still pending (an EventBridge schedule expression).',
    }).valueAsString;
    const sweepAfterSeconds = parameter('SweepAfterSeconds', {
      type: 'Number', default: 3600, minValue: 300,
      description: 'The sweep settles a flag still pending this long after its pipeline started (PCB_SWEEP_AFTER_SECONDS).',
    }).valueAsString;
    const secretShards = parameter('SecretShards', {
      type: 'Number', default: 1, minValue: 1, maxValue: 200,
      description: 'How many Secrets Manager secrets hold the tokens (PCB_SECRET_SHARDS; one holds about 380 projects): shard 0 is the stack\'s secret, shard i the secret <prefix>-secrets-shard-i that `projects add` creates. May be raised later, never lowered.',
    }).valueAsString;
    // One setting for the path every CodeBuild project reads and the path the bridge writes
    // the injected buildspec at (a deploy-time parameter; the context value is its default).
    const buildSpecPath = parameter('BuildSpecPath', {
      type: 'String',
      default: props.buildSpecPath,
      allowedPattern: BUILDSPEC_PATH_PATTERN,
      description: 'Where every CodeBuild project reads its buildspec in the source archive; the bridge writes the injected buildspec at exactly this path (PCB_CODEBUILD_BUILDSPEC).',
    }).valueAsString;
    const environmentTypeParameter = parameter('CodeBuildEnvironmentType', {
      type: 'String', default: 'ARM_CONTAINER', allowedValues: ['ARM_CONTAINER', 'LINUX_CONTAINER'],
      description: 'ARM_CONTAINER (arm64) exists only in some regions (docs/admin-guide.md); LINUX_CONTAINER (x86_64) everywhere CodeBuild is.',
    });
    const imageParameter = parameter('CodeBuildImage', {
      type: 'String', default: '',
      description: `The build image; empty for AWS's Amazon Linux 2023 standard image of the environment type (${ARM_IMAGE} or ${X86_IMAGE}).`,
    });
    const computeType = parameter('CodeBuildComputeType', {
      type: 'String', default: 'BUILD_GENERAL1_SMALL',
      allowedValues: ['BUILD_GENERAL1_SMALL', 'BUILD_GENERAL1_MEDIUM', 'BUILD_GENERAL1_LARGE', 'BUILD_GENERAL1_XLARGE', 'BUILD_GENERAL1_2XLARGE'],
      description: 'Not every size exists for every environment type and region (docs/admin-guide.md).',
    }).valueAsString;
    const buildTimeout = parameter('BuildTimeoutMinutes', { type: 'Number', default: 60, minValue: 5, maxValue: 480 }).valueAsNumber;
    const buildLimitParameter = parameter('ConcurrentBuildLimit', {
      type: 'Number', default: 0, minValue: 0, maxValue: 10000,
      description: '0: no limit of the stack\'s own (builds beyond the account quota wait in CodeBuild\'s queue). N: each CodeBuild project runs at most N builds at once and CodeBuild refuses a build beyond that (its pipeline run fails).',
    });
    const logRetention = parameter('LogRetentionDays', {
      type: 'Number', default: '30', allowedValues: ['7', '14', '30', '60', '90', '180', '365', '731'],
    }).valueAsNumber;
    const sourceRetention = parameter('SourceRetentionDays', {
      type: 'Number', default: 14, minValue: 1, description: 'Source archives and pipeline artifacts are deleted after this many days.',
    }).valueAsNumber;

    const hasAlarmTopic = new cdk.CfnCondition(this, 'HasAlarmTopic', { expression: cdk.Fn.conditionNot(cdk.Fn.conditionEquals(alarmTopicArn, '')) });
    const hasBuildLimit = new cdk.CfnCondition(this, 'HasBuildLimit', {
      expression: cdk.Fn.conditionNot(cdk.Fn.conditionEquals(buildLimitParameter.valueAsString, '0')),
    });
    const defaultImage = new cdk.CfnCondition(this, 'DefaultImage', { expression: cdk.Fn.conditionEquals(imageParameter.valueAsString, '') });
    const armBuilds = new cdk.CfnCondition(this, 'ArmBuilds', {
      expression: cdk.Fn.conditionEquals(environmentTypeParameter.valueAsString, 'ARM_CONTAINER'),
    });

    const prefix = `${namePrefix}-`;
    const trustedName = `${namePrefix}-trusted`;
    const untrustedName = `${namePrefix}-untrusted`;
    // Everything the stack runs, by name prefix: the shared pair and any pipeline a rule names.
    const pipelineArns = `arn:${this.partition}:codepipeline:${this.region}:${this.account}:${prefix}*`;
    const projectArns = `arn:${this.partition}:codebuild:${this.region}:${this.account}:project/${prefix}*`;
    // Confused-deputy guard on the CodeBuild and CodePipeline roles: only this account's own
    // project or pipeline (its ARN is known from its name, without a dependency) may assume it.
    // The Lambda execution roles keep lambda.amazonaws.com plain (docs/admin-guide.md).
    const trustedBy = (service: string, sourceArn: string) => new iam.ServicePrincipal(service, {
      conditions: { StringEquals: { 'aws:SourceAccount': this.account, 'aws:SourceArn': sourceArn } },
    });
    const projectArn = (name: string) => `arn:${this.partition}:codebuild:${this.region}:${this.account}:project/${name}`;
    const pipelineArn = (name: string) => `arn:${this.partition}:codepipeline:${this.region}:${this.account}:${name}`;
    const shardArns = `arn:${this.partition}:secretsmanager:${this.region}:${this.account}:secret:${namePrefix}-secrets-shard-*`;
    const logGroup = (id: string) => {
      const group = new logs.LogGroup(this, id, {
        retention: logRetention as logs.RetentionDays,
        removalPolicy: cdk.RemovalPolicy.DESTROY,
      });
      checkovSkip(group, [LOGS_SKIP]);
      return group;
    };

    // Named, so that the functions find the shards by name (<this>-shard-i, created by
    // `projects add`, not by the stack); not ending in "-" and six characters (AWS: that would
    // confuse lookups by partial ARN).
    const secretName = `${namePrefix}-secrets`;
    const secret = new secretsmanager.Secret(this, 'BridgeSecret', {
      secretName,
      description: 'pagure-ci-bridge tokens (shard 0); layout in docs/admin-guide.md.',
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

    // Every bucket is SSE-S3, as the bridge writes every object (AES256; PCB_KMS_KEY_ID unset).
    // The artifact buckets go with the stack (scripts/teardown empties every version first: a
    // versioned bucket that is not empty cannot be deleted); the registry stays (Retain).
    const bucket = (id: string, retain = false) => {
      const b = new s3.Bucket(this, id, {
        versioned: true,
        encryption: s3.BucketEncryption.S3_MANAGED,
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        enforceSSL: true,
        objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removalPolicy: retain ? cdk.RemovalPolicy.RETAIN : cdk.RemovalPolicy.DESTROY,
        lifecycleRules: [retain ? {
          id: 'ExpireOldRegistryVersions',
          noncurrentVersionExpiration: cdk.Duration.days(90),
          abortIncompleteMultipartUploadAfter: cdk.Duration.days(1),
        } : {
          expiration: cdk.Duration.days(sourceRetention),
          noncurrentVersionExpiration: cdk.Duration.days(1),
          abortIncompleteMultipartUploadAfter: cdk.Duration.days(1),
        }],
      });
      checkovSkip(b, [['CKV_AWS_18', 'Only the bridge, its admin CLI, CodePipeline and CodeBuild write here; CloudTrail records it.']]);
      acknowledge(b, 'AwsSolutions::AwsSolutions-S1', 'Only the bridge, its admin CLI, CodePipeline and CodeBuild write here; CloudTrail records it. Access logs would need another bucket.');
      return b;
    };
    const artifacts = bucket('ArtifactBucket');
    const stageArtifacts = bucket('StageArtifactBucket');
    // The untrusted pipeline's artifact store: SSE-S3, so its build role needs no KMS grant.
    const untrustedArtifacts = bucket('UntrustedArtifactBucket');
    // The project registry (registry.json): written by `pagure-ci-bridge projects`, read by the
    // three functions. S3, not SSM: a parameter holds at most 8 KB, a forge's registry 10,000+ rules.
    const registry = bucket('RegistryBucket', true);
    const registryObject = registry.arnForObjects(REGISTRY_KEY);

    const environment: Record<string, string> = {
      RUST_LOG: 'info',
      // The base secret's NAME (shard i is the secret named <it>-shard-i), not its ARN.
      PCB_SECRET_ID: secretName,
      PCB_SECRET_SHARDS: secretShards,
      PCB_FLAG_USERNAME: flagUsername,
      PCB_REGISTRY_BUCKET: registry.bucketName,
      PCB_REGISTRY_KEY: REGISTRY_KEY,
      PCB_REGISTRY_TTL_SECONDS: '60',
      PCB_PAGURE_URL: pagureUrl,
      PCB_GIT_URL: gitUrl,
      PCB_PIPELINE_PREFIX: prefix,
    };

    const rustFunction = (id: string, binary: string, extra: Partial<lambda.FunctionOptions>) => {
      const group = logGroup(`${id}Logs`);
      // Its own role: logs to its own group only (no managed policy with logs:* on *).
      const role = new iam.Role(this, `${id}Role`, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
      role.addToPolicy(new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [group.logGroupArn],
      }));
      const fn = new RustFunction(this, id, {
        memorySize: 256,
        ...extra,
        manifestPath: path.join(workspace, 'Cargo.toml'),
        binaryName: binary,
        architecture: lambda.Architecture.ARM_64,
        role,
        logGroup: group,
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
      // The stack's secret (shard 0) and the shards `projects add` creates (their ARN ends in a
      // random 6-character suffix).
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['secretsmanager:GetSecretValue'], resources: [secret.secretArn, shardArns] }));
      // The registry object, nothing else of its bucket; ListBucket so that a registry not
      // written yet reads as 404 (absent), not 403.
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [registryObject] }));
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [registry.bucketArn] }));
      return fn;
    };

    const accept = rustFunction('AcceptFunction', 'accept', {
      description: 'pagure-ci-bridge accept: authenticates and queues triggers.',
      timeout: cdk.Duration.seconds(10),
      environment: { PCB_QUEUE_URL: queue.queueUrl, PCB_SOURCE_CIDRS: sourceCidrs },
    });
    accept.addToRolePolicy(new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [queue.queueArn] }));
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
        PCB_KEY_PREFIX: KEY_PREFIX,
        PCB_SOURCE_ACTION: 'Source',
        PCB_MAX_RECEIVE_COUNT: String(MAX_RECEIVE_COUNT),
        PCB_FETCH_TIMEOUT_SECONDS: '240',
        // The path every CodeBuild project reads (source.buildSpec): the same parameter.
        PCB_CODEBUILD_BUILDSPEC: buildSpecPath,
        // A transient failure is retried after 30 s, then twice as long each time up to 900 s
        // (ChangeMessageVisibility on the record), not after the queue's visibility timeout.
        PCB_QUEUE_URL: queue.queueUrl,
        PCB_RETRY_FIRST_SECONDS: '30',
        PCB_RETRY_MAX_SECONDS: '900',
      },
    });
    work.addEventSource(new SqsEventSource(queue, { batchSize: 5, reportBatchItemFailures: true, maxConcurrency: maximumConcurrency }));
    work.addToRolePolicy(new iam.PolicyStatement({
      actions: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload'],
      resources: [artifacts.arnForObjects(`${KEY_PREFIX}/*`)],
    }));
    // Unconditional: S3 answers a GetObject of a missing key (the `.started` marker) with 404
    // only to a caller that may ListBucket; a GetObject request carries no s3:prefix key, so a
    // prefix-conditioned grant would turn "absent" into 403.
    work.addToRolePolicy(new iam.PolicyStatement({
      actions: ['s3:ListBucket'],
      resources: [artifacts.bucketArn],
    }));
    work.addToRolePolicy(new iam.PolicyStatement({ actions: ['codepipeline:StartPipelineExecution'], resources: [pipelineArns] }));
    work.addToRolePolicy(new iam.PolicyStatement({ actions: ['sqs:ChangeMessageVisibility'], resources: [queue.queueArn] }));

    const report = rustFunction('ReportFunction', 'report', {
      description: 'pagure-ci-bridge report: CodeBuild and CodePipeline state changes become Pagure flags; sweeps flags still pending.',
      timeout: cdk.Duration.seconds(60),
      deadLetterQueue: reportDeadLetters,
      retryAttempts: 2,
      maxEventAge: cdk.Duration.hours(6),
      environment: {
        // The sweep: `.started` markers under <PCB_BUCKET>/<PCB_KEY_PREFIX>/<project>/ older
        // than this with no `.settled` one are settled from the pipeline's and build's state.
        PCB_BUCKET: artifacts.bucketName,
        PCB_KEY_PREFIX: KEY_PREFIX,
        PCB_SWEEP_AFTER_SECONDS: sweepAfterSeconds,
      },
    });
    report.addToRolePolicy(new iam.PolicyStatement({
      actions: ['codepipeline:GetPipelineExecution', 'codepipeline:ListActionExecutions', 'codepipeline:RetryStageExecution'],
      resources: [pipelineArns],
    }));
    report.addToRolePolicy(new iam.PolicyStatement({ actions: ['codebuild:BatchGetBuilds'], resources: [projectArns] }));
    report.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [artifacts.bucketArn] }));
    // The markers and the cursor (bridge_core::sweep's layout); and the archives' metadata: the
    // sweep reads a request's from its archive with HeadObject, which needs s3:GetObject.
    const sweepCursor = artifacts.arnForObjects(`${KEY_PREFIX}/.sweep/cursor`);
    report.addToRolePolicy(new iam.PolicyStatement({
      actions: ['s3:GetObject'],
      resources: [
        artifacts.arnForObjects(`${KEY_PREFIX}/*.started`), artifacts.arnForObjects(`${KEY_PREFIX}/*.settled`), sweepCursor,
        artifacts.arnForObjects(`${KEY_PREFIX}/*.zip`),
      ],
    }));
    // Its own markers, and where the last sweep stopped.
    report.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [artifacts.arnForObjects(`${KEY_PREFIX}/*.settled`), sweepCursor] }));
    // Wildcards that are scoped to this stack's own resources, each acknowledged exactly.
    const arnOf = (b: s3.Bucket) => `<${this.getLogicalId(b.node.defaultChild as cdk.CfnElement)}.Arn>`;
    const iam5 = (scope: Construct, resource: string, reason: string) =>
      acknowledge(scope, `AwsSolutions::AwsSolutions-IAM5[Resource::${resource}]`, reason);
    const ownPipelines = 'arn:<AWS::Partition>:codepipeline:<AWS::Region>:<AWS::AccountId>:<NamePrefix>-*';
    const ownProjects = 'arn:<AWS::Partition>:codebuild:<AWS::Region>:<AWS::AccountId>:project/<NamePrefix>-*';
    const sources = `${arnOf(artifacts)}/${KEY_PREFIX}/*`;
    iam5(work.role!, sources, 'The source archives and markers it writes: objects under sources/ of its own bucket.');
    for (const role of [work.role!, report.role!]) {
      iam5(role, ownPipelines, 'The pipelines of this stack, by name prefix (the shared pair and any a registry rule names).');
    }
    iam5(report.role!, ownProjects, 'The CodeBuild projects of this stack, by name prefix (the sweep reads their builds).');
    iam5(report.role!, `${sources}.started`, 'The sweep reads the work stage\'s markers, no source archive.');
    iam5(report.role!, `${sources}.settled`, 'The sweep reads and writes its own markers, no source archive.');
    iam5(report.role!, `${sources}.zip`, 'The sweep reads an archive\'s metadata (HeadObject needs s3:GetObject).');
    for (const fn of [accept, work, report]) {
      iam5(fn.role!, 'arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:secret:<NamePrefix>-secrets-shard-*',
        'The shards of the stack\'s secret (SecretShards), created by `projects add`; their ARN ends in a random suffix.');
    }

    // The shared trusted pipeline.
    const buildLogs = logGroup('BuildLogs');
    const buildRole = new iam.Role(this, 'BuildRole', { assumedBy: trustedBy('codebuild.amazonaws.com', projectArn(trustedName)) });
    buildRole.addToPolicy(new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [buildLogs.logGroupArn] }));
    buildRole.addToPolicy(new iam.PolicyStatement({
      actions: ['s3:GetObject', 's3:GetObjectVersion', 's3:PutObject'],
      resources: [stageArtifacts.arnForObjects('*')],
    }));
    buildRole.addToPolicy(new iam.PolicyStatement({ actions: ['s3:GetBucketAcl', 's3:GetBucketLocation'], resources: [stageArtifacts.bucketArn] }));
    const buildEnvironment = {
      type: environmentTypeParameter.valueAsString,
      image: cdk.Fn.conditionIf(defaultImage.logicalId, cdk.Fn.conditionIf(armBuilds.logicalId, ARM_IMAGE, X86_IMAGE), imageParameter.valueAsString).toString(),
      computeType,
      privilegedMode: false,
    };
    const concurrentBuildLimit = cdk.Token.asNumber(cdk.Fn.conditionIf(hasBuildLimit.logicalId, buildLimitParameter.valueAsNumber, cdk.Aws.NO_VALUE));
    const buildProject = new codebuild.CfnProject(this, 'BuildProject', {
      name: trustedName,
      description: 'Trusted builds of every project of the registry (pushes, committers\' and approved pull requests)',
      serviceRole: buildRole.roleArn,
      // The bridge writes the injected buildspec at exactly this path (PCB_CODEBUILD_BUILDSPEC).
      source: { type: 'CODEPIPELINE', buildSpec: buildSpecPath },
      artifacts: { type: 'CODEPIPELINE' },
      environment: buildEnvironment,
      timeoutInMinutes: buildTimeout,
      concurrentBuildLimit,
      encryptionKey: `arn:${this.partition}:kms:${this.region}:${this.account}:alias/aws/s3`,
      logsConfig: { cloudWatchLogs: { status: 'ENABLED', groupName: buildLogs.logGroupName } },
    });

    // A pipeline's service role, the same for both pipelines: it reads the bridge's source
    // archives, reads and writes its own artifact store, and runs its own CodeBuild project.
    const newPipelineRole = (id: string, name: string, store: s3.Bucket, project: codebuild.CfnProject, storeLabel: string) => {
      const role = new iam.Role(this, id, { assumedBy: trustedBy('codepipeline.amazonaws.com', pipelineArn(name)) });
      role.addToPolicy(new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:GetObjectVersion', 's3:GetBucketVersioning'],
        resources: [artifacts.bucketArn, artifacts.arnForObjects(`${KEY_PREFIX}/*`)],
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
    const pipelineRole = newPipelineRole('PipelineRole', trustedName, stageArtifacts, buildProject, 'the stack\'s own stage-artifact bucket');
    iam5(buildRole, `${arnOf(stageArtifacts)}/*`, 'Objects of the stack\'s own stage-artifact bucket (CodePipeline names them).');
    const actionVariables = [
      ...PIPELINE_VARIABLES.map((name) => ({ name, value: `#{variables.${name}}`, type: 'PLAINTEXT' })),
      { name: 'PAGURE_PIPELINE_EXECUTION_ID', value: '#{codepipeline.PipelineExecutionId}', type: 'PLAINTEXT' },
    ];
    // Both pipelines: the bridge's source bucket and key scheme (the work function overrides
    // S3_OBJECT_KEY on the action named `Source`, so the configured key is a placeholder), then
    // one CodeBuild action without output artifacts, given PLAINTEXT variables only.
    const newPipeline = (id: string, name: string, role: iam.Role, store: s3.Bucket, project: codebuild.CfnProject) =>
      new codepipeline.CfnPipeline(this, id, {
        name,
        pipelineType: 'V2',
        // Each run names its own archive (a key per request): runs never race on one object,
        // and one project's run never supersedes another's on the shared pipeline.
        executionMode: 'PARALLEL',
        roleArn: role.roleArn,
        artifactStore: { type: 'S3', location: store.bucketName },
        // A run started by hand carries these defaults (bridge_core::buildspec::MANUAL_RUN): ignored by report.
        variables: PIPELINE_VARIABLES.map((variable) => ({ name: variable, defaultValue: 'manual' })),
        stages: [
          {
            name: 'Source',
            actions: [{
              name: 'Source',
              actionTypeId: { category: 'Source', owner: 'AWS', provider: 'S3', version: '1' },
              configuration: {
                S3Bucket: artifacts.bucketName,
                S3ObjectKey: `${KEY_PREFIX}/overridden-per-run.zip`,
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
    const pipeline = newPipeline('Pipeline', trustedName, pipelineRole, stageArtifacts, buildProject);

    // The shared untrusted pipeline: pull requests whose author may not commit to the target
    // branch. Its build role can write its own logs and read its own artifact bucket's
    // objects (the source zip), nothing else: no secret, no parameter, no KMS key, no other
    // bucket; the project has no environment variables, no VPC, and is not privileged.
    const untrustedLogs = logGroup('UntrustedBuildLogs');
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
      description: 'Untrusted builds of every project of the registry (pull requests of authors without commit access); no secrets, logs and source only',
      serviceRole: untrustedBuildRole.roleArn,
      // The same parameter as the trusted project and the bridge's PCB_CODEBUILD_BUILDSPEC.
      source: { type: 'CODEPIPELINE', buildSpec: buildSpecPath },
      artifacts: { type: 'CODEPIPELINE' },
      environment: buildEnvironment,
      timeoutInMinutes: buildTimeout,
      concurrentBuildLimit,
      encryptionKey: `arn:${this.partition}:kms:${this.region}:${this.account}:alias/aws/s3`,
      logsConfig: { cloudWatchLogs: { status: 'ENABLED', groupName: untrustedLogs.logGroupName } },
    });
    for (const project of [buildProject, untrustedProject]) {
      acknowledge(project, 'AwsSolutions::AwsSolutions-CB5', 'AWS\'s standard image of the environment type unless the admin names another (CodeBuildImage); cdk-nag cannot read the condition.');
    }
    const untrustedPipelineRole = newPipelineRole(
      'UntrustedPipelineRole', untrustedName, untrustedArtifacts, untrustedProject, 'the untrusted pipeline\'s own artifact bucket');
    iam5(untrustedBuildRole, `${arnOf(untrustedArtifacts)}/*`, 'Objects of the untrusted pipeline\'s own artifact bucket: the source zip of the build (CodePipeline names them).');
    const untrustedPipeline = newPipeline('UntrustedPipeline', untrustedName, untrustedPipelineRole, untrustedArtifacts, untrustedProject);
    // The shared pair every registry rule defaults to.
    for (const fn of [accept, work, report]) {
      fn.addEnvironment('PCB_PIPELINE', pipeline.ref);
      fn.addEnvironment('PCB_UNTRUSTED_PIPELINE', untrustedPipeline.ref);
    }

    // The report rules hear every project and pipeline of the stack by name prefix, never by a list.
    const ruleTarget = new targets.LambdaFunction(report, { deadLetterQueue: reportDeadLetters, retryAttempts: 10 });
    new events.Rule(this, 'BuildStates', {
      ruleName: `${namePrefix}-build-states`,
      eventPattern: {
        source: ['aws.codebuild'],
        detailType: ['CodeBuild Build State Change'],
        detail: { 'project-name': events.Match.prefix(prefix) },
      },
      targets: [ruleTarget],
    });
    new events.Rule(this, 'PipelineStates', {
      ruleName: `${namePrefix}-pipeline-states`,
      eventPattern: {
        source: ['aws.codepipeline'],
        detailType: ['CodePipeline Pipeline Execution State Change'],
        detail: { pipeline: events.Match.prefix(prefix), state: ['SUCCEEDED', 'FAILED', 'STOPPED', 'SUPERSEDED', 'CANCELED'] },
      },
      targets: [ruleTarget],
    });
    // Events are best effort: the sweep settles flags still pending after PCB_SWEEP_AFTER_SECONDS.
    new events.Rule(this, 'Sweep', {
      ruleName: `${namePrefix}-sweep`,
      description: 'pagure-ci-bridge sweep of flags still pending',
      schedule: events.Schedule.expression(sweepSchedule),
      targets: [new targets.LambdaFunction(report)],
    });

    // Every alarm notifies AlarmTopicArn, if set; none is breached by missing data.
    const alarm = (id: string, what: string, metric: cloudwatch.IMetric, threshold: number, comparisonOperator: cloudwatch.ComparisonOperator) => {
      const created = new cloudwatch.Alarm(this, id, {
        alarmDescription: what,
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      (created.node.defaultChild as cloudwatch.CfnAlarm).addPropertyOverride(
        'AlarmActions', cdk.Fn.conditionIf(hasAlarmTopic.logicalId, [alarmTopicArn], cdk.Aws.NO_VALUE));
      acknowledge(created, 'CloudFormation-Validate::W1030', 'The topic is used only when AlarmTopicArn is set (HasAlarmTopic); the validator does not evaluate the condition.');
    };
    for (const [alarmId, dlq, what] of [
      ['BuildDeadLetterAlarm', deadLetters, 'A build request failed for good (its reason is in the work function\'s logs); see docs/operations.md to redrive.'],
      ['ReportDeadLetterAlarm', reportDeadLetters, 'A build state could not be posted on Pagure (Pagure down, or a token refused); see docs/operations.md.'],
    ] as const) {
      alarm(alarmId, what, dlq.metricApproximateNumberOfMessagesVisible({ period: cdk.Duration.minutes(5), statistic: 'Maximum' }),
        0, cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD);
    }
    // Alarms on the bridge's own metrics: the functions write embedded-metric-format log lines,
    // namespace PagureCiBridge, dimension FunctionName = the function's own name
    // (AWS_LAMBDA_FUNCTION_NAME), plus Class or Reason where the contract has them
    // (docs/operations.md lists every metric). An alarm names the exact dimension set a metric
    // is written with, or it never sees a value.
    const bridgeAlarms: [string, lambda.IFunction, string, Record<string, string>, number, number, string][] = [
      ['WorkTerminalFailureAlarm', work, 'Failures', { Class: 'terminal' }, 5, 1,
        'A build request failed for good and its commit got an error flag on Pagure (Failures of the work function, Class terminal); the reason is in the work function\'s logs, see docs/operations.md.'],
      ['WorkTransientFailureAlarm', work, 'Failures', { Class: 'transient' }, 15, 10,
        '10 or more transient failures of build requests in 15 minutes, each waiting for a retry (Failures of the work function, Class transient); git, S3 or CodePipeline may be failing, see docs/operations.md.'],
      ['ReportTerminalFailureAlarm', report, 'Failures', { Class: 'terminal' }, 5, 1,
        'A flag could not be posted on Pagure for good, so a commit or pull request shows a stale state (Failures of the report function, Class terminal); see docs/operations.md.'],
      ['AcceptUnavailableAlarm', accept, 'RequestsRefused', { Class: 'server' }, 5, 1,
        'The accept function answered a trigger with a 5xx (queue full or unavailable, Secrets Manager or the registry unreachable; RequestsRefused, Class server); Pagure never retries, so that build is lost until pushed again, see docs/operations.md.'],
      ['AcceptInvalidSignatureAlarm', accept, 'RequestsRefused', { Reason: 'invalid_signature' }, 15, 10,
        '10 or more web-hook calls with an invalid signature in 15 minutes (RequestsRefused, Reason invalid_signature); a forged hook, or a web-hook key rotated in Pagure but not in the secret, see docs/operations.md.'],
    ];
    for (const [alarmId, fn, metricName, dimensions, minutes, threshold, what] of bridgeAlarms) {
      const metric = new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        dimensionsMap: { FunctionName: fn.functionName, ...dimensions },
        statistic: cloudwatch.Stats.SUM,
        period: cdk.Duration.minutes(minutes),
      });
      alarm(alarmId, what, metric, threshold, cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD);
    }

    // The same outputs as the SAM template.
    const output = (name: string, value: string, description?: string) => new cdk.CfnOutput(this, name, { value, description });
    output('PagureCiUrl', url.url, 'Paste into Pagure, Settings → Hooks → Pagure CI, type jenkins, as the URL; the job name is the project\'s key (`projects add` prints both).');
    output('WebhookUrlPrefix', `${url.url}webhook/`, 'Or, as a project web-hook (Settings → Project options → Web-hooks), this followed by the project\'s key.');
    output('SecretName', secretName, 'The tokens\' secret, by name (shard 0; shard i is <it>-shard-i; layout in docs/admin-guide.md); `projects add --secret-id`.');
    output('RegistryBucketName', registry.bucketName, 'The project registry\'s bucket (object registry.json); `projects add --registry-bucket`.');
    output('CliEnvironment', [
      `export AWS_REGION=${this.region}`,
      `PCB_REGISTRY_BUCKET=${registry.bucketName}`,
      `PCB_REGISTRY_KEY=${REGISTRY_KEY}`,
      `PCB_SECRET_ID=${secretName}`,
      `PCB_SECRET_SHARDS=${secretShards}`,
      `PCB_PAGURE_URL=${pagureUrl}`,
      `PCB_GIT_URL=${gitUrl}`,
      `PCB_PIPELINE=${pipeline.ref}`,
      `PCB_UNTRUSTED_PIPELINE=${untrustedPipeline.ref}`,
      `PCB_PIPELINE_PREFIX=${prefix}`,
    ].join(' '), 'Paste into a shell with the admin\'s AWS credentials, then run `pagure-ci-bridge projects add|list|check|remove`.');
    output('ArtifactBucketName', artifacts.bucketName);
    output('PipelinePrefix', prefix, 'Every pipeline a registry rule names must start with this (PCB_PIPELINE_PREFIX).');
    output('PipelineName', pipeline.ref, 'The shared trusted pipeline (pushes, and pull requests whose author may commit to the target branch).');
    output('UntrustedPipelineName', untrustedPipeline.ref, 'The shared untrusted pipeline; every other pull request builds here, without secrets.');
    output('BuildDeadLetterQueueUrl', deadLetters.queueUrl);
    output('ReportDeadLetterQueueUrl', reportDeadLetters.queueUrl);
  }
}
