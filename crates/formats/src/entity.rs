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

#[cfg(test)]
mod tests {
    use super::*;

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
        // Regression (fuzzing): a role id that is only a session suffix is no principal, not "".
        assert_eq!(n(Some("AssumedRole"), Some(":sess"), None), None);
        assert_eq!(n(Some("AssumedRole"), Some(" :x"), None), None);
    }
}
