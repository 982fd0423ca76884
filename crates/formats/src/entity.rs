//! The entity half of the tuple contract, identical for CloudTrail, GuardDuty and OCSF.

/// Normalise a principal into the IP Insights entity.
///
/// * AssumedRole (`AROA…:session`): the session suffix is cut. Sessions are per-login
///   (`i-0abc…`, `botocore-session-123`), so keeping them would make every session a new, unknown
///   entity. GuardDuty's `accessKeyDetails.principalId` carries the same suffix and goes through the
///   same function, which is what makes role findings match the trained entities. A principal id that
///   starts with `AROA` is treated as a role whatever the type field says, because GuardDuty and
///   cross-account (`AWSAccount`) records name the type differently.
/// * FederatedUser (`123456789012:name`) is kept whole: the name is the identity.
/// * Root: the account id (CloudTrail's root `principalId` is the account id; `account_id` is the
///   fallback when it is missing).
/// * Anything else with a principal id: the id as is. No principal id: `None` (no tuple).
pub fn normalise_entity(
    identity_type: Option<&str>,
    principal_id: Option<&str>,
    account_id: Option<&str>,
) -> Option<String> {
    let pid = principal_id.map(str::trim).filter(|p| !p.is_empty());
    match (identity_type, pid) {
        (Some("Root"), None) => account_id
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned),
        (_, None) => None,
        (Some("FederatedUser"), Some(p)) => Some(p.to_owned()),
        // A malformed id such as `:session` leaves nothing once the session is cut: no principal,
        // rather than an empty entity that would merge every such record into one (found by fuzzing).
        (t, Some(p)) if t == Some("AssumedRole") || p.starts_with("AROA") => {
            let role = p.split_once(':').map_or(p, |(role, _session)| role).trim();
            (!role.is_empty()).then(|| role.to_owned())
        }
        (_, Some(p)) => Some(p.to_owned()),
    }
}

/// The IAM principal id behind an EKS (Kubernetes) user id: `aws-iam-authenticator:<account>:<principal
/// id>` (`heptio-authenticator-aws:` on older clusters), as EKS audit logs, their OCSF translation
/// and GuardDuty's EKS findings name it. CloudTrail names the same identity by that principal id,
/// so EKS activity and the trained entities meet. Other Kubernetes users (service accounts,
/// certificates, `system:anonymous`) are not IAM principals: `None`.
pub fn eks_principal_id(uid: &str) -> Option<&str> {
    let (authenticator, rest) = uid.trim().split_once(':')?;
    if !matches!(
        authenticator,
        "aws-iam-authenticator" | "heptio-authenticator-aws"
    ) {
        return None;
    }
    let (_account, principal) = rest.split_once(':')?;
    Some(principal.trim()).filter(|p| !p.is_empty())
}

/// What a tuple's entity is: the principal (the default, as in the AWS samples), or another class of
/// behaviour IP Insights can learn normal addresses for. The preparer, the extractor and ipcheck build
/// entities with the same kind, and the model file records the kind it was trained on, so scoring
/// with another definition is refused instead of silently scoring strangers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum EntityKind {
    /// The normalised principal id ([`normalise_entity`]).
    #[default]
    #[serde(rename = "principal")]
    Principal,
    /// `<principal>|<event source>` (`AROA…|s3.amazonaws.com`): per-application behaviour.
    #[serde(rename = "principal+event_source")]
    PrincipalEventSource,
    /// The user agent's family (`aws-cli`, `Boto3`, `console.amazonaws.com`, `S3Console`, …).
    #[serde(rename = "user_agent_family")]
    UserAgentFamily,
    /// The identity's ARN, assumed-role sessions cut (`arn:aws:sts::1:assumed-role/Admin`).
    #[serde(rename = "arn")]
    Arn,
    /// The instance the traffic comes from (OCSF `src_endpoint.instance_uid`, GuardDuty's instance).
    #[serde(rename = "instance_id")]
    InstanceId,
}

