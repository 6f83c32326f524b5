//! Consent from outside the record: `ConsentState` and `decide_with_consent`.

use chrono::DateTime;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::tests::{BN, CPC, PRIMERO, case, example_routes, policies, read};
use super::*;

fn state(status: ConsentStatus, given_by: ConsentGiver) -> ConsentState {
    ConsentState {
        status,
        given_by,
        child_age_years: None,
        purposes: vec!["case_management".into()],
        recipients: vec!["primero".into()],
        reference: Some("REF-CANARY-7731".into()),
        decided_at: DateTime::parse_from_rfc3339("2026-10-12T09:00:00+02:00").unwrap(),
    }
}

fn withdrawal() -> ConsentState {
    ConsentState {
        purposes: Vec::new(),
        recipients: Vec::new(),
        ..state(ConsentStatus::Withdrawn, ConsentGiver::Caregiver)
    }
}

fn grant() -> ConsentState {
    state(ConsentStatus::Granted, ConsentGiver::Caregiver)
}

fn not_uasc(mut record: Value) -> Value {
    record.as_object_mut().unwrap().remove("protection_status");
    record
}

fn decide(record: &Value, consent: &ConsentState) -> Decision {
    policies().decide_with_consent(PRIMERO, CPC, record, Some(consent))
}

// --- reading a consent record ----------------------------------------------

#[test]
fn from_record_reads_the_canonical_consent_record() {
    let s = ConsentState::from_record(&read("schemas/examples/consent.json")).unwrap();
    assert_eq!(s.status, ConsentStatus::Granted);
    assert_eq!(s.given_by, ConsentGiver::Caregiver);
    assert_eq!(s.child_age_years, Some(14));
    assert_eq!(s.purposes, ["case_management", "services", "tracing"]);
    assert_eq!(s.recipients, ["primero"]);
    assert_eq!(s.reference.as_deref(), Some("PRIMERO-CNS-2026-004583"));
    assert_eq!(s.decided_at.to_rfc3339(), "2026-10-05T11:20:00+02:00");

    let w = ConsentState::from_record(&case("33")).unwrap();
    assert_eq!(w.status, ConsentStatus::Withdrawn);
    assert_eq!(w.given_by, ConsentGiver::Child);
    assert!(w.purposes.is_empty() && w.recipients.is_empty());
    // A withdrawal without lists is about every purpose and recipient.
    assert!(w.covers_purpose("birth_registration") && w.covers_recipient(["x"].into_iter()));
}

#[test]
fn from_record_refuses_what_is_not_a_consent_decision() {
    let good = read("schemas/examples/consent.json");
    let edits: [(&str, Value); 6] = [
        ("record_type", json!("child-protection-case")),
        ("status", json!("maybe")),
        ("given_by", json!("neighbour")),
        ("decided_at", json!("yesterday")),
        ("purposes", json!("case_management")),
        ("child_age_years", json!(-1)),
    ];
    for (field, value) in edits {
        let mut r = good.clone();
        r[field] = value;
        assert!(ConsentState::from_record(&r).is_none(), "{field}");
    }
    let mut no_purposes = good.clone();
    no_purposes.as_object_mut().unwrap().remove("purposes");
    assert!(
        ConsentState::from_record(&no_purposes).is_none(),
        "a grant must say what it grants"
    );
    assert!(ConsentState::from_record(&json!([1, 2])).is_none());
    assert!(ConsentState::from_record(&case("26")).is_none());
}

#[test]
fn a_grant_grants_only_what_it_lists() {
    let mut g = grant();
    g.purposes.clear();
    g.recipients.clear();
    assert!(!g.covers_purpose("case_management"));
    assert!(!g.covers_recipient(["primero"].into_iter()));
}

// --- no consent decision: the record decides --------------------------------

#[test]
fn decide_is_decide_with_consent_none() {
    let p = policies();
    for prefix in ["26", "27", "28", "29", "30", "31"] {
        for record in [case(prefix), not_uasc(case(prefix))] {
            assert_eq!(
                p.decide(PRIMERO, CPC, &record),
                p.decide_with_consent(PRIMERO, CPC, &record, None)
            );
        }
    }
}

// --- withdrawal ----------------------------------------------------------------

#[test]
fn withdrawal_overrides_a_record_that_says_consented() {
    // Case 26 records valid consent (caregiver, authorities) and is separated.
    let record = case("26");
    assert_eq!(
        policies().decide(PRIMERO, CPC, &record).rule,
        "full-case-with-consent"
    );
    let d = decide(&record, &withdrawal());
    assert_eq!(d.rule, "uasc-minimal-set-vital-interest", "{}", d.reason);
    assert_eq!(d.legal_basis, Some("VITAL_INTEREST"));
    let d = decide(&not_uasc(record), &withdrawal());
    assert_eq!(d.decision, Outcome::Deny);
    assert!(
        d.reason
            .contains("rule full-case-with-consent: consent withdrawn"),
        "{}",
        d.reason
    );
}

