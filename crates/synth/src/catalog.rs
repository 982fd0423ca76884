//! Static catalogues: API calls, user agents, names. Order is part of the determinism contract.

/// One CloudTrail management API call shape.
#[derive(Debug)]
pub struct Api {
    /// `eventSource`, e.g. `ec2.amazonaws.com`.
    pub source: &'static str,
    /// `eventName`.
    pub name: &'static str,
    /// `readOnly`.
    pub read_only: bool,
    /// Served by a global endpoint (logged in us-east-1).
    pub global: bool,
    /// `requestParameters` as literal JSON (`null` for none).
    pub params: &'static str,
    /// `responseElements` as literal JSON (`null` for none, as CloudTrail logs most reads).
    pub response: &'static str,
}

const fn api(
    source: &'static str,
    name: &'static str,
    read_only: bool,
    global: bool,
    params: &'static str,
    response: &'static str,
) -> Api {
    Api {
        source,
        name,
        read_only,
        global,
        params,
        response,
    }
}

/// What people do: mostly reads, a few writes.
pub static HUMAN_APIS: &[Api] = &[
    api(
        "ec2.amazonaws.com",
        "DescribeInstances",
        true,
        false,
        r#"{"instancesSet":{},"filterSet":{}}"#,
        "null",
    ),
    api(
        "ec2.amazonaws.com",
        "DescribeSecurityGroups",
        true,
        false,
        r#"{"securityGroupSet":{},"securityGroupIdSet":{},"filterSet":{}}"#,
        "null",
    ),
    api(
        "ec2.amazonaws.com",
        "DescribeVpcs",
        true,
        false,
        r#"{"vpcSet":{},"filterSet":{}}"#,
        "null",
    ),
    api(
        "s3.amazonaws.com",
        "ListBuckets",
        true,
        false,
        r#"{"Host":"s3.amazonaws.com"}"#,
        "null",
    ),
    api(
        "s3.amazonaws.com",
        "GetBucketPolicy",
        true,
        false,
        r#"{"bucketName":"app-artifacts","Host":"app-artifacts.s3.amazonaws.com","policy":""}"#,
        "null",
    ),
    api("iam.amazonaws.com", "ListUsers", true, true, "null", "null"),
    api("iam.amazonaws.com", "ListRoles", true, true, "null", "null"),
    api(
        "iam.amazonaws.com",
        "GetAccountSummary",
        true,
        true,
        "null",
        "null",
    ),
    api(
        "sts.amazonaws.com",
        "GetCallerIdentity",
        true,
        true,
        "null",
        "null",
    ),
    api(
        "cloudformation.amazonaws.com",
        "DescribeStacks",
        true,
        false,
        "null",
        "null",
    ),
    api(
        "logs.amazonaws.com",
        "DescribeLogGroups",
        true,
        false,
        r#"{"limit":50}"#,
        "null",
    ),
    api(
        "logs.amazonaws.com",
        "FilterLogEvents",
        true,
        false,
        r#"{"logGroupName":"/aws/lambda/orders-api","limit":100}"#,
        "null",
    ),
    api(
        "lambda.amazonaws.com",
        "ListFunctions20150331",
        true,
        false,
        "null",
        "null",
    ),
    api(
        "dynamodb.amazonaws.com",
        "ListTables",
        true,
        false,
        "null",
        "null",
    ),
    api(
        "ssm.amazonaws.com",
        "GetParameter",
        true,
        false,
        r#"{"name":"/app/config/feature-flags","withDecryption":false}"#,
        "null",
    ),
    api("kms.amazonaws.com", "ListKeys", true, false, "null", "null"),
    api(
        "cloudtrail.amazonaws.com",
        "LookupEvents",
        true,
        false,
        r#"{"maxResults":50}"#,
        "null",
    ),
    api(
        "ecr.amazonaws.com",
        "GetAuthorizationToken",
        true,
        false,
        r#"{"registryIds":[]}"#,
        "null",
    ),
    api(
        "ec2.amazonaws.com",
        "StartInstances",
        false,
        false,
        r#"{"instancesSet":{"items":[{"instanceId":"i-0a1b2c3d4e5f60718"}]}}"#,
        r#"{"requestId":"00000000-0000-4000-8000-000000000000","instancesSet":{"items":[{"instanceId":"i-0a1b2c3d4e5f60718","currentState":{"code":0,"name":"pending"},"previousState":{"code":80,"name":"stopped"}}]}}"#,
    ),
    api(
        "lambda.amazonaws.com",
        "UpdateFunctionCode20150331v2",
        false,
        false,
        r#"{"functionName":"orders-api","publish":true}"#,
        r#"{"functionName":"orders-api","state":"Active"}"#,
    ),
    api(
        "s3.amazonaws.com",
        "PutBucketTagging",
        false,
        false,
        r#"{"bucketName":"app-artifacts","Host":"app-artifacts.s3.amazonaws.com","tagging":""}"#,
        "null",
    ),
];