impl EntityKind {
    pub const ALL: [EntityKind; 5] = [
        EntityKind::Principal,
        EntityKind::PrincipalEventSource,
        EntityKind::UserAgentFamily,
        EntityKind::Arn,
        EntityKind::InstanceId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Principal => "principal",
            EntityKind::PrincipalEventSource => "principal+event_source",
            EntityKind::UserAgentFamily => "user_agent_family",
            EntityKind::Arn => "arn",
            EntityKind::InstanceId => "instance_id",
        }
    }
}

impl std::fmt::Display for EntityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EntityKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == t)
            .ok_or_else(|| {
                format!(
                    "unknown entity {s:?}: expected one of {}",
                    Self::ALL.map(|k| k.as_str()).join(", ")
                )
            })
    }
}

/// What a record offers to build its entity from (absent fields are `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct EntityFields<'a> {
    pub identity_type: Option<&'a str>,
    pub principal_id: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub arn: Option<&'a str>,
    pub event_source: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub instance_id: Option<&'a str>,
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// The entity of a record under `kind`; `None` when the record lacks what the kind needs (no tuple).
pub fn entity_for(kind: EntityKind, f: &EntityFields<'_>) -> Option<String> {
    match kind {
        EntityKind::Principal => normalise_entity(f.identity_type, f.principal_id, f.account_id),
        EntityKind::PrincipalEventSource => {
            let p = normalise_entity(f.identity_type, f.principal_id, f.account_id)?;
            Some(format!("{p}|{}", non_empty(f.event_source)?))
        }
        EntityKind::UserAgentFamily => non_empty(f.user_agent).and_then(user_agent_family),
        EntityKind::Arn => non_empty(f.arn).and_then(normalise_arn),
        EntityKind::InstanceId => non_empty(f.instance_id).map(str::to_owned),
    }
}

/// The family of a user agent: its first product token. `aws-cli/2.15.0 Python/3.11` → `aws-cli`,
/// `[S3Console/0.4, aws-internal/3]` → `S3Console`, `console.amazonaws.com` as is. Versions,
/// platforms and session details are dropped: they change with every upgrade and would make each
/// upgrade a new, unknown entity.
pub fn user_agent_family(ua: &str) -> Option<String> {
    let ua = ua.trim().trim_start_matches('[').trim_start();
    let end = ua
        .find(|c: char| {
            c == '/'
                || c == ','
                || c == ';'
                || c == '('
                || c == ')'
                || c == ']'
                || c.is_whitespace()
        })
        .unwrap_or(ua.len());
    let family = &ua[..end];
    (!family.is_empty()).then(|| family.chars().take(64).collect())
}

