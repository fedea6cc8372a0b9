use super::*;

#[test]
fn bearer_token_must_match_exactly() {
    assert!(bearer_matches(Some("Bearer s3cret"), "s3cret"));
    assert!(bearer_matches(Some("bearer s3cret"), "s3cret"));
    assert!(!bearer_matches(Some("Bearer s3cre"), "s3cret"));
    assert!(!bearer_matches(Some("Bearer s3cretX"), "s3cret"));
    assert!(!bearer_matches(Some("Basic s3cret"), "s3cret"));
    assert!(!bearer_matches(None, "s3cret"));
    assert!(
        !bearer_matches(Some("Bearer "), ""),
        "an empty token never opens the API"
    );
}
