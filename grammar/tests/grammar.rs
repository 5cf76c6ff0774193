//! Grammar tests: the trees `netc.pest` builds for the key rules (`parses_to!`), where and why it
//! refuses input (`fails_with!`), and properties: the parser never panics, on arbitrary text or on
//! valid programs mangled at random.
//!
//! `parses_to!` lists every token of the tree with its byte span. A non-atomic rule followed by
//! an optional part that matched nothing ends after the white space pest skipped (`sources(0, 2)`
//! for `"a "` in `a -> b`): the compiler's syntax module trims that, the grammar does not.

use netc_grammar::{NetcParser, Rule};
use pest::{Parser, consumes_to, fails_with, parses_to};
use proptest::prelude::*;

// ---------- arrows ----------

#[test]
fn arrow_with_a_list_of_every_kind_of_port() {
    parses_to! {
        parser: NetcParser,
        input: "a -> b:[80, 443/udp, 8000-8100, http, */sctp]",
        rule: Rule::arrow,
        tokens: [
            arrow(0, 45, [
                sources(0, 2, [endpoint(0, 1, [reference(0, 1, [ref_head(0, 1, [dotted(0, 1)])])])]),
                arrow_op(2, 4),
                targets(5, 45, [
                    target(5, 45, [
                        endpoint(5, 6, [reference(5, 6, [ref_head(5, 6, [dotted(5, 6)])])]),
                        port_spec(6, 45, [
                            port_list(7, 45, [
                                port_item(8, 10, [port_number(8, 10)]),
                                port_item(12, 19, [port_number(12, 15), protocol(16, 19)]),
                                port_item(21, 30, [port_range(21, 30, [integer(21, 25), integer(26, 30)])]),
                                port_item(32, 36, [port_name(32, 36)]),
                                port_item(38, 44, [port_any(38, 39), protocol(40, 44)])
                            ])
                        ])
                    ])
                ])
            ])
        ]
    };
}

#[test]
fn arrow_without_spaces() {
    parses_to! {
        parser: NetcParser,
        input: "a->b",
        rule: Rule::arrow,
        tokens: [
            arrow(0, 4, [
                sources(0, 1, [endpoint(0, 1, [reference(0, 1, [ref_head(0, 1, [dotted(0, 1)])])])]),
                arrow_op(1, 3),
                targets(3, 4, [target(3, 4, [endpoint(3, 4, [reference(3, 4, [ref_head(3, 4, [dotted(3, 4)])])])])])
            ])
        ]
    };
}

#[test]
fn hyphenated_names_around_an_arrow_without_spaces() {
    // A hyphen belongs to the name unless it starts the arrow.
    parses_to! {
        parser: NetcParser,
        input: "a-b->c-d",
        rule: Rule::arrow,
        tokens: [
            arrow(0, 8, [
                sources(0, 3, [endpoint(0, 3, [reference(0, 3, [ref_head(0, 3, [dotted(0, 3)])])])]),
                arrow_op(3, 5),
                targets(5, 8, [target(5, 8, [endpoint(5, 8, [reference(5, 8, [ref_head(5, 8, [dotted(5, 8)])])])])])
            ])
        ]
    };
}

#[test]
fn several_sources_and_targets() {
    parses_to! {
        parser: NetcParser,
        input: "a,b->c:80,d",
        rule: Rule::arrow,
        tokens: [
            arrow(0, 11, [
                sources(0, 3, [
                    endpoint(0, 1, [reference(0, 1, [ref_head(0, 1, [dotted(0, 1)])])]),
                    endpoint(2, 3, [reference(2, 3, [ref_head(2, 3, [dotted(2, 3)])])])
                ]),
                arrow_op(3, 5),
                targets(5, 11, [
                    target(5, 9, [
                        endpoint(5, 6, [reference(5, 6, [ref_head(5, 6, [dotted(5, 6)])])]),
                        port_spec(6, 9, [port_item(7, 9, [port_number(7, 9)])])
                    ]),
                    target(10, 11, [endpoint(10, 11, [reference(10, 11, [ref_head(10, 11, [dotted(10, 11)])])])])
                ])
            ])
        ]
    };
}

