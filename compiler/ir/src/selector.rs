//! Kubernetes label selectors and their exact matching rules.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A label selector: every `match_labels` pair AND every requirement must hold.
/// The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSelector {
    /// `key: value` pairs that must all be present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements, in source order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
}

/// A set-based requirement (`tier in (web, api)`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// How the key and values are compared.
    pub operator: Operator,
    /// Non-empty for `In`/`NotIn`, empty for `Exists`/`DoesNotExist`. Sorted, no duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// The four operators of `matchExpressions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Operator {
    /// The key is present and its value is one of the values.
    In,
    /// The key is absent, or its value is none of the values.
    NotIn,
    /// The key is present.
    Exists,
    /// The key is absent.
    DoesNotExist,
}

impl Operator {
    /// The name Kubernetes uses.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::Exists => "Exists",
            Operator::DoesNotExist => "DoesNotExist",
        }
    }
}

impl LabelSelector {
    /// The selector that matches everything.
    #[must_use]
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// A selector of `match_labels` only.
    pub fn labels<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> LabelSelector {
        LabelSelector {
            match_labels: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            match_expressions: Vec::new(),
        }
    }

    /// The namespace selector for one namespace by name, through the label every namespace has.
    #[must_use]
    pub fn namespace_named(name: &str) -> LabelSelector {
        LabelSelector::labels([(crate::inventory::NAMESPACE_NAME_LABEL, name)])
    }

    /// If this selector picks exactly one namespace by name, that name.
    #[must_use]
    pub fn as_namespace_name(&self) -> Option<&str> {
        if self.match_expressions.is_empty() && self.match_labels.len() == 1 {
            self.match_labels.get(crate::inventory::NAMESPACE_NAME_LABEL).map(String::as_str)
        } else {
            None
        }
    }

    /// Whether the selector matches everything.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether `labels` satisfies the selector, with Kubernetes' semantics.
    #[must_use]
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }

    /// Check the shape Kubernetes' API server requires of requirements.
    ///
    /// # Errors
    /// A sentence naming the offending requirement.
    pub fn validate(&self) -> Result<(), String> {
        for r in &self.match_expressions {
            match r.operator {
                Operator::In | Operator::NotIn if r.values.is_empty() => {
                    return Err(format!("`{}` {} needs at least one value", r.key, r.operator.as_str()));
                }
                Operator::Exists | Operator::DoesNotExist if !r.values.is_empty() => {
                    return Err(format!("`{}` {} takes no values", r.key, r.operator.as_str()));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl Requirement {
    /// Whether `labels` satisfies this requirement.
    #[must_use]
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// netc's own notation: `app=web, tier in (a, b), !legacy, canary`.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            if first {
                first = false;
                Ok(())
            } else {
                f.write_str(", ")
            }
        };
        for (k, v) in &self.match_labels {
            sep(f)?;
            write!(f, "{k}={v}")?;
        }
        for r in &self.match_expressions {
            sep(f)?;
            match r.operator {
                Operator::In => write!(f, "{} in ({})", r.key, r.values.join(", "))?,
                Operator::NotIn => write!(f, "{} notin ({})", r.key, r.values.join(", "))?,
                Operator::Exists => write!(f, "{}", r.key)?,
                Operator::DoesNotExist => write!(f, "!{}", r.key)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![Requirement {
                key: key.into(),
                operator,
                values: values.iter().map(|v| (*v).to_owned()).collect(),
            }],
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::everything().matches(&labels(&[])));
        assert!(LabelSelector::everything().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_are_anded() {
        let s = LabelSelector::labels([("app", "web"), ("tier", "fe")]);
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "be")])));
    }

    #[test]
    fn operators_follow_kubernetes() {
        let present = labels(&[("tier", "web")]);
        let other = labels(&[("tier", "db")]);
        let absent = labels(&[]);
        let r#in = req("tier", Operator::In, &["web", "api"]);
        assert!(r#in.matches(&present) && !r#in.matches(&other) && !r#in.matches(&absent));
        let notin = req("tier", Operator::NotIn, &["web"]);
        assert!(!notin.matches(&present) && notin.matches(&other) && notin.matches(&absent));
        let exists = req("tier", Operator::Exists, &[]);
        assert!(exists.matches(&present) && !exists.matches(&absent));
        let dne = req("tier", Operator::DoesNotExist, &[]);
        assert!(!dne.matches(&present) && dne.matches(&absent));
    }

    #[test]
    fn displays_in_netc_notation() {
        let mut s = LabelSelector::labels([("app", "web")]);
        s.match_expressions = req("tier", Operator::In, &["a", "b"]).match_expressions;
        s.match_expressions.extend(req("legacy", Operator::DoesNotExist, &[]).match_expressions);
        assert_eq!(s.to_string(), "app=web, tier in (a, b), !legacy");
    }
}
