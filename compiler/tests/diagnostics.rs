//! Diagnostics: one snapshot per code (source and rendered diagnostics together), and the
//! properties every diagnostic shares (all reported at once, JSON, warnings do not stop).

mod common;

use common::{codes, compile};

#[test]
fn arrow_from_pods_with_open_egress_to_anywhere_is_w0201() {
    let (_, out) = compile("frontend -> anywhere:443\n");
    assert_eq!(codes(&out), ["W0201"]);
    let d = &out.diagnostics[0];
    assert!(d.notes.iter().any(|n| n.contains("egress of `frontend` is open")), "{d:?}");
    assert!(d.help.as_deref().is_some_and(|h| h.contains("`frontend egress guarded`")), "{d:?}");
}

#[test]
fn arrow_between_addresses_is_w0201_without_suggesting_a_door_on_addresses() {
    let (_, out) = compile("10.0.0.0/8 -> anywhere:443\n");
    assert_eq!(codes(&out), ["W0201"]);
    let help = out.diagnostics[0].help.as_deref().unwrap_or_default();
    assert!(!help.contains("egress guarded"), "E0205 would refuse the suggestion: {help}");
}

#[test]
fn file_ending_inside_a_statement_says_unexpected_end_of_file() {
    let (_, out) = compile("frontend -> backend:\n");
    assert_eq!(codes(&out), ["E0001"]);
    assert_eq!(out.diagnostics[0].message, "unexpected end of file");
}

#[test]
fn parser_stopping_at_white_space_names_it_instead_of_the_end_of_file() {
    let (_, out) = compile("a -> b:80- 90\n");
    assert_eq!(out.diagnostics[0].message, "unexpected space");
    let (_, out) = compile("a -> b:80-\nc -> d\n");
    assert_eq!(out.diagnostics[0].message, "unexpected line break");
}

#[test]
fn arrow_into_an_isolated_workload_is_only_e0301() {
    let (_, out) = compile("hermit isolated\nfrontend -> hermit:80\n");
    assert_eq!(codes(&out), ["E0301"]);
    let (_, out) = compile("hermit isolated\nrecluse isolated\nhermit -> recluse:80\n");
    assert_eq!(codes(&out), ["E0301", "E0301"], "both isolated ends are reported");
}