#[test]
fn withdrawal_leaves_the_uasc_minimal_set_on_vital_interest() {
    let p = policies();
    let record = case("29");
    let d = decide(&record, &withdrawal());
    assert_eq!(d.rule, "uasc-minimal-set-vital-interest");
    let out = p.apply(&d, &record);
    assert!(out.get("consent").is_none() && out.get("notes").is_none());
    assert_eq!(out["name"], record["name"]);
}

#[test]
fn withdrawal_leaves_a_vital_interest_override_in_force() {
    let d = decide(&not_uasc(case("28")), &withdrawal());
    assert_eq!(
        d.rule, "full-case-consent-overridden-vital-interest",
        "{}",
        d.reason
    );
    assert_eq!(d.legal_basis, Some("VITAL_INTEREST"));
}

#[test]
fn withdrawal_does_not_stop_legal_obligation_routes() {
    let p = policies();
    let record = read("schemas/examples/birth-notification.json");
    let routes = example_routes();
    let bn: Vec<_> = routes.iter().filter(|r| r.record_type == BN).collect();
    assert_eq!(bn.len(), 4);
    for route in bn {
        let d = p.decide_with_consent(&route.name, BN, &record, Some(&withdrawal()));
        assert_eq!(d.decision, Outcome::Deliver, "{}", route.name);
        assert_eq!(d.legal_basis, Some("LEGAL_OBLIGATION"));
        assert_eq!(d, p.decide(&route.name, BN, &record));
    }
}

#[test]
fn a_withdrawal_for_other_purposes_or_recipients_leaves_the_record_consent() {
    let record = not_uasc(case("26"));
    let mut tracing_only = withdrawal();
    tracing_only.purposes = vec!["tracing".into()];
    assert_eq!(
        decide(&record, &tracing_only).rule,
        "full-case-with-consent"
    );
    let mut unhcr_only = withdrawal();
    unhcr_only.recipients = vec!["unhcr".into()];
    assert_eq!(decide(&record, &unhcr_only).rule, "full-case-with-consent");
    // Naming the destination or the policy's recipient word does stop it.
    for name in ["primero", "authorities"] {
        let mut named = withdrawal();
        named.recipients = vec![name.into()];
        named.purposes = vec!["case_management".into()];
        assert_eq!(decide(&record, &named).decision, Outcome::Deny, "{name}");
    }
}

// --- grant ---------------------------------------------------------------------

#[test]
fn a_grant_overrides_a_record_without_consent() {
    // Case 27 records no consent; case 30 records a withdrawal.
    for prefix in ["27", "30"] {
        let record = not_uasc(case(prefix));
        assert_eq!(
            policies().decide(PRIMERO, CPC, &record).decision,
            Outcome::Deny
        );
        let d = decide(&record, &grant());
        assert_eq!(d.rule, "full-case-with-consent", "{prefix}: {}", d.reason);
        assert_eq!(d.legal_basis, Some("CONSENT"));
        assert!(d.reason.contains("latest consent decision"), "{}", d.reason);
    }
}

#[test]
fn a_grant_may_name_the_policys_recipient_word() {
    let mut g = grant();
    g.recipients = vec!["unhcr".into(), "authorities".into()];
    assert_eq!(
        decide(&not_uasc(case("27")), &g).legal_basis,
        Some("CONSENT")
    );
}

#[test]
fn a_grant_must_cover_the_purpose() {
    let mut g = grant();
    g.purposes = vec!["tracing".into(), "services".into()];
    // The grant replaces the record's consent: case 26's own consent no longer counts.
    let d = decide(&not_uasc(case("26")), &g);
    assert_eq!(d.decision, Outcome::Deny);
    assert!(
        d.reason.contains("does not cover purpose case_management"),
        "{}",
        d.reason
    );
}

#[test]
fn a_grant_must_name_the_destination_or_a_recipient() {
    let mut g = grant();
    g.recipients = vec!["opencrvs".into(), "unhcr".into()];
    let d = decide(&not_uasc(case("26")), &g);
    assert_eq!(d.decision, Outcome::Deny);
    assert!(
        d.reason.contains("names neither this destination"),
        "{}",
        d.reason
    );
}