#[test]
fn every_deny_operator_is_parsed_so_the_checker_can_refuse_it() {
    for (input, op_end) in [("a -/-> b", 6), ("a !-> b", 5), ("a -x-> b", 6)] {
        let b = op_end + 1;
        parses_to! {
            parser: NetcParser,
            input: input,
            rule: Rule::arrow,
            tokens: [
                arrow(0, b + 1, [
                    sources(0, 2, [endpoint(0, 1, [reference(0, 1, [ref_head(0, 1, [dotted(0, 1)])])])]),
                    arrow_op(2, op_end, [deny_op(2, op_end)]),
                    targets(b, b + 1, [target(b, b + 1, [endpoint(b, b + 1, [reference(b, b + 1, [ref_head(b, b + 1, [dotted(b, b + 1)])])])])])
                ])
            ]
        };
    }
}

// ---------- endpoints ----------

#[test]
fn namespace_qualified_workload() {
    parses_to! {
        parser: NetcParser,
        input: "shop/api",
        rule: Rule::endpoint,
        tokens: [
            endpoint(0, 8, [reference(0, 8, [ref_head(0, 4, [dotted(0, 4)]), ref_tail(5, 8, [name(5, 8)])])])
        ]
    };
}

#[test]
fn all_pods_of_all_namespaces() {
    parses_to! {
        parser: NetcParser,
        input: "*/*",
        rule: Rule::endpoint,
        tokens: [endpoint(0, 3, [reference(0, 3, [ref_head(0, 1, [all(0, 1)]), ref_tail(2, 3, [all(2, 3)])])])]
    };
}

#[test]
fn namespace_selector_and_pod_selector_in_one_peer() {
    parses_to! {
        parser: NetcParser,
        input: "{team=x}/{app=y}",
        rule: Rule::endpoint,
        tokens: [
            endpoint(0, 16, [reference(0, 16, [
                ref_head(0, 8, [selector(0, 8, [requirement(1, 7, [eq_req(1, 7, [label_key(1, 5), label_value(6, 7, [bare_value(6, 7)])])])])]),
                ref_tail(9, 16, [selector(9, 16, [requirement(10, 15, [eq_req(10, 15, [label_key(10, 13), label_value(14, 15, [bare_value(14, 15)])])])])])
            ])])
        ]
    };
}

#[test]
fn dotted_name_is_one_token_for_the_checker_to_refuse_as_a_dns_name() {
    parses_to! {
        parser: NetcParser,
        input: "api.example.com",
        rule: Rule::endpoint,
        tokens: [endpoint(0, 15, [reference(0, 15, [ref_head(0, 15, [dotted(0, 15)])])])]
    };
}

#[test]
fn keywords_are_words_not_prefixes() {
    // `anywhere` and `dns` are keywords only as whole words.
    parses_to! {
        parser: NetcParser,
        input: "anywhere-x",
        rule: Rule::endpoint,
        tokens: [endpoint(0, 10, [reference(0, 10, [ref_head(0, 10, [dotted(0, 10)])])])]
    };
    parses_to! {
        parser: NetcParser,
        input: "anywhere",
        rule: Rule::endpoint,
        tokens: [endpoint(0, 8, [anywhere(0, 8)])]
    };
    parses_to! {
        parser: NetcParser,
        input: "dnsmasq",
        rule: Rule::endpoint,
        tokens: [endpoint(0, 7, [reference(0, 7, [ref_head(0, 7, [dotted(0, 7)])])])]
    };
}

// ---------- selectors ----------

#[test]
fn selector_with_every_operator() {
    parses_to! {
        parser: NetcParser,
        input: r#"{app=web, tier in (a, b), env notin (x), canary, !legacy, env!=dev, v=="1"}"#,
        rule: Rule::selector,
        tokens: [
            selector(0, 75, [
                requirement(1, 8, [eq_req(1, 8, [label_key(1, 4), label_value(5, 8, [bare_value(5, 8)])])]),
                requirement(10, 24, [set_req(10, 24, [
                    label_key(10, 14), set_op(15, 17),
                    label_value(19, 20, [bare_value(19, 20)]), label_value(22, 23, [bare_value(22, 23)])
                ])]),
                requirement(26, 39, [set_req(26, 39, [label_key(26, 29), set_op(30, 35), label_value(37, 38, [bare_value(37, 38)])])]),
                requirement(41, 47, [exists(41, 47, [label_key(41, 47)])]),
                requirement(49, 56, [not_exists(49, 56, [label_key(50, 56)])]),
                requirement(58, 66, [ne_req(58, 66, [label_key(58, 61), label_value(63, 66, [bare_value(63, 66)])])]),
                requirement(68, 74, [eq_req(68, 74, [label_key(68, 69), label_value(71, 74, [string(71, 74)])])])
            ])
        ]
    };
}

