//! The documentation stays true to the code.

use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

#[test]
fn language_reference_quotes_the_grammar_verbatim() {
    let grammar = read("grammar/netc.pest");
    let doc = read("docs/language.md");
    let marker = "<!-- grammar:start -->\n```pest\n";
    let start = doc.find(marker).expect("grammar start marker") + marker.len();
    let end = doc.find("```\n<!-- grammar:end -->").expect("grammar end marker");
    assert_eq!(
        &doc[start..end],
        grammar,
        "docs/language.md's grammar section differs from grammar/netc.pest: copy the grammar into it"
    );
}

#[test]
fn every_code_in_the_language_reference_is_a_real_code() {
    let doc = read("docs/language.md");
    for word in doc.split(|c: char| !c.is_ascii_alphanumeric()) {
        let is_code = word.len() == 5
            && (word.starts_with('E') || word.starts_with('W'))
            && word[1..].chars().all(|c| c.is_ascii_digit());
        if is_code {
            assert!(
                netc::diagnostics::ALL_CODES.contains(&word),
                "docs/language.md mentions unknown code {word}"
            );
        }
    }
}