/// Console sign-in, logged by `signin.amazonaws.com` as `AwsConsoleSignIn`.
pub static CONSOLE_LOGIN: Api = api(
    "signin.amazonaws.com",
    "ConsoleLogin",
    false,
    true,
    "null",
    r#"{"ConsoleLogin":"Success"}"#,
);

/// What automation does: credentials, config, telemetry.
pub static AUTOMATION_APIS: &[Api] = &[
    api(
        "sts.amazonaws.com",
        "GetCallerIdentity",
        true,
        true,
        "null",
        "null",
    ),
    api(
        "ssm.amazonaws.com",
        "GetParameter",
        true,
        false,
        r#"{"name":"/app/prod/db-host","withDecryption":true}"#,
        "null",
    ),
    api(
        "kms.amazonaws.com",
        "Decrypt",
        true,
        false,
        r#"{"encryptionAlgorithm":"SYMMETRIC_DEFAULT"}"#,
        "null",
    ),
    api(
        "secretsmanager.amazonaws.com",
        "GetSecretValue",
        true,
        false,
        r#"{"secretId":"prod/orders/db"}"#,
        "null",
    ),
    api(
        "ec2.amazonaws.com",
        "DescribeInstances",
        true,
        false,
        r#"{"instancesSet":{},"filterSet":{"items":[{"name":"tag:team","valueSet":{"items":[{"value":"platform"}]}}]}}"#,
        "null",
    ),
    api(
        "ecr.amazonaws.com",
        "GetAuthorizationToken",
        true,
        false,
        r#"{"registryIds":[]}"#,
        "null",
    ),
    api(
        "logs.amazonaws.com",
        "CreateLogStream",
        false,
        false,
        r#"{"logGroupName":"/app/orders","logStreamName":"worker-1"}"#,
        "null",
    ),
    api(
        "dynamodb.amazonaws.com",
        "DescribeTable",
        true,
        false,
        r#"{"tableName":"orders"}"#,
        "null",
    ),
    api(
        "s3.amazonaws.com",
        "GetBucketLocation",
        true,
        false,
        r#"{"bucketName":"app-artifacts","Host":"app-artifacts.s3.amazonaws.com","location":""}"#,
        "null",
    ),
    api(
        "autoscaling.amazonaws.com",
        "DescribeAutoScalingGroups",
        true,
        false,
        "null",
        "null",
    ),
];

/// Calls AWS services make on the account's behalf.
pub static SERVICE_APIS: &[Api] = &[
    api(
        "sts.amazonaws.com",
        "AssumeRole",
        true,
        false,
        r#"{"roleSessionName":"service-session","durationSeconds":3600}"#,
        r#"{"credentials":{"accessKeyId":"ASIAEXAMPLESERVICE00","sessionToken":"HIDDEN","expiration":"Jan 1, 2030, 12:00:00 AM"}}"#,
    ),
    api(
        "kms.amazonaws.com",
        "GenerateDataKey",
        true,
        false,
        r#"{"keySpec":"AES_256","encryptionContext":{"aws:cloudtrail:arn":"arn:aws:cloudtrail:us-east-1:000000000000:trail/org-trail"}}"#,
        "null",
    ),
    api(
        "ec2.amazonaws.com",
        "DescribeVolumes",
        true,
        false,
        r#"{"volumeSet":{},"filterSet":{}}"#,
        "null",
    ),
    api(
        "config.amazonaws.com",
        "PutEvaluations",
        false,
        false,
        "null",
        "null",
    ),
    api(
        "iam.amazonaws.com",
        "GetRole",
        true,
        true,
        r#"{"roleName":"AWSServiceRoleForConfig"}"#,
        "null",
    ),
];