#[test]
fn empty_selector_and_trailing_comma() {
    parses_to! { parser: NetcParser, input: "{}", rule: Rule::selector, tokens: [selector(0, 2)] };
    parses_to! {
        parser: NetcParser,
        input: "{k8s.io/app=x,}",
        rule: Rule::selector,
        tokens: [selector(0, 15, [requirement(1, 13, [eq_req(1, 13, [label_key(1, 11), label_value(12, 13, [bare_value(12, 13)])])])])]
    };
}

// ---------- addresses ----------

#[test]
fn cidr_with_a_list_of_exceptions() {
    parses_to! {
        parser: NetcParser,
        input: "10.0.0.0/8 except (10.1.0.0/16, 10.2.0.0/16)",
        rule: Rule::cidr_peer,
        tokens: [cidr_peer(0, 44, [cidr(0, 10), except(11, 44, [cidr(19, 30), cidr(32, 43)])])]
    };
}

#[test]
fn ipv6_cidr_with_an_exception() {
    parses_to! {
        parser: NetcParser,
        input: "2001:db8::/32 except 2001:db8::1/128",
        rule: Rule::cidr_peer,
        tokens: [cidr_peer(0, 36, [cidr(0, 13), except(14, 36, [cidr(21, 36)])])]
    };
}

#[test]
fn single_addresses_without_prefix() {
    parses_to! { parser: NetcParser, input: "203.0.113.7", rule: Rule::cidr, tokens: [cidr(0, 11)] };
    parses_to! { parser: NetcParser, input: "::1", rule: Rule::cidr, tokens: [cidr(0, 3)] };
    parses_to! { parser: NetcParser, input: "::ffff:10.0.0.1", rule: Rule::cidr, tokens: [cidr(0, 15)] };
}

// ---------- doors and defaults ----------

#[test]
fn isolated_door_statement() {
    parses_to! {
        parser: NetcParser,
        input: "hermit isolated",
        rule: Rule::door_stmt,
        tokens: [
            door_stmt(0, 15, [
                subject(0, 6, [endpoint(0, 6, [reference(0, 6, [ref_head(0, 6, [dotted(0, 6)])])])]),
                isolated(7, 15)
            ])
        ]
    };
}

#[test]
fn door_statement_with_a_direction() {
    parses_to! {
        parser: NetcParser,
        input: "backend egress guarded",
        rule: Rule::door_stmt,
        tokens: [
            door_stmt(0, 22, [
                subject(0, 7, [endpoint(0, 7, [reference(0, 7, [ref_head(0, 7, [dotted(0, 7)])])])]),
                door_decl(8, 22, [direction(8, 14), door_state(15, 22)])
            ])
        ]
    };
}

#[test]
fn door_statement_without_a_direction_and_open() {
    parses_to! {
        parser: NetcParser,
        input: "web open",
        rule: Rule::door_stmt,
        tokens: [
            door_stmt(0, 8, [
                subject(0, 3, [endpoint(0, 3, [reference(0, 3, [ref_head(0, 3, [dotted(0, 3)])])])]),
                door_decl(4, 8, [door_state(4, 8)])
            ])
        ]
    };
}

#[test]
fn default_deny_with_a_direction() {
    parses_to! {
        parser: NetcParser,
        input: "default deny egress",
        rule: Rule::default_stmt,
        tokens: [default_stmt(0, 19, [default_action(8, 12), direction(13, 19)])]
    };
}

#[test]
fn one_sided_arrow_starts_with_egress() {
    parses_to! {
        parser: NetcParser,
        input: "egress a -> b",
        rule: Rule::arrow,
        tokens: [
            arrow(0, 13, [
                egress_only(0, 6),
                sources(7, 9, [endpoint(7, 8, [reference(7, 8, [ref_head(7, 8, [dotted(7, 8)])])])]),
                arrow_op(9, 11),
                targets(12, 13, [target(12, 13, [endpoint(12, 13, [reference(12, 13, [ref_head(12, 13, [dotted(12, 13)])])])])])
            ])
        ]
    };
}

#[test]
fn a_name_starting_with_egress_is_a_name() {
    parses_to! {
        parser: NetcParser,
        input: "egress-gw -> b",
        rule: Rule::arrow,
        tokens: [
            arrow(0, 14, [
                sources(0, 10, [endpoint(0, 9, [reference(0, 9, [ref_head(0, 9, [dotted(0, 9)])])])]),
                arrow_op(10, 12),
                targets(13, 14, [target(13, 14, [endpoint(13, 14, [reference(13, 14, [ref_head(13, 14, [dotted(13, 14)])])])])])
            ])
        ]
    };
}

