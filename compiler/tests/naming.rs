//! Policy names: the workload's own name, whatever way and order the source refers to it.
//!
//! To add a case: write two sources that must give the same object names and compare
//! [`names`] of both.

use netc::{SourceFile, codegen};

/// `namespace/name` of every generated object, in output order.
fn names(text: &str) -> Vec<String> {
    let out = netc::compile(&[SourceFile::new("policies.np", text)]);
    assert!(!out.has_errors(), "{:#?}", out.diagnostics);
    let ir = out.ir.expect("no errors");
    codegen::network_policies(&ir)
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or("?"),
                p.metadata.name.as_deref().unwrap_or("?")
            )
        })
        .collect()
}

#[test]
fn a_workload_first_named_from_another_namespace_is_named_after_itself() {
    // `web` refers to `shop/cart` before `shop` mentions `cart`: the policy is still `cart`.
    let cross_first =
        "namespace web {\n  storefront -> shop/cart:8080\n}\nnamespace shop {\n  checkout -> cart:8080\n}\n";
    let local_first =
        "namespace shop {\n  checkout -> cart:8080\n}\nnamespace web {\n  storefront -> shop/cart:8080\n}\n";
    assert_eq!(names(cross_first), ["shop/cart"]);
    assert_eq!(names(local_first), ["shop/cart"]);
    // Only ever named from elsewhere, too.
    assert_eq!(names("namespace web {\n  storefront -> shop/cart:8080\n}\n"), ["shop/cart"]);
}

#[test]
fn names_of_selectors_and_whole_namespaces_are_unchanged() {
    assert_eq!(names("web -> shop/*:80\n"), ["shop/all-pods"]);
    assert_eq!(names("web -> shop/{tier=api}:80\n"), ["shop/tier-api"]);
}