/// An ARN as an entity: an assumed-role session ARN loses its session name
/// (`arn:aws:sts::1:assumed-role/Admin/i-0abc` → `arn:aws:sts::1:assumed-role/Admin`), for the same
/// reason the principal id loses it.
pub fn normalise_arn(arn: &str) -> Option<String> {
    let arn = arn.trim();
    if !arn.starts_with("arn:") {
        return None;
    }
    if let Some(i) = arn.find(":assumed-role/") {
        let rest = &arn[i + ":assumed-role/".len()..];
        let role = rest.split('/').next().unwrap_or("");
        if role.is_empty() {
            return None;
        }
        return Some(format!("{}{role}", &arn[..i + ":assumed-role/".len()]));
    }
    Some(arn.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_kinds() {
        for k in EntityKind::ALL {
            assert_eq!(k.as_str().parse::<EntityKind>().unwrap(), k);
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.as_str().into())
            );
        }
        assert_eq!(
            "User-Agent-Family".parse::<EntityKind>().unwrap(),
            EntityKind::UserAgentFamily
        );
        let e = "role".parse::<EntityKind>().unwrap_err();
        assert!(e.contains("principal+event_source"), "{e}");
        let f = EntityFields {
            identity_type: Some("AssumedRole"),
            principal_id: Some("AROAEXAMPLE:i-0abc"),
            account_id: Some("111122223333"),
            arn: Some("arn:aws:sts::111122223333:assumed-role/Admin/i-0abc"),
            event_source: Some("s3.amazonaws.com"),
            user_agent: Some("aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64"),
            instance_id: None,
        };
        let e = |k| entity_for(k, &f);
        assert_eq!(e(EntityKind::Principal).as_deref(), Some("AROAEXAMPLE"));
        assert_eq!(
            e(EntityKind::PrincipalEventSource).as_deref(),
            Some("AROAEXAMPLE|s3.amazonaws.com")
        );
        assert_eq!(e(EntityKind::UserAgentFamily).as_deref(), Some("aws-cli"));
        assert_eq!(
            e(EntityKind::Arn).as_deref(),
            Some("arn:aws:sts::111122223333:assumed-role/Admin")
        );
        assert_eq!(e(EntityKind::InstanceId), None);
        let g = EntityFields {
            event_source: Some(" "),
            ..f
        };
        assert_eq!(entity_for(EntityKind::PrincipalEventSource, &g), None);
    }

    #[test]
    fn user_agent_families_and_arns() {
        let fam = |s| user_agent_family(s);
        assert_eq!(
            fam("Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0").as_deref(),
            Some("Boto3")
        );
        assert_eq!(
            fam("[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12]").as_deref(),
            Some("S3Console")
        );
        assert_eq!(
            fam("console.amazonaws.com").as_deref(),
            Some("console.amazonaws.com")
        );
        assert_eq!(fam("AWS Internal").as_deref(), Some("AWS"));
        assert_eq!(
            fam("Mozilla/5.0 (X11; Linux x86_64)").as_deref(),
            Some("Mozilla")
        );
        assert_eq!(fam("  "), None);
        assert_eq!(fam("[]"), None);
        assert_eq!(
            normalise_arn("arn:aws:iam::111122223333:user/alice").as_deref(),
            Some("arn:aws:iam::111122223333:user/alice")
        );
        assert_eq!(normalise_arn("arn:aws:sts::1:assumed-role/"), None);
        assert_eq!(normalise_arn("alice"), None);
    }

    #[test]
    fn rules() {
        let n = normalise_entity;
        assert_eq!(
            n(Some("IAMUser"), Some("AIDAEXAMPLE"), Some("1")).as_deref(),
            Some("AIDAEXAMPLE")
        );
        assert_eq!(
            n(Some("AssumedRole"), Some("AROAEXAMPLE:i-0abc"), None).as_deref(),
            Some("AROAEXAMPLE")
        );
        // GuardDuty names the user type, not always "AssumedRole"; the AROA prefix decides.
        assert_eq!(
            n(Some("Role"), Some("AROAEXAMPLE:alice@example.com"), None).as_deref(),
            Some("AROAEXAMPLE")
        );
        assert_eq!(
            n(Some("AWSAccount"), Some("AROAX:sess"), None).as_deref(),
            Some("AROAX")
        );
        assert_eq!(
            n(Some("FederatedUser"), Some("123456789012:bob"), None).as_deref(),
            Some("123456789012:bob")
        );
        assert_eq!(
            n(Some("Root"), Some("123456789012"), Some("123456789012")).as_deref(),
            Some("123456789012")
        );
        assert_eq!(
            n(Some("Root"), None, Some("123456789012")).as_deref(),
            Some("123456789012")
        );
        assert_eq!(n(Some("AWSService"), None, None), None);
        assert_eq!(n(Some("IAMUser"), Some("  "), None), None);
        assert_eq!(n(None, Some("AROAONLY"), None).as_deref(), Some("AROAONLY"));
        assert_eq!(
            eks_principal_id("aws-iam-authenticator:111122223333:AROAEXAMPLE"),
            Some("AROAEXAMPLE")
        );
        assert_eq!(
            eks_principal_id("heptio-authenticator-aws:1:AIDAEXAMPLE"),
            Some("AIDAEXAMPLE")
        );
        assert_eq!(eks_principal_id("system:serviceaccount:ns:sa"), None);
        assert_eq!(eks_principal_id("aws-iam-authenticator:1:"), None);
        // Regression (fuzzing): a role id that is only a session suffix is no principal, not "".
        assert_eq!(n(Some("AssumedRole"), Some(":sess"), None), None);
        assert_eq!(n(Some("AssumedRole"), Some(" :x"), None), None);
    }
}