#[test]
fn workload_of_namespaces_chosen_by_labels() {
    parses_to! {
        parser: NetcParser,
        input: "workload p = {purpose=production}/*",
        rule: Rule::workload_decl,
        tokens: [
            workload_decl(0, 35, [
                name(9, 10),
                qualified(13, 35, [
                    selector(13, 33, [requirement(14, 32, [eq_req(14, 32, [label_key(14, 21), label_value(22, 32, [bare_value(22, 32)])])])]),
                    all(34, 35)
                ])
            ])
        ]
    };
}

#[test]
fn workload_of_a_named_namespace_and_a_selector() {
    parses_to! {
        parser: NetcParser,
        input: "workload cart = shop/{app=cart}",
        rule: Rule::workload_decl,
        tokens: [
            workload_decl(0, 31, [
                name(9, 13),
                qualified(16, 31, [
                    ns_name(16, 20),
                    selector(21, 31, [requirement(22, 30, [eq_req(22, 30, [label_key(22, 25), label_value(26, 30, [bare_value(26, 30)])])])])
                ])
            ])
        ]
    };
}

#[test]
fn allow_attribute_before_a_statement_with_its_doc_comment() {
    parses_to! {
        parser: NetcParser,
        input: "## why\n@allow(W0203, W0201)\nweb open",
        rule: Rule::statement,
        tokens: [
            statement(0, 36, [
                doc(0, 6),
                allow(7, 27, [diag_code(14, 19), diag_code(21, 26)]),
                door_stmt(28, 36, [
                    subject(28, 31, [endpoint(28, 31, [reference(28, 31, [ref_head(28, 31, [dotted(28, 31)])])])]),
                    door_decl(32, 36, [door_state(32, 36)])
                ])
            ])
        ]
    };
}

#[test]
fn allow_attribute_needs_a_statement_after_it() {
    fails_with! {
        parser: NetcParser,
        input: "@allow(W0203)\n",
        rule: Rule::file,
        // Another attribute, a doc comment, or the statement it belongs to.
        positives: vec![
            Rule::doc,
            Rule::allow,
            Rule::assert_kw,
            Rule::workload_decl,
            Rule::external_decl,
            Rule::default_stmt,
            Rule::arrow,
            Rule::priority_stmt,
            Rule::endpoint
        ],
        negatives: vec![],
        pos: 14
    };
}

// ---------- files ----------

#[test]
fn file_with_a_namespace_block_doc_comments_and_comments() {
    parses_to! {
        parser: NetcParser,
        input: "namespace shop {\n  ## why\n  a -> b # note\n}\n",
        rule: Rule::file,
        tokens: [
            file(0, 44, [
                namespace_block(0, 43, [
                    ns_name(10, 14),
                    // The last name's rules end after the comment and line break pest skipped.
                    statement(19, 42, [
                        doc(19, 25),
                        arrow(28, 42, [
                            sources(28, 30, [endpoint(28, 29, [reference(28, 29, [ref_head(28, 29, [dotted(28, 29)])])])]),
                            arrow_op(30, 32),
                            targets(33, 42, [target(33, 42, [endpoint(33, 34, [reference(33, 34, [ref_head(33, 34, [dotted(33, 34)])])])])])
                        ])
                    ])
                ]),
                EOI(44, 44)
            ])
        ]
    };
}

#[test]
fn file_with_a_namespace_header() {
    parses_to! {
        parser: NetcParser,
        input: "namespace shop\nweb isolated",
        rule: Rule::file,
        tokens: [
            file(0, 27, [
                namespace_header(0, 14, [ns_name(10, 14)]),
                statement(15, 27, [door_stmt(15, 27, [
                    subject(15, 18, [endpoint(15, 18, [reference(15, 18, [ref_head(15, 18, [dotted(15, 18)])])])]),
                    isolated(19, 27)
                ])]),
                EOI(27, 27)
            ])
        ]
    };
}

// ---------- refusals ----------

#[test]
fn arrow_without_a_target_expects_an_endpoint() {
    fails_with! {
        parser: NetcParser,
        input: "a -> ",
        rule: Rule::file,
        positives: vec![Rule::endpoint],
        negatives: vec![],
        pos: 5
    };
}

#[test]
fn broken_arrow_expects_an_arrow_or_door_words() {
    fails_with! {
        parser: NetcParser,
        input: "a -/> b",
        rule: Rule::file,
        positives: vec![Rule::isolated, Rule::door_decl, Rule::deny_op],
        negatives: vec![],
        pos: 2
    };
}