/// `(service host, service-linked role name, session name)`; the host is also the `invokedBy` /
/// `sourceIPAddress` / `userAgent` of the service's calls.
pub static SERVICES: &[(&str, &str, &str)] = &[
    (
        "config.amazonaws.com",
        "AWSServiceRoleForConfig",
        "AWSConfig-Describe",
    ),
    (
        "access-analyzer.amazonaws.com",
        "AWSServiceRoleForAccessAnalyzer",
        "access-analyzer",
    ),
    (
        "trustedadvisor.amazonaws.com",
        "AWSServiceRoleForTrustedAdvisor",
        "TrustedAdvisor",
    ),
    (
        "cloudtrail.amazonaws.com",
        "AWSServiceRoleForCloudTrail",
        "CloudTrailLogDelivery",
    ),
    (
        "ec2.amazonaws.com",
        "AWSServiceRoleForAutoScaling",
        "AutoScaling",
    ),
    (
        "lambda.amazonaws.com",
        "AWSServiceRoleForLambdaReplicator",
        "LambdaReplicator",
    ),
];

/// Command-line and SDK user agents people use.
pub static CLI_AGENTS: &[&str] = &[
    "aws-cli/2.15.30 Python/3.11.8 Darwin/23.4.0 exe/x86_64 prompt/off command/ec2.describe-instances",
    "aws-cli/2.17.4 md/awscrt#0.20.11 ua/2.0 os/linux#6.5.0-1020-aws md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/distrib#ubuntu.22 md/prompt#off md/command#s3.ls",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/macos#23.4.0 md/arch#arm64 lang/python#3.12.2 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69",
    "APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/5.42.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.26.0 os/macos lang/go#1.22.1 md/GOOS#darwin md/GOARCH#arm64 api/ec2#1.152.0",
    "aws-cli/1.32.69 Python/3.10.12 Linux/5.15.0-101-generic botocore/1.34.69",
];

/// Browsers, for console sessions.
pub static BROWSER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
];

/// SDKs running in automation.
pub static AUTOMATION_AGENTS: &[&str] = &[
    "Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#5.10.213-201.855.amzn2.x86_64 md/arch#x86_64 lang/python#3.11.9 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.84",
    "aws-sdk-go/1.51.21 (go1.22.2; linux; amd64)",
    "aws-sdk-java/2.25.10 Linux/5.10.210-201.852.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10 vendor/Amazon.com_Inc. md/internal exec-env/AWS_ECS_EC2 io/sync http/Apache cfg/retry-mode/legacy",
    "aws-sdk-rust/1.1.8 os/linux lang/rust/1.77.2",
    "aws-sdk-nodejs/2.1595.0 linux/v18.20.2 exec-env/AWS_Lambda_nodejs18.x",
];

/// First names for generated people.
pub static FIRST_NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "uma", "victor", "wendy", "xavier",
    "yusuf", "zoe", "amara", "bruno", "chen", "dmitri", "elena", "farah", "goran", "hana", "ines",
    "jonas", "kenji", "lucia", "mateo", "nadia", "oskar", "priya", "quentin", "rosa", "sven",
    "tariq", "ursula",
];

/// Last names for generated people.
pub static LAST_NAMES: &[&str] = &[
    "smith",
    "jones",
    "garcia",
    "muller",
    "martin",
    "rossi",
    "tanaka",
    "kumar",
    "silva",
    "nguyen",
    "kowalski",
    "novak",
    "johansson",
    "dubois",
    "schmidt",
    "yamamoto",
    "patel",
    "costa",
    "ivanova",
    "oconnor",
    "murphy",
    "fischer",
    "lopez",
    "hansen",
    "berg",
    "sato",
    "singh",
    "moreau",
    "weber",
];

/// Automation role names.
pub static AUTOMATION_ROLES: &[&str] = &[
    "ci-deploy",
    "etl-runner",
    "backup-agent",
    "inventory-collector",
    "orders-api-task",
    "metrics-poller",
    "log-shipper",
    "nightly-reports",
    "k8s-node-role",
    "patch-manager",
];

/// Account names, cycled.
pub static ACCOUNT_NAMES: &[&str] = &[
    "prod",
    "dev",
    "security",
    "shared-services",
    "staging",
    "sandbox",
    "data",
    "network",
];