#[test]
fn the_child_may_consent_from_15() {
    let record = not_uasc(case("31")); // the record says 12
    let mut g = state(ConsentStatus::Granted, ConsentGiver::Child);
    g.child_age_years = Some(15);
    assert_eq!(decide(&record, &g).legal_basis, Some("CONSENT"));
    g.child_age_years = Some(14);
    let d = decide(&record, &g);
    assert_eq!(d.decision, Outcome::Deny);
    assert!(d.reason.contains("only from age 15"), "{}", d.reason);
    // Without an age in the decision, the record's age counts.
    g.child_age_years = None;
    assert_eq!(decide(&record, &g).decision, Outcome::Deny);
    let mut older = record.clone();
    older["age_years"] = json!(16);
    assert_eq!(decide(&older, &g).legal_basis, Some("CONSENT"));
    let mut unknown_age = record;
    unknown_age.as_object_mut().unwrap().remove("age_years");
    assert_eq!(decide(&unknown_age, &g).decision, Outcome::Deny);
}

#[test]
fn someone_else_may_not_consent() {
    let d = decide(
        &not_uasc(case("26")),
        &state(ConsentStatus::Granted, ConsentGiver::Other),
    );
    assert_eq!(d.decision, Outcome::Deny);
    assert!(
        d.reason.contains("someone who may not consent"),
        "{}",
        d.reason
    );
}

#[test]
fn reasons_name_rules_never_values() {
    let record = not_uasc(case("26"));
    for s in [
        withdrawal(),
        grant(),
        state(ConsentStatus::Granted, ConsentGiver::Child),
    ] {
        let d = decide(&record, &s);
        let text = format!("{} {:?}", d.reason, d.redactions);
        assert!(!text.contains("REF-CANARY"), "{text}");
        assert!(!text.contains(record["name"]["given_names"].as_str().unwrap()));
        assert!(
            text.contains("rule ") || d.decision == Outcome::Deliver,
            "{text}"
        );
    }
}

// --- properties ------------------------------------------------------------------

fn consent_state() -> impl Strategy<Value = ConsentState> {
    (
        any::<bool>(),
        prop_oneof![
            Just(ConsentGiver::Caregiver),
            Just(ConsentGiver::Child),
            Just(ConsentGiver::Other)
        ],
        proptest::option::of(0u32..25),
        proptest::sample::subsequence(vec!["case_management", "tracing", "services"], 0..3),
        proptest::sample::subsequence(vec!["primero", "authorities", "unhcr", "opencrvs"], 0..4),
    )
        .prop_map(
            |(granted, given_by, age, purposes, recipients)| ConsentState {
                status: if granted {
                    ConsentStatus::Granted
                } else {
                    ConsentStatus::Withdrawn
                },
                given_by,
                child_age_years: age,
                purposes: purposes.into_iter().map(String::from).collect(),
                recipients: recipients.into_iter().map(String::from).collect(),
                reference: None,
                decided_at: DateTime::parse_from_rfc3339("2026-10-12T09:00:00Z").unwrap(),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn consent_counts_only_as_the_latest_decision_allows(
        s in consent_state(),
        base in prop_oneof![Just("26"), Just("27"), Just("28"), Just("29"), Just("30"), Just("31")],
        uasc in any::<bool>(),
    ) {
        let p = policies();
        let record = if uasc { case(base) } else { not_uasc(case(base)) };
        let d = p.decide_with_consent(PRIMERO, CPC, &record, Some(&s));
        let names = |n: &str| s.recipients.iter().any(|r| r == n);
        let about_route = (s.purposes.is_empty() || s.purposes.iter().any(|x| x == "case_management"))
            && (s.recipients.is_empty() || names("primero") || names("authorities"));
        let record_age = record["age_years"].as_u64();
        let may = match s.given_by {
            ConsentGiver::Caregiver => true,
            ConsentGiver::Child => s.child_age_years.map(u64::from).or(record_age).is_some_and(|a| a >= 15),
            ConsentGiver::Other => false,
        };
        let granted = s.status == ConsentStatus::Granted
            && !s.purposes.is_empty() && !s.recipients.is_empty() && about_route && may;
        match s.status {
            ConsentStatus::Granted => prop_assert_eq!(d.legal_basis == Some("CONSENT"), granted, "{}", d.reason),
            ConsentStatus::Withdrawn if about_route => prop_assert_ne!(d.legal_basis, Some("CONSENT")),
            // A withdrawal about something else: the record's consent decides.
            ConsentStatus::Withdrawn => prop_assert_eq!(&d, &p.decide(PRIMERO, CPC, &record)),
        }
        // Rules on other bases do not depend on consent decisions.
        if d.legal_basis != Some("CONSENT") {
            let without = p.decide(PRIMERO, CPC, &record);
            if without.legal_basis != Some("CONSENT") {
                prop_assert_eq!(&d.rule, &without.rule);
            }
        }
    }

    #[test]
    fn from_record_never_panics(record in super::tests::any_json()) {
        let _ = ConsentState::from_record(&record);
    }
}
