//! Sets of pods as namespaces and labels: what an endpoint or a NetworkPolicy peer names, and
//! whether two of them can share a pod, for every possible pod (any labels beyond those a
//! selector tests, in any namespace whose name and labels fit).

use netc_ir::{LabelSelector, Peer};

use super::labels::Conj;
use crate::check::NsScope;

/// Pods of the namespaces `namespaces` selects whose labels `pods` selects. The namespace part is
/// a set of namespace label maps; a namespace's name is its `kubernetes.io/metadata.name` label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodSet {
    /// Which namespaces (their labels, the name label included).
    pub namespaces: Conj,
    /// Which pods of them (their labels).
    pub pods: Conj,
}

impl PodSet {
    /// The pods of an endpoint written `scope/pods`.
    #[must_use]
    pub fn of_scope(scope: &NsScope, pods: &LabelSelector) -> PodSet {
        let namespaces = match scope {
            NsScope::Named(n) => Conj::namespace_named(n),
            NsScope::Selector(s) => Conj::of_namespaces(s),
        };
        PodSet { namespaces, pods: Conj::of(pods) }
    }

    /// The pods of one namespace that `pods` selects.
    #[must_use]
    pub fn in_namespace(namespace: &str, pods: &LabelSelector) -> PodSet {
        PodSet { namespaces: Conj::namespace_named(namespace), pods: Conj::of(pods) }
    }

    /// The pods a peer of a rule in namespace `policy_namespace` names; `None` for an ipBlock.
    #[must_use]
    pub fn of_peer(peer: &Peer, policy_namespace: &str) -> Option<PodSet> {
        match peer {
            Peer::Pods { namespaces, pods } => Some(PodSet {
                namespaces: namespaces
                    .as_ref()
                    .map_or_else(|| Conj::namespace_named(policy_namespace), Conj::of_namespaces),
                pods: pods.as_ref().map_or_else(Conj::everything, Conj::of),
            }),
            Peer::IpBlock { .. } => None,
        }
    }

    /// Whether some possible pod is in both sets.
    #[must_use]
    pub fn overlaps(&self, other: &PodSet) -> bool {
        self.namespaces.overlaps(&other.namespaces) && self.pods.overlaps(&other.pods)
    }

    /// Whether every possible pod of `self` is in `other`.
    #[must_use]
    pub fn is_subset(&self, other: &PodSet) -> bool {
        !self.is_satisfiable()
            || (self.namespaces.is_subset(&other.namespaces) && self.pods.is_subset(&other.pods))
    }

    /// Whether the set holds some possible pod.
    #[must_use]
    pub fn is_satisfiable(&self) -> bool {
        self.namespaces.is_satisfiable() && self.pods.is_satisfiable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_of_a_namespace_chosen_by_labels_can_be_in_any_namespace() {
        let monitoring = PodSet::of_scope(
            &NsScope::Selector(LabelSelector::labels([("team", "monitoring")])),
            &LabelSelector::everything(),
        );
        let shop_api = PodSet::in_namespace("shop", &LabelSelector::labels([("app", "api")]));
        // Namespace `shop` may carry `team=monitoring`: the sets can share a pod.
        assert!(monitoring.overlaps(&shop_api));
        assert!(!shop_api.is_subset(&monitoring));
        let everyone =
            PodSet::of_scope(&NsScope::Selector(LabelSelector::everything()), &LabelSelector::everything());
        assert!(shop_api.is_subset(&everyone) && monitoring.is_subset(&everyone));
    }

    #[test]
    fn peers_without_a_namespace_selector_are_in_the_policy_namespace() {
        let peer = Peer::Pods { namespaces: None, pods: Some(LabelSelector::labels([("app", "web")])) };
        let set = PodSet::of_peer(&peer, "shop").expect("pods");
        assert!(set.is_subset(&PodSet::in_namespace("shop", &LabelSelector::everything())));
        assert!(!set.overlaps(&PodSet::in_namespace("other", &LabelSelector::everything())));
    }
}