#[test]
fn keyword_is_not_a_workload_name() {
    fails_with! {
        parser: NetcParser,
        input: "workload anywhere = {app=x}",
        rule: Rule::file,
        positives: vec![Rule::name],
        negatives: vec![],
        pos: 9
    };
}

#[test]
fn port_range_needs_its_end() {
    fails_with! {
        parser: NetcParser,
        input: "a -> b:80-",
        rule: Rule::file,
        positives: vec![Rule::integer],
        negatives: vec![],
        pos: 10
    };
}

#[test]
fn namespace_block_must_be_closed() {
    fails_with! {
        parser: NetcParser,
        input: "namespace shop {\n  a -> b\n",
        rule: Rule::file,
        // At the end: more of the arrow's target, another statement, or the `}` (a literal, so
        // pest does not list it).
        positives: vec![Rule::statement, Rule::doc, Rule::l7_clause, Rule::port_spec],
        negatives: vec![],
        pos: 26
    };
}

// ---------- properties ----------

/// Valid programs that exercise every statement; mutated below.
const VALID: &[&str] = &[
    "frontend -> backend:8080\nhermit isolated\n",
    "namespace shop {\n  ## the API\n  workload api = {app=api, tier in (web, api), !legacy}\n  frontend -> api:[80, 443/udp, 8000-8100, http, */sctp]\n  api egress guarded\n  api -> dns\n}\n",
    "external payments = 203.0.113.0/24 except 203.0.113.7/32, 198.51.100.10, 2001:db8::/32\nweb -> payments:443\n",
    "namespace shop\ndefault deny\n{team=monitoring}/* -> shop/{app=api}:metrics\n*/* -> anywhere:53/udp\n",
    "a->b\na-b->c-d:9090\nweb ingress open\nx -/-> y\npriority 3\nweb -> api.example.com path \"/admin\"\nnodes -> kubelet\n",
    "workload p = {purpose=production}/*\n@allow(W0203)\nweb egress guarded\negress web -> p:80\n",
];

/// Pieces of the language, for insertions.
const TOKENS: &[&str] = &[
    "->",
    "-/->",
    "!->",
    "-x->",
    ":",
    "/",
    ",",
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    "=",
    "==",
    "!=",
    "!",
    "*",
    "#",
    "##",
    "\n",
    " ",
    "\"",
    "namespace",
    "workload",
    "external",
    "default",
    "deny",
    "allow",
    "isolated",
    "@allow(",
    "egress ",
    "guarded",
    "open",
    "ingress",
    "egress",
    "except",
    "anywhere",
    "dns",
    "nodes",
    "priority",
    "path",
    "in",
    "notin",
    "80",
    "8000-8100",
    "udp",
    "10.0.0.0/8",
    "::",
    "2001:db8::1",
    "é",
    "\u{0}",
    "\r\n",
];

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, token: usize },
    Duplicate { at: usize, len: usize },
    Truncate { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..8usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Insert { at, token }),
        (any::<usize>(), 1..20usize).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

/// Apply mutations on characters (never splitting one).
fn mutate(program: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = program.chars().collect();
    for m in mutations {
        let n = chars.len() + 1;
        match *m {
            Mutation::Delete { at, len } => {
                let at = at % n;
                chars.drain(at..(at + len).min(chars.len()));
            }
            Mutation::Insert { at, token } => {
                let at = at % n;
                chars.splice(at..at, TOKENS[token].chars());
            }
            Mutation::Duplicate { at, len } => {
                let at = at % n;
                let piece: Vec<char> = chars[at..(at + len).min(chars.len())].to_vec();
                chars.splice(at..at, piece);
            }
            Mutation::Truncate { at } => chars.truncate(at % n),
        }
    }
    chars.into_iter().collect()
}

#[test]
fn the_programs_to_mutate_are_valid() {
    for program in VALID {
        if let Err(e) = NetcParser::parse(Rule::file, program) {
            panic!("{program:?} does not parse:\n{e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn parser_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = NetcParser::parse(Rule::file, &text);
    }

    #[test]
    fn parser_never_panics_on_text_made_of_the_languages_characters(
        text in r#"[a-z0-9 \n\t:/{}\[\](),.=!*#"\->]{0,120}"#
    ) {
        let _ = NetcParser::parse(Rule::file, &text);
    }

    #[test]
    fn parser_never_panics_on_mangled_valid_programs(
        program in 0..VALID.len(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let text = mutate(VALID[program], &mutations);
        if let Err(e) = NetcParser::parse(Rule::file, &text) {
            // Rendering the error walks the input too (line, column, excerpt).
            let _ = e.to_string();
        }
    }
}
