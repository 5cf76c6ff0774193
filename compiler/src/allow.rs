//! The last step of `compile`: `@allow(CODE)` attributes acknowledge warnings of their statement.
//!
//! ```text
//! text --syntax--> ast --check--> Model --lower--> Ir        diagnostics --allow--> what is shown
//! ```
//!
//! A warning whose primary place lies inside a statement carrying `@allow(ITS CODE)` is dropped.
//! An attribute that names no warning code is an error (E0114), and one that allows nothing where it
//! stands is a warning (W0103), so that an acknowledgement never outlives the warning it was written
//! for, and never hides an error.

use crate::ast::{self, Item, Statement};
use crate::check::Loc;
use crate::diagnostics::{ALL_CODES, Diagnostic, Severity};

/// Problems of `@allow` attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowError {
    /// A code that is not a warning netc emits (an error code, or no code at all).
    NotAWarning {
        /// The code as written.
        at: Loc,
        /// As written.
        code: String,
        /// A warning code it resembles.
        suggestion: Option<&'static str>,
    },
    /// A warning code that no warning of the statement has.
    AllowsNothing {
        /// The code as written.
        at: Loc,
        /// The code.
        code: String,
    },
}

impl AllowError {
    /// Whether this only warns.
    #[must_use]
    pub fn is_warning(&self) -> bool {
        matches!(self, AllowError::AllowsNothing { .. })
    }
}

/// One code of one attribute, with the statement it is attached to.
struct Acknowledgement {
    file: usize,
    statement: ast::Span,
    code: String,
    at: Loc,
    used: bool,
}

/// Drop the warnings that `@allow` attributes acknowledge. `complete`: every warning of the
/// program was computed (no errors hid any), so an attribute that allowed nothing is stale.
pub fn apply(files: &[ast::File], diagnostics: &mut Vec<Diagnostic>, complete: bool) -> Vec<AllowError> {
    let mut acks = Vec::new();
    let mut errors = Vec::new();
    for (file, ast) in files.iter().enumerate() {
        let mut visit = |s: &Statement| {
            for code in s.allows.iter().flat_map(|a| &a.codes) {
                let at = Loc { file, span: code.span };
                let upper = code.node.to_ascii_uppercase();
                if upper.starts_with('W') && ALL_CODES.contains(&upper.as_str()) {
                    acks.push(Acknowledgement { file, statement: s.span, code: upper, at, used: false });
                } else {
                    let suggestion = ALL_CODES
                        .iter()
                        .copied()
                        .filter(|c| c.starts_with('W'))
                        .find(|c| strsim::damerau_levenshtein(c, &upper) <= 1);
                    errors.push(AllowError::NotAWarning { at, code: code.node.clone(), suggestion });
                }
            }
        };
        for item in &ast.items {
            match item {
                Item::NamespaceBlock { statements, .. } => statements.iter().for_each(&mut visit),
                Item::Statement(s) => visit(s),
                Item::NamespaceHeader { .. } | Item::StrayDoc(_) => {}
            }
        }
    }
    if acks.is_empty() {
        return errors;
    }
    diagnostics.retain(|d| {
        if d.severity != Severity::Warning {
            return true;
        }
        let Some(loc) = d.location() else { return true };
        let mut acknowledged = false;
        for a in &mut acks {
            if a.file == loc.file
                && a.statement.start <= loc.span.start
                && loc.span.end <= a.statement.end
                && a.code == d.code
            {
                a.used = true;
                acknowledged = true;
            }
        }
        !acknowledged
    });
    if complete {
        errors.extend(
            acks.into_iter()
                .filter(|a| !a.used)
                .map(|a| AllowError::AllowsNothing { at: a.at, code: a.code }),
        );
    }
    errors
}
