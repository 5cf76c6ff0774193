//! Where every name is written: the syntax trees walked once into occurrences of workloads,
//! externals and namespaces, resolved the way [`crate::check`] resolves them (an unqualified name
//! is a declared external if there is one, else a workload of the current namespace).

use std::collections::HashSet;

use crate::ast::{
    Endpoint, EndpointKind, File, Item, NamespaceRef, PodRef, PortSyntax, Span, Statement, StatementKind,
};
use crate::check::DEFAULT_NAMESPACE;

/// A thing a name stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Symbol {
    /// Pods named in one namespace: declared with `workload`, or `app=<name>`.
    Workload {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Address blocks declared with `external`.
    External(String),
    /// A namespace, by name.
    Namespace(String),
}

impl Symbol {
    /// The name as written.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Symbol::Workload { name, .. } | Symbol::External(name) | Symbol::Namespace(name) => name,
        }
    }
}

/// One place a symbol is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// Index of the file in the compilation.
    pub file: usize,
    /// The name itself (no namespace prefix).
    pub span: Span,
    /// What it stands for.
    pub symbol: Symbol,
    /// A `workload`/`external` declaration, or a namespace block or header.
    pub declaration: bool,
}

/// A port as written, for hovers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMention {
    /// Index of the file.
    pub file: usize,
    /// The whole item (`8000-8100/udp`).
    pub span: Span,
    /// The port part.
    pub port: PortSyntax,
    /// The protocol as written.
    pub protocol: Option<String>,
}

/// Every occurrence and port of a set of files compiled together.
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// In file order, then source order.
    pub occurrences: Vec<Occurrence>,
    /// Every port item.
    pub ports: Vec<PortMention>,
}

impl Index {
    /// Walk the files (`None`: a file that did not parse).
    #[must_use]
    pub fn new(files: &[Option<File>]) -> Index {
        let mut externals = HashSet::new();
        for file in files.iter().flatten() {
            for_each_statement(file, |_, s| {
                if let StatementKind::External { name, .. } = &s.kind {
                    externals.insert(name.node.clone());
                }
            });
        }
        let mut index = Index::default();
        for (i, file) in files.iter().enumerate() {
            let Some(file) = file else { continue };
            for item in &file.items {
                match item {
                    Item::NamespaceBlock { name, .. } | Item::NamespaceHeader { name, .. } => {
                        index.occurrences.push(Occurrence {
                            file: i,
                            span: name.span,
                            symbol: Symbol::Namespace(name.node.clone()),
                            declaration: true,
                        });
                    }
                    Item::Statement(_) | Item::StrayDoc(_) => {}
                }
            }
            for_each_statement(file, |ns, s| index.statement(i, ns, s, &externals));
        }
        index.occurrences.sort_by_key(|o| (o.file, o.span.start));
        index
    }

    fn statement(&mut self, file: usize, ns: &str, s: &Statement, externals: &HashSet<String>) {
        match &s.kind {
            StatementKind::Workload { name, .. } => self.occurrences.push(Occurrence {
                file,
                span: name.span,
                symbol: Symbol::Workload { namespace: ns.to_owned(), name: name.node.clone() },
                declaration: true,
            }),
            StatementKind::External { name, .. } => self.occurrences.push(Occurrence {
                file,
                span: name.span,
                symbol: Symbol::External(name.node.clone()),
                declaration: true,
            }),
            StatementKind::Door { subject, .. } => self.endpoint(file, ns, subject, externals),
            StatementKind::Arrow(arrow) => {
                for e in &arrow.sources {
                    self.endpoint(file, ns, e, externals);
                }
                for t in &arrow.targets {
                    self.endpoint(file, ns, &t.endpoint, externals);
                    for item in t.ports.iter().flat_map(|p| &p.node) {
                        self.ports.push(PortMention {
                            file,
                            span: item.span,
                            port: item.port.node.clone(),
                            protocol: item.protocol.as_ref().map(|p| p.node.clone()),
                        });
                    }
                }
            }
            StatementKind::Assert { claim, .. } => {
                // The names an assertion uses are occurrences like any other.
                let inner =
                    Statement { docs: Vec::new(), allows: Vec::new(), kind: (**claim).clone(), span: s.span };
                self.statement(file, ns, &inner, externals);
            }
            StatementKind::Default { .. } | StatementKind::Priority(_) => {}
        }
    }

    fn endpoint(&mut self, file: usize, ns: &str, e: &Endpoint, externals: &HashSet<String>) {
        let EndpointKind::Pods { namespace, pods } = &e.kind else { return };
        let workload_ns = match namespace {
            None => ns.to_owned(),
            Some(n) => match &n.node {
                NamespaceRef::Named(name) => {
                    self.occurrences.push(Occurrence {
                        file,
                        span: n.span,
                        symbol: Symbol::Namespace(name.clone()),
                        declaration: false,
                    });
                    name.clone()
                }
                // `*/web` and `{team=x}/web`: a label in many namespaces, no one workload.
                NamespaceRef::All | NamespaceRef::Selector(_) => return,
            },
        };
        let PodRef::Named(name) = &pods.node else { return };
        let symbol = if namespace.is_none() && externals.contains(name) {
            Symbol::External(name.clone())
        } else {
            Symbol::Workload { namespace: workload_ns, name: name.clone() }
        };
        self.occurrences.push(Occurrence { file, span: pods.span, symbol, declaration: false });
    }

    /// The occurrence under byte `offset` of `file` (its end included, where editors put the
    /// cursor after typing a name).
    #[must_use]
    pub fn at(&self, file: usize, offset: usize) -> Option<&Occurrence> {
        let offset = u32::try_from(offset).ok()?;
        self.occurrences.iter().find(|o| o.file == file && o.span.start <= offset && offset <= o.span.end)
    }

    /// Every occurrence of `symbol`.
    pub fn of<'a>(&'a self, symbol: &Symbol) -> impl Iterator<Item = &'a Occurrence> + 'a {
        let symbol = symbol.clone();
        self.occurrences.iter().filter(move |o| o.symbol == symbol)
    }

    /// Where `symbol` is defined: its declaration, or (for a name never declared) its first use.
    #[must_use]
    pub fn definition(&self, symbol: &Symbol) -> Option<&Occurrence> {
        self.of(symbol).find(|o| o.declaration).or_else(|| self.of(symbol).next())
    }

    /// The port item under byte `offset` of `file`.
    #[must_use]
    pub fn port_at(&self, file: usize, offset: usize) -> Option<&PortMention> {
        let offset = u32::try_from(offset).ok()?;
        self.ports.iter().find(|p| p.file == file && p.span.start <= offset && offset <= p.span.end)
    }
}

/// Call `f` with each statement of `file` and the namespace it belongs to.
pub fn for_each_statement<'a>(file: &'a File, mut f: impl FnMut(&str, &'a Statement)) {
    let mut ns = DEFAULT_NAMESPACE.to_owned();
    for item in &file.items {
        match item {
            Item::NamespaceBlock { name, statements, .. } => {
                for s in statements {
                    f(&name.node, s);
                }
            }
            Item::NamespaceHeader { name, .. } => ns.clone_from(&name.node),
            Item::Statement(s) => f(&ns, s),
            Item::StrayDoc(_) => {}
        }
    }
}
